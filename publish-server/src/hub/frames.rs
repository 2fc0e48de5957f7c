//! SSE frames: each event is serialised once, here, and the same bytes go to every subscriber.

use std::{collections::BTreeMap, io::Write};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::{
    cursor::Cursor,
    event::{Envelope, EventBody, HotReason, RoomMode, User},
    readmodel::{Message, Room},
};
use uuid::Uuid;

use super::ResetReason;

/// The frame subscribers get for `event` (None for events they do not see). `count` is a
/// reaction's new count for its emoji, when this instance knows it exactly.
pub fn event_frame(cursor: Cursor, event: &Envelope, count: Option<usize>) -> Option<Bytes> {
    match &event.body {
        EventBody::MessagePosted { message_id, text } => {
            let message = Message {
                id: *message_id,
                room_id: event.room_id,
                user: event.user.clone(),
                text: text.clone(),
                at: event.at,
                edited_at: None,
                reactions: Default::default(),
            };
            Some(frame(cursor, "message", &message))
        }
        EventBody::MessageEdited {
            message_id,
            text,
            posted_at,
        } => {
            let edited = EditData {
                id: *message_id,
                room_id: event.room_id,
                user: &event.user,
                text,
                at: *posted_at,
                edited_at: event.at,
            };
            Some(frame(cursor, "edit", &edited))
        }
        EventBody::MessageDeleted { message_id } => {
            let deleted = DeleteData {
                message_id: *message_id,
                by: &event.user,
            };
            Some(frame(cursor, "delete", &deleted))
        }
        EventBody::RoomUpdated {
            name,
            owner,
            created_at,
            slow_mode_secs,
        } => {
            let room = Room {
                id: event.room_id,
                name: name.clone(),
                created_at: *created_at,
                owner: owner.clone(),
                slow_mode_secs: *slow_mode_secs,
            };
            Some(frame(cursor, "room", &room))
        }
        EventBody::ReactionAdded { message_id, emoji }
        | EventBody::ReactionRemoved { message_id, emoji } => {
            let added = matches!(event.body, EventBody::ReactionAdded { .. });
            let data = ReactionData {
                message_id: *message_id,
                emoji,
                user: &event.user,
                op: if added { "added" } else { "removed" },
                count,
            };
            Some(frame(cursor, "reaction", &data))
        }
        EventBody::RoomModeChanged {
            mode,
            fetch_interval_ms,
            reason,
        } => {
            let data = ModeData {
                mode: *mode,
                fetch_interval_ms: *fetch_interval_ms,
                reason: *reason,
            };
            Some(frame(cursor, "mode", &data))
        }
        EventBody::RoomCreated { .. }
        | EventBody::ModeratorAdded { .. }
        | EventBody::ModeratorRemoved { .. }
        | EventBody::UserBanned { .. }
        | EventBody::UserUnbanned { .. } => None,
    }
}

/// `event: edit` data: the message with its new text. Its reactions are unchanged by an edit and
/// left out.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EditData<'a> {
    id: Uuid,
    room_id: Uuid,
    #[schema(value_type = User)]
    user: &'a User,
    #[schema(value_type = String)]
    text: &'a str,
    /// When the message was posted.
    at: DateTime<Utc>,
    edited_at: DateTime<Utc>,
}

/// `event: delete` data: the message is gone, with its reactions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeleteData<'a> {
    message_id: Uuid,
    /// Who deleted it: the author, the room's owner or a moderator.
    #[schema(value_type = User)]
    by: &'a User,
}

/// `event: mode` data: the room's history API is now served in this mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModeData {
    pub mode: RoomMode,
    /// The least time a client should leave between history fetches (0: no limit). A client that
    /// keeps to it is never refused with 429.
    pub fetch_interval_ms: u32,
    /// What made the room hot (`fetches` or `deliveries`), when this instance knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<HotReason>,
}

