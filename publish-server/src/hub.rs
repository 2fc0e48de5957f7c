//! Rooms and their subscribers.
//!
//! Hot path: each event is serialised once into an SSE frame (`Bytes`, reference-counted) and the same
//! bytes go to every subscriber through the room's `broadcast` channel, so delivering to N clients
//! costs N pointer copies, not N serialisations. The channel is a bounded ring: a subscriber that falls
//! a whole ring behind is told it lagged, and its stream ends with `event: reset` (bounded memory, and
//! a stalled client never slows anyone else down).
//!
//! Only rooms with subscribers exist here; a room whose last subscriber left is dropped on the next
//! event or sweep.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    io::Write,
    sync::Mutex,
};

use bytes::Bytes;
use serde::Serialize;
use shared::{
    cursor::Cursor,
    event::{Envelope, EventBody, RoomMode, User},
    readmodel::{Message, ReadModel},
};
use tokio::sync::broadcast;
use uuid::Uuid;

/// One pre-serialised SSE frame, shared by every subscriber of a room.
pub type Frame = Bytes;

/// Messages per room whose reaction sets are kept in memory to compute live counts.
const TALLIED_MESSAGES: usize = 1024;

pub struct Hub {
    rooms: Mutex<HashMap<Uuid, Room>>,
    capacity: usize,
    read_model: ReadModel,
}

struct Room {
    sender: broadcast::Sender<Frame>,
    tallies: Tallies,
}

impl Hub {
    /// `capacity` is each room's ring size: how far behind a subscriber may fall.
    pub fn new(capacity: usize, read_model: ReadModel) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            capacity,
            read_model,
        }
    }

    /// A receiver of every event of `room` dispatched from now on.
    pub fn subscribe(&self, room: Uuid) -> broadcast::Receiver<Frame> {
        let mut rooms = self.rooms.lock().expect("hub lock poisoned");
        rooms
            .entry(room)
            .or_insert_with(|| Room {
                sender: broadcast::channel(self.capacity).0,
                tallies: Tallies::default(),
            })
            .sender
            .subscribe()
    }

    /// Rooms with a live channel (for metrics and tests).
    pub fn room_count(&self) -> usize {
        self.rooms.lock().expect("hub lock poisoned").len()
    }

    /// Drops rooms nobody listens to any more.
    pub fn sweep(&self) {
        self.rooms
            .lock()
            .expect("hub lock poisoned")
            .retain(|_, room| room.sender.receiver_count() > 0);
    }

    /// Sends `event` to the subscribers of its room, if there are any.
    pub async fn dispatch(&self, cursor: Cursor, event: &Envelope) {
        match &event.body {
            EventBody::RoomCreated { .. } => {}
            EventBody::RoomModeChanged { mode } => {
                self.send(event.room_id, |_| {
                    Some(frame(cursor, "mode", &ModeData { mode: *mode }))
                });
            }
            EventBody::MessagePosted { message_id, text } => {
                let message = Message {
                    id: *message_id,
                    room_id: event.room_id,
                    user: event.user.clone(),
                    text: text.clone(),
                    at: event.at,
                    reactions: Default::default(),
                };
                self.send(event.room_id, |room| {
                    room.tallies.insert(*message_id, HashMap::new());
                    Some(frame(cursor, "message", &message))
                });
            }
            EventBody::ReactionAdded { message_id, emoji }
            | EventBody::ReactionRemoved { message_id, emoji } => {
                let added = matches!(event.body, EventBody::ReactionAdded { .. });
                if !self.has_subscribers(event.room_id) {
                    return;
                }
                // Seed unknown messages from the read model outside the lock. Sets make this safe
                // whether the projector is behind or ahead of this event: adding or removing this
                // user is idempotent.
                let seed = if self.is_tallied(event.room_id, *message_id) {
                    None
                } else {
                    Some(self.seed(*message_id).await)
                };
                self.send(event.room_id, |room| {
                    if let Some(seed) = seed {
                        room.tallies.insert_if_absent(*message_id, seed);
                    }
                    let users = room.tallies.users(*message_id, emoji);
                    let changed = if added {
                        users.insert(event.user.id)
                    } else {
                        users.remove(&event.user.id)
                    };
                    // A repeated add or a remove of nothing changes no count: nothing to tell.
                    changed.then(|| {
                        let data = ReactionData {
                            message_id: *message_id,
                            emoji,
                            user: &event.user,
                            op: if added { "added" } else { "removed" },
                            count: users.len(),
                        };
                        frame(cursor, "reaction", &data)
                    })
                });
            }
        }
    }

    fn has_subscribers(&self, room: Uuid) -> bool {
        let rooms = self.rooms.lock().expect("hub lock poisoned");
        rooms
            .get(&room)
            .is_some_and(|r| r.sender.receiver_count() > 0)
    }

    fn is_tallied(&self, room: Uuid, message: Uuid) -> bool {
        let rooms = self.rooms.lock().expect("hub lock poisoned");
        rooms
            .get(&room)
            .is_some_and(|r| r.tallies.contains(message))
    }

    async fn seed(&self, message: Uuid) -> HashMap<String, HashSet<Uuid>> {
        let mut seed: HashMap<String, HashSet<Uuid>> = HashMap::new();
        match self.read_model.reactions(message).await {
            Ok(rows) => {
                for (emoji, user) in rows {
                    seed.entry(emoji).or_default().insert(user);
                }
            }
            Err(e) => {
                tracing::warn!(message_id = %message, error = %e, "cannot seed reaction counts; counting from this event on");
            }
        }
        seed
    }

    /// Builds a frame with the room locked (so tallies and frame order agree) and broadcasts it.
    fn send(&self, room_id: Uuid, build: impl FnOnce(&mut Room) -> Option<Frame>) {
        let mut rooms = self.rooms.lock().expect("hub lock poisoned");
        let Some(room) = rooms.get_mut(&room_id) else {
            return;
        };
        if room.sender.receiver_count() == 0 {
            rooms.remove(&room_id);
            return;
        }
        if let Some(frame) = build(room) {
            // An error only means every receiver left since the check above.
            let _ = room.sender.send(frame);
        }
    }
}

