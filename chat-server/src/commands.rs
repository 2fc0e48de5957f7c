//! The write path: every change the API takes, decided on the write model and appended to the log.
//!
//! Handlers (`routes/`) parse a request and turn the outcome into an answer. A command here finds
//! the room on the write model once it has caught up with the room's partition
//! ([`crate::write_model`]), checks who may do what, appends the event and returns it, or says why
//! not as a [`Refused`] (turned into an API error at the edge, [`crate::error`]). Nothing here asks
//! the database, except for a message older than the write model's window.

use std::time::{Duration, Instant};

use shared::{
    cursor::Cursor,
    event::{Envelope, EventBody, User},
    readmodel::{Ban, Room, Standing},
};
use uuid::Uuid;

use crate::{
    error::Refused,
    idempotency::Keyed,
    metrics::EventTypeLabel,
    moderation::{forbidden, not_banned, runs_room},
    state::AppState,
    write_model::Synced,
};

/// The room `raw` names once this chat-server has applied every event of its partition appended
/// before now: what a write decides on, and what a read that must see every earlier write shows.
pub async fn synced_room(state: &AppState, raw: &str) -> Result<Room, Refused> {
    let id: Uuid = raw.parse().map_err(|_| Refused::UnknownRoom)?;
    let started = Instant::now();
    let synced = state
        .write
        .sync(id)
        .await
        .map_err(|e| Refused::unavailable("the event log", e))?;
    state
        .metrics
        .write_sync_seconds
        .observe(started.elapsed().as_secs_f64());
    if synced == Synced::Unknown {
        state.metrics.writes_unsynced.inc();
    }
    state
        .write
        .read(|facts| facts.room(id).cloned())
        .ok_or(Refused::UnknownRoom)
}

/// The room `raw` names for a history read: as this chat-server knows it, or, for a room it has not
/// seen (created a moment ago elsewhere, or none), once it has caught up.
pub async fn known_room(state: &AppState, raw: &str) -> Result<Room, Refused> {
    let id: Uuid = raw.parse().map_err(|_| Refused::UnknownRoom)?;
    match state.write.read(|facts| facts.room(id).cloned()) {
        Some(room) => Ok(room),
        None => synced_room(state, raw).await,
    }
}

/// `user`'s role and ban in `room` (a room of the write model), and its slow mode.
pub fn standing(state: &AppState, room: &Room, user: Uuid) -> Standing {
    state
        .write
        .read(|facts| facts.standing(room.id, user))
        .unwrap_or(Standing {
            owner: room.owner.id,
            moderator: false,
            ban: None,
            slow_mode_secs: room.slow_mode_secs,
        })
}

/// A room and its writer, once they may write there: the room known and caught up with, the
/// writer not banned.
async fn writable(state: &AppState, raw: &str, user: &User) -> Result<(Room, Standing), Refused> {
    let room = synced_room(state, raw).await?;
    let standing = standing(state, &room, user.id);
    not_banned(&standing)?;
    Ok((room, standing))
}

/// A message an edit, a delete or a reaction acts on.
struct LiveMessage {
    id: Uuid,
    author: Uuid,
    at: chrono::DateTime<chrono::Utc>,
}

/// How long an edit, delete or reaction of a message older than the write model's window waits
/// for the read model.
const OLD_MESSAGE_DEADLINE: Duration = Duration::from_millis(800);

/// The message `raw` of `room`, if it is there and not deleted: from the write model's window of
/// recent messages, else (an older message) from the read model.
async fn live_message(state: &AppState, room: Uuid, raw: &str) -> Result<LiveMessage, Refused> {
    let id: Uuid = raw.parse().map_err(|_| Refused::UnknownMessage)?;
    if let Some(message) = state.write.read(|facts| facts.message(id)) {
        if message.room_id != room || message.deleted {
            return Err(Refused::UnknownMessage);
        }
        return Ok(LiveMessage {
            id,
            author: message.author,
            at: message.at,
        });
    }
    let read = state.read_model.message_facts(room, id);
    let facts = match tokio::time::timeout(OLD_MESSAGE_DEADLINE, read).await {
        Ok(Ok(facts)) => facts,
        Ok(Err(e)) => return Err(Refused::unavailable("the database", e)),
        Err(_) => {
            let cause = format!("no answer within {OLD_MESSAGE_DEADLINE:?}");
            return Err(Refused::unavailable("the database", cause));
        }
    };
    match facts {
        Some(facts) if !facts.deleted => Ok(LiveMessage {
            id,
            author: facts.author,
            at: facts.at,
        }),
        _ => Err(Refused::UnknownMessage),
    }
}

