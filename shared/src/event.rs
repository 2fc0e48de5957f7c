//! The event envelope written to the `chat-events` topic.
//!
//! Every record's value is one JSON object:
//! `{"schema_version": 1, "event_id", "type", "room_id", "user", "at", "data"}` and its key is the room
//! id, so all events of one room land on one partition in the order they were acknowledged. The shape
//! is deliberately plain JSON so that another team's consumer can read the topic with any Kafka client.
//! `schema_version` grows only when a change would break such a reader; adding a new `type` does not.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The envelope version this build writes and the newest it can read.
pub const SCHEMA_VERSION: u32 = 1;

/// Who caused an event, as shown to other users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub name: String,
}

/// One event as stored in the topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub schema_version: u32,
    /// Unique per event; consumers deduplicate on it.
    pub event_id: Uuid,
    pub room_id: Uuid,
    pub user: User,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub body: EventBody,
}

/// The `type` and its `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventBody {
    #[serde(rename = "room.created")]
    RoomCreated { name: String },
    #[serde(rename = "message.posted")]
    MessagePosted { message_id: Uuid, text: String },
    #[serde(rename = "reaction.added")]
    ReactionAdded { message_id: Uuid, emoji: String },
    #[serde(rename = "reaction.removed")]
    ReactionRemoved { message_id: Uuid, emoji: String },
    /// The hot-room scheduler switched the room's fetch API (written by the scheduler's leader).
    #[serde(rename = "room.mode_changed")]
    RoomModeChanged { mode: RoomMode },
}

/// How a room's history API is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomMode {
    /// Every fetch reads the database.
    Normal,
    /// The room is hot: fetches are coalesced, cached and rate-limited per client.
    Throttled,
}

impl RoomMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomMode::Normal => "normal",
            RoomMode::Throttled => "throttled",
        }
    }
}

/// The author of events the service writes by itself (mode changes).
pub fn system_user() -> User {
    User {
        id: Uuid::nil(),
        name: "hotchat".to_owned(),
    }
}

/// Why a record could not be read as an event. Consumers skip such records and count them.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record has no value")]
    Empty,
    #[error("record is not a hotchat event: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("event schema version {0} is newer than this build understands ({SCHEMA_VERSION})")]
    UnsupportedVersion(u32),
    #[error("record key {key:?} does not match the event's room {room_id}")]
    KeyMismatch { key: String, room_id: Uuid },
}

impl Envelope {
    /// A new event happening now, with a fresh id.
    pub fn new(room_id: Uuid, user: User, body: EventBody) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            room_id,
            user,
            // Millisecond precision: what every database and JavaScript keep without rounding.
            at: Utc::now().trunc_subsecs(3),
            body,
        }
    }

    /// The record key: the room id, so one room's events stay on one partition, in order.
    pub fn key(&self) -> String {
        partition_key(self.room_id)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serialises")
    }

    /// Reads a record's value, checking the version and, when given, that the key is the room id.
    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self, DecodeError> {
        let value = value.filter(|v| !v.is_empty()).ok_or(DecodeError::Empty)?;
        let envelope: Envelope = serde_json::from_slice(value)?;
        if envelope.schema_version > SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion(envelope.schema_version));
        }
        if let Some(key) = key
            && key != envelope.key().as_bytes()
        {
            return Err(DecodeError::KeyMismatch {
                key: String::from_utf8_lossy(key).into_owned(),
                room_id: envelope.room_id,
            });
        }
        Ok(envelope)
    }

    /// The `type` field, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self.body {
            EventBody::RoomCreated { .. } => "room.created",
            EventBody::MessagePosted { .. } => "message.posted",
            EventBody::ReactionAdded { .. } => "reaction.added",
            EventBody::ReactionRemoved { .. } => "reaction.removed",
            EventBody::RoomModeChanged { .. } => "room.mode_changed",
        }
    }
}

/// The Kafka record key for a room.
pub fn partition_key(room_id: Uuid) -> String {
    room_id.hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> User {
        User {
            id: Uuid::nil(),
            name: "alice".into(),
        }
    }

    #[test]
    fn envelope_serialises_type_and_data_at_the_top_level() {
        let room = Uuid::now_v7();
        let message_id = Uuid::now_v7();
        let event = Envelope::new(
            room,
            alice(),
            EventBody::MessagePosted {
                message_id,
                text: "hi".into(),
            },
        );
        let json: serde_json::Value = serde_json::from_slice(&event.encode()).unwrap();
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["type"], "message.posted");
        assert_eq!(json["room_id"], room.to_string());
        assert_eq!(json["user"]["name"], "alice");
        assert_eq!(json["data"]["text"], "hi");
        assert_eq!(json["data"]["message_id"], message_id.to_string());
    }

    #[test]
    fn decode_round_trips_every_event_type() {
        let room = Uuid::now_v7();
        let message_id = Uuid::now_v7();
        for body in [
            EventBody::RoomCreated { name: "r".into() },
            EventBody::MessagePosted {
                message_id,
                text: "t".into(),
            },
            EventBody::ReactionAdded {
                message_id,
                emoji: "👍".into(),
            },
            EventBody::ReactionRemoved {
                message_id,
                emoji: "👍".into(),
            },
            EventBody::RoomModeChanged {
                mode: RoomMode::Throttled,
            },
        ] {
            let event = Envelope::new(room, alice(), body);
            let decoded = Envelope::decode(Some(event.key().as_bytes()), Some(&event.encode()));
            assert_eq!(decoded.unwrap(), event);
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_decode_or_fail_without_panicking(
            key in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..64)),
            value in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..512)),
        ) {
            let _ = Envelope::decode(key.as_deref(), value.as_deref());
        }

        #[test]
        fn envelope_like_json_decodes_or_fails_without_panicking(
            version in 0u32..4,
            kind in "(room\\.created|message\\.posted|reaction\\.added|reaction\\.removed|room\\.mode_changed|[a-z.]{0,12})",
            data in "\\PC{0,60}",
        ) {
            let json = format!(
                r#"{{"schema_version":{version},"event_id":"{}","room_id":"{}","user":{{"id":"{}","name":"n"}},"at":"2026-11-22T00:00:00Z","type":"{kind}","data":{data}}}"#,
                Uuid::nil(), Uuid::nil(), Uuid::nil()
            );
            let _ = Envelope::decode(None, Some(json.as_bytes()));
        }
    }

    #[test]
    fn decode_rejects_foreign_and_future_records() {
        assert!(matches!(
            Envelope::decode(None, None),
            Err(DecodeError::Empty)
        ));
        assert!(matches!(
            Envelope::decode(None, Some(b"{\"hello\": 1}")),
            Err(DecodeError::Malformed(_))
        ));
        let mut event = Envelope::new(
            Uuid::now_v7(),
            alice(),
            EventBody::RoomCreated { name: "r".into() },
        );
        event.schema_version = SCHEMA_VERSION + 1;
        assert!(matches!(
            Envelope::decode(None, Some(&event.encode())),
            Err(DecodeError::UnsupportedVersion(_))
        ));
        event.schema_version = SCHEMA_VERSION;
        assert!(matches!(
            Envelope::decode(Some(b"another-room"), Some(&event.encode())),
            Err(DecodeError::KeyMismatch { .. })
        ));
    }
}