#[derive(Serialize)]
pub struct ModeData {
    pub mode: RoomMode,
}

#[derive(Serialize)]
struct ReactionData<'a> {
    message_id: Uuid,
    emoji: &'a str,
    user: &'a User,
    op: &'static str,
    count: usize,
}

/// Who reacted with what, for the most recently touched messages of a room.
#[derive(Default)]
struct Tallies {
    by_message: HashMap<Uuid, HashMap<String, HashSet<Uuid>>>,
    order: VecDeque<Uuid>,
}

impl Tallies {
    fn contains(&self, message: Uuid) -> bool {
        self.by_message.contains_key(&message)
    }

    fn insert(&mut self, message: Uuid, sets: HashMap<String, HashSet<Uuid>>) {
        if self.by_message.insert(message, sets).is_none() {
            self.order.push_back(message);
            while self.order.len() > TALLIED_MESSAGES {
                if let Some(old) = self.order.pop_front() {
                    self.by_message.remove(&old);
                }
            }
        }
    }

    fn insert_if_absent(&mut self, message: Uuid, sets: HashMap<String, HashSet<Uuid>>) {
        if !self.contains(message) {
            self.insert(message, sets);
        }
    }

    fn users(&mut self, message: Uuid, emoji: &str) -> &mut HashSet<Uuid> {
        if !self.contains(message) {
            self.insert(message, HashMap::new());
        }
        self.by_message
            .get_mut(&message)
            .expect("just inserted")
            .entry(emoji.to_owned())
            .or_default()
    }
}

/// `id: <cursor>\nevent: <event>\ndata: <json>\n\n`. Compact JSON never contains a raw newline, so
/// one `data:` line always carries the whole payload.
pub fn frame(cursor: Cursor, event: &str, data: &impl Serialize) -> Frame {
    let mut buf = Vec::with_capacity(256);
    let _ = write!(buf, "id: {cursor}\nevent: {event}\ndata: ");
    serde_json::to_writer(&mut buf, data).expect("event data serialises");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// `event: mode` without an `id:` (so the client's resume cursor is unchanged): the room's current
/// mode, sent first to a client that subscribes while the room is hot.
pub fn mode_frame(mode: RoomMode) -> Frame {
    let mut buf = Vec::with_capacity(48);
    let _ = write!(buf, "event: mode\ndata: ");
    serde_json::to_writer(&mut buf, &ModeData { mode }).expect("mode data serialises");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// `event: reset`: the client must refetch, its position cannot be continued.
pub fn reset_frame(reason: &str) -> Frame {
    let mut buf = Vec::with_capacity(64);
    let _ = write!(buf, "event: reset\ndata: ");
    serde_json::to_writer(&mut buf, &serde_json::json!({ "reason": reason }))
        .expect("reset data serialises");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_one_sse_event_with_id_type_and_single_line_data() {
        let cursor = Cursor {
            partition: 1,
            offset: 7,
        };
        let bytes = frame(cursor, "message", &serde_json::json!({"text": "a\nb"}));
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "id: 1-7\nevent: message\ndata: {\"text\":\"a\\nb\"}\n\n"
        );
    }

    #[test]
    fn tallies_forget_the_oldest_messages_beyond_the_bound() {
        let mut tallies = Tallies::default();
        let first = Uuid::now_v7();
        tallies.insert(first, HashMap::new());
        for _ in 0..TALLIED_MESSAGES {
            tallies.insert(Uuid::now_v7(), HashMap::new());
        }
        assert!(!tallies.contains(first));
        assert_eq!(tallies.by_message.len(), TALLIED_MESSAGES);
    }

    #[test]
    fn tally_sets_make_repeated_adds_count_once() {
        let mut tallies = Tallies::default();
        let (message, user) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(tallies.users(message, "👍").insert(user));
        assert!(!tallies.users(message, "👍").insert(user));
        assert_eq!(tallies.users(message, "👍").len(), 1);
        assert!(tallies.users(message, "👍").remove(&user));
        assert!(!tallies.users(message, "👍").remove(&user));
    }
}