/// Appends `event` on behalf of its user: refused when the user writes too fast, or when the log
/// does not take it in time.
async fn append(state: &AppState, event: &Envelope) -> Result<Cursor, Refused> {
    state.post_limiter.admit(event.user.id)?;
    let started = Instant::now();
    match state.log.append(event).await {
        Ok(cursor) => {
            // Each event goes to every viewer: counted toward the room's delivery rate.
            state.written.record(event.room_id);
            let metrics = &state.metrics;
            metrics
                .append_duration_seconds
                .observe(started.elapsed().as_secs_f64());
            metrics
                .events_appended
                .get_or_create(&EventTypeLabel {
                    event_type: event.kind(),
                })
                .inc();
            Ok(cursor)
        }
        Err(e) => {
            state.metrics.append_failures.inc();
            Err(Refused::unavailable("the event broker", e))
        }
    }
}

/// Appends a change of the room's rules and returns once this chat-server has applied it: the
/// next write anywhere is checked against it (the others catch up before deciding).
async fn append_settled(state: &AppState, event: &Envelope) -> Result<Cursor, Refused> {
    let cursor = append(state, event).await?;
    state
        .write
        .applied(cursor)
        .await
        .map_err(|e| Refused::unavailable("the event log", e))?;
    Ok(cursor)
}

/// How long an edit or a delete waits for the read model to show it, so that the next history
/// fetch does; past it (a slow or hung database) it answers anyway.
const HISTORY_DEADLINE: Duration = Duration::from_secs(1);

/// Appends a change of a message (an edit, a delete) as [`append_settled`] does, then waits up to
/// [`HISTORY_DEADLINE`] for the projector to have written it, so that the next history fetch
/// anywhere shows it.
async fn append_shown(state: &AppState, event: &Envelope) -> Result<(), Refused> {
    let cursor = append_settled(state, event).await?;
    let deadline = tokio::time::Instant::now() + HISTORY_DEADLINE;
    let mut pause = Duration::from_millis(2);
    loop {
        let read = state.read_model.projected(cursor.partition);
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(Some(next))) if next > cursor.offset => return Ok(()),
            Err(_) => break,
            Ok(_) => {}
        }
        if tokio::time::Instant::now() + pause >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    tracing::debug!(%cursor, "answering before the read model shows the change");
    Ok(())
}

/// A post's slow-mode slot: claimed just before its event is appended, given back if the append
/// fails.
struct SlowSlot {
    room: Uuid,
    user: Uuid,
    secs: u32,
}

/// Appends `event`; with an `Idempotency-Key` (`keyed`), appends the first attempt's event instead,
/// and nothing when the log already acknowledged it (see [`crate::idempotency`]). A retry of an
/// acknowledged write claims no `slow` slot. Returns the event to answer for, and where it was
/// appended if it was.
async fn append_once(
    state: &AppState,
    keyed: Option<&Keyed<'_>>,
    mut event: Envelope,
    slow: Option<SlowSlot>,
) -> Result<(Envelope, Option<Cursor>), Refused> {
    let Some(keyed) = keyed else {
        let cursor = append_in_slot(state, &event, slow).await?;
        return Ok((event, Some(cursor)));
    };
    event.event_id = keyed.id("event");
    let write = state.idempotency.begin(keyed, event).await?;
    if write.acknowledged {
        return Ok((write.event, None));
    }
    let cursor = append_in_slot(state, &write.event, slow).await?;
    state.idempotency.acknowledged(&write).await;
    Ok((write.event, Some(cursor)))
}

async fn append_in_slot(
    state: &AppState,
    event: &Envelope,
    slow: Option<SlowSlot>,
) -> Result<Cursor, Refused> {
    let Some(slot) = slow else {
        return append(state, event).await;
    };
    state
        .slow_mode
        .claim(slot.room, slot.user, slot.secs)
        .await?;
    let appended = append(state, event).await;
    if appended.is_err() {
        state.slow_mode.release(slot.room, slot.user).await;
    }
    appended
}