impl ModeData {
    /// A room in normal mode.
    pub const NORMAL: ModeData = ModeData {
        mode: RoomMode::Normal,
        fetch_interval_ms: 0,
        reason: None,
    };
}

/// `count` is left out rather than guessed when this instance does not know it (its read model
/// was unreachable and the message is older than what it has read from the log): a client then
/// applies the `op` to the count it has.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReactionData<'a> {
    message_id: Uuid,
    #[schema(value_type = String)]
    emoji: &'a str,
    #[schema(value_type = User)]
    user: &'a User,
    /// `added` or `removed`.
    #[schema(value_type = String, pattern = "^(added|removed)$")]
    op: &'static str,
    /// How many users now react to the message with this emoji, when this instance knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
}

/// `event: reaction` data in a throttled room: the reactions on one message within a batch, folded
/// into the message's complete counts (emojis with none are left out). It replaces the counts the
/// client has; who reacted is not told.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CountsData<'a> {
    pub message_id: Uuid,
    #[schema(value_type = std::collections::BTreeMap<String, usize>)]
    pub counts: &'a BTreeMap<String, usize>,
}

/// `id: <cursor>\nevent: <event>\ndata: <json>\n\n`. Compact JSON never contains a raw newline, so
/// one `data:` line always carries the whole payload.
pub fn frame(cursor: Cursor, event: &str, data: &impl Serialize) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    let _ = write!(buf, "id: {cursor}\nevent: {event}\ndata: ");
    serde_json::to_writer(&mut buf, data).expect("event data serialises");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// `event: mode` without an `id:` (so the client's resume cursor is unchanged): the room's current
/// mode, sent first to a client that subscribes while the room is hot.
pub fn mode_frame(mode: ModeData) -> Bytes {
    let mut buf = Vec::with_capacity(64);
    let _ = write!(buf, "event: mode\ndata: ");
    serde_json::to_writer(&mut buf, &mode).expect("mode data serialises");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// `event: presence` without an `id:` (it is not an event of the log): the room's audience.
pub fn presence_frame(online: crate::audience::Online) -> Bytes {
    let mut buf = Vec::with_capacity(48);
    let _ = write!(buf, "event: presence\ndata: ");
    serde_json::to_writer(&mut buf, &online).expect("presence data serialises");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// `event: reset`: the client must refetch, its position cannot be continued.
pub fn reset_frame(reason: ResetReason) -> Bytes {
    let mut buf = Vec::with_capacity(64);
    let _ = write!(buf, "event: reset\ndata: ");
    serde_json::to_writer(&mut buf, &serde_json::json!({ "reason": reason.as_str() }))
        .expect("reset data serialises");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn frame_is_one_sse_event_with_id_type_and_single_line_data() {
        let cursor = Cursor {
            partition: 1,
            offset: 7,
        };
        let bytes = frame(cursor, "message", &serde_json::json!({"text": "a\nb"}));
        assert_eq!(
            text(&bytes),
            "id: 1-7\nevent: message\ndata: {\"text\":\"a\\nb\"}\n\n"
        );
    }

    #[test]
    fn a_reaction_carries_its_count_only_when_it_is_known() {
        let user = User {
            id: Uuid::nil(),
            name: "u".into(),
        };
        let body = EventBody::ReactionAdded {
            message_id: Uuid::nil(),
            emoji: "👍".into(),
        };
        let event = Envelope::new(Uuid::nil(), user, body);
        let cursor = Cursor {
            partition: 0,
            offset: 3,
        };
        let known = event_frame(cursor, &event, Some(2)).unwrap();
        assert!(
            text(&known).contains(r#""op":"added","count":2}"#),
            "{}",
            text(&known)
        );
        let unknown = event_frame(cursor, &event, None).unwrap();
        assert!(
            text(&unknown).ends_with("\"op\":\"added\"}\n\n"),
            "{}",
            text(&unknown)
        );
    }
}