/// Posts `text` (validated) in the room `raw` names; returns the event answered for (with a key,
/// the first attempt's).
pub async fn post_message<'k>(
    state: &AppState,
    user: User,
    raw: &str,
    text: &str,
    keyed: impl FnOnce(Uuid) -> Option<Keyed<'k>>,
) -> Result<Envelope, Refused> {
    let (room, standing) = writable(state, raw, &user).await?;
    let slow =
        (standing.slow_mode_secs > 0 && !runs_room(&standing, user.id)).then_some(SlowSlot {
            room: room.id,
            user: user.id,
            secs: standing.slow_mode_secs,
        });
    let keyed = keyed(room.id);
    let body = EventBody::MessagePosted {
        message_id: keyed
            .as_ref()
            .map_or_else(Uuid::now_v7, |k| k.id("message")),
        text: text.to_owned(),
    };
    let event = Envelope::new(room.id, user, body);
    let (event, _) = append_once(state, keyed.as_ref(), event, slow).await?;
    Ok(event)
}

/// Changes the text of one of `user`'s own messages; returns the event and the message's
/// original time.
pub async fn edit_message(
    state: &AppState,
    user: User,
    (raw, message): (&str, &str),
    text: &str,
) -> Result<Envelope, Refused> {
    let room = synced_room(state, raw).await?;
    let posted = live_message(state, room.id, message).await?;
    let message_id = posted.id;
    if posted.author != user.id {
        return Err(forbidden("only its author can edit a message"));
    }
    not_banned(&standing(state, &room, user.id))?;
    let body = EventBody::MessageEdited {
        message_id,
        text: text.to_owned(),
        posted_at: posted.at,
    };
    let event = Envelope::new(room.id, user, body);
    append_shown(state, &event).await?;
    Ok(event)
}

/// Deletes a message: its author, the room's owner or a moderator may (only the owner deletes the
/// owner's).
pub async fn delete_message(
    state: &AppState,
    user: User,
    (raw, message): (&str, &str),
) -> Result<Envelope, Refused> {
    let room = synced_room(state, raw).await?;
    let posted = live_message(state, room.id, message).await?;
    let message_id = posted.id;
    let standing = standing(state, &room, user.id);
    not_banned(&standing)?;
    if posted.author != user.id && !runs_room(&standing, user.id) {
        return Err(forbidden(
            "only its author, the room's owner or a moderator can delete a message",
        ));
    }
    if posted.author == standing.owner && user.id != standing.owner {
        return Err(forbidden("only the owner can delete the owner's messages"));
    }
    let event = Envelope::new(room.id, user, EventBody::MessageDeleted { message_id });
    append_shown(state, &event).await?;
    Ok(event)
}

/// Adds or removes `emoji` (validated) on a message as `user`.
pub async fn react(
    state: &AppState,
    user: User,
    (raw, message): (&str, &str),
    emoji: &str,
    added: bool,
) -> Result<Envelope, Refused> {
    let room = synced_room(state, raw).await?;
    let message_id = live_message(state, room.id, message).await?.id;
    not_banned(&standing(state, &room, user.id))?;
    state.reaction_limiter.admit(user.id, message_id)?;
    let emoji = emoji.to_owned();
    let body = if added {
        EventBody::ReactionAdded { message_id, emoji }
    } else {
        EventBody::ReactionRemoved { message_id, emoji }
    };
    let event = Envelope::new(room.id, user, body);
    append(state, &event).await?;
    Ok(event)
}

/// Creates a room named `name` (validated) owned by `user`; known here as soon as it is answered.
pub async fn create_room(
    state: &AppState,
    user: User,
    name: &str,
    keyed: Option<Keyed<'_>>,
) -> Result<Room, Refused> {
    let room_id = keyed.as_ref().map_or_else(Uuid::now_v7, |k| k.id("room"));
    let body = EventBody::RoomCreated {
        name: name.to_owned(),
    };
    let event = Envelope::new(room_id, user, body);
    let (event, appended) = append_once(state, keyed.as_ref(), event, None).await?;
    if let Some(cursor) = appended {
        // Known here from now on: the creator can post to it at once.
        state
            .write
            .applied(cursor)
            .await
            .map_err(|e| Refused::unavailable("the event log", e))?;
        // And written through to the read model off the answer's path, so the room list shows it
        // without waiting for the projector. Applying is keyed by event id, so the projector's
        // later copy is a no-op; a database that does not answer costs the creation nothing.
        let (read_model, event) = (state.read_model.clone(), event.clone());
        tokio::spawn(async move {
            if let Err(e) = read_model.apply_batch(&[(cursor, event)], &[]).await {
                tracing::debug!(error = %e, "room write-through failed; the projector will add it");
            }
        });
    }
    let EventBody::RoomCreated { name } = event.body else {
        unreachable!("a kept write has the body it was made with")
    };
    Ok(Room {
        id: event.room_id,
        name,
        created_at: event.at,
        owner: event.user,
        slow_mode_secs: 0,
    })
}

/// Sets the room's slow mode (validated): its owner and moderators may. Returns the room.
pub async fn update_room(
    state: &AppState,
    user: User,
    raw: &str,
    slow_mode_secs: u32,
) -> Result<Room, Refused> {
    let (mut room, standing) = writable(state, raw, &user).await?;
    if !runs_room(&standing, user.id) {
        return Err(forbidden(
            "only the room's owner or a moderator can change its settings",
        ));
    }
    if room.slow_mode_secs != slow_mode_secs {
        room.slow_mode_secs = slow_mode_secs;
        let body = EventBody::RoomUpdated {
            name: room.name.clone(),
            owner: room.owner.clone(),
            created_at: room.created_at,
            slow_mode_secs,
        };
        append_settled(state, &Envelope::new(room.id, user, body)).await?;
    }
    Ok(room)
}

/// Who may change roles and bans.
#[derive(Clone, Copy)]
enum Role {
    Owner,
    Moderator,
}

/// The room and the target user, once `actor` may act on the target: not banned, holding `role`
/// (the owner holds both), and the target is not the owner.
async fn acting_on(
    state: &AppState,
    actor: &User,
    (raw, target): (&str, &str),
    role: Role,
) -> Result<(Room, Uuid), Refused> {
    let room = synced_room(state, raw).await?;
    let target: Uuid = target.parse().map_err(|_| Refused::InvalidUser)?;
    let standing = standing(state, &room, actor.id);
    not_banned(&standing)?;
    let allowed = match role {
        Role::Owner => standing.owner == actor.id,
        Role::Moderator => runs_room(&standing, actor.id),
    };
    if !allowed {
        return Err(forbidden(match role {
            Role::Owner => "only the room's owner can do this",
            Role::Moderator => "only the room's owner or a moderator can do this",
        }));
    }
    if target == room.owner.id {
        return Err(forbidden("nobody can act on the room's owner"));
    }
    Ok((room, target))
}

/// Makes `target` a moderator (nothing is written if they are one): the owner may.
pub async fn appoint(state: &AppState, user: User, path: (&str, &str)) -> Result<Uuid, Refused> {
    let (room, target) = acting_on(state, &user, path, Role::Owner).await?;
    if !standing(state, &room, target).moderator {
        let body = EventBody::ModeratorAdded { user_id: target };
        append_settled(state, &Envelope::new(room.id, user, body)).await?;
    }
    Ok(target)
}

/// Takes `target`'s moderator role away (nothing is written if they have none): the owner may.
pub async fn dismiss(state: &AppState, user: User, path: (&str, &str)) -> Result<Uuid, Refused> {
    let (room, target) = acting_on(state, &user, path, Role::Owner).await?;
    if standing(state, &room, target).moderator {
        let body = EventBody::ModeratorRemoved { user_id: target };
        append_settled(state, &Envelope::new(room.id, user, body)).await?;
    }
    Ok(target)
}

/// Bans `target` for `seconds` (or until lifted) with `reason` (both validated): the owner and
/// moderators may; a moderator cannot be banned.
pub async fn ban(
    state: &AppState,
    user: User,
    path: (&str, &str),
    seconds: Option<u32>,
    reason: &str,
) -> Result<Ban, Refused> {
    let (room, target) = acting_on(state, &user, path, Role::Moderator).await?;
    if standing(state, &room, target).moderator {
        return Err(forbidden(
            "a moderator cannot be banned; the owner can remove their role first",
        ));
    }
    let mut event = Envelope::new(
        room.id,
        user,
        EventBody::UserBanned {
            user_id: target,
            until: None,
            reason: reason.to_owned(),
        },
    );
    // The ban ends counted from the event's own time.
    let until = seconds.map(|s| event.at + chrono::Duration::seconds(s.into()));
    event.body = EventBody::UserBanned {
        user_id: target,
        until,
        reason: reason.to_owned(),
    };
    append_settled(state, &event).await?;
    Ok(Ban {
        user_id: target,
        until,
        reason: reason.to_owned(),
        by: event.user,
        at: event.at,
    })
}

/// Lifts `target`'s ban (nothing is written if there is none): the owner and moderators may.
pub async fn unban(state: &AppState, user: User, path: (&str, &str)) -> Result<Uuid, Refused> {
    let (room, target) = acting_on(state, &user, path, Role::Moderator).await?;
    if standing(state, &room, target).ban.is_some() {
        let body = EventBody::UserUnbanned { user_id: target };
        append_settled(state, &Envelope::new(room.id, user, body)).await?;
    }
    Ok(target)
}
