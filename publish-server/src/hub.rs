//! Rooms, their subscribers, and the recent past of every partition.
//!
//! Hot path: each event is serialised once into an SSE frame (`Bytes`, reference-counted) and the same
//! bytes go to every subscriber through the room's `broadcast` channel, so delivering to N clients
//! costs N pointer copies, not N serialisations. The channel is a bounded ring: a subscriber that falls
//! a whole ring behind has lost events, so it is cut off (bounded memory, and a stalled client never
//! slows anyone else down). [`Hub::sweep`] finds such subscribers even when their socket is blocked
//! and their stream is never polled, and cancels their connection.
//!
//! Resume: the hub keeps the last `resume_capacity` events of every partition. A client that
//! reconnects with a cursor gets the events of its room after that cursor from this buffer, taken in
//! the same critical section in which it subscribes to the live channel — so nothing is missed and
//! nothing is sent twice, even while events keep arriving. A cursor older than the buffer, from an
//! unknown partition, or not matching the room's partition gets `event: reset` instead.
//!
//! Duplicates: the idempotent producer can still write one event twice when it retries across an
//! epoch bump (librdkafka, after in-flight requests time out during an outage), so each partition
//! remembers the ids of its recent events and a record whose event id it has already seen is
//! dropped, live and for resumes alike. The projector deduplicates on the same id in the database.
//!
//! Rooms exist here only while they have subscribers; a room whose last subscriber left is released
//! on the next event or sweep.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    io::Write,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use serde::Serialize;
use shared::{
    cursor::Cursor,
    event::{Envelope, EventBody, RoomMode, User},
    readmodel::{Message, ReadModel},
    shutdown::CancellationToken,
};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Messages per room whose reaction sets are kept in memory to compute live counts.
const TALLIED_MESSAGES: usize = 1024;

/// One pre-serialised SSE frame, shared by every subscriber of a room.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The event's offset in its partition.
    pub offset: i64,
    /// The room's frame counter when it was sent (for the stall watchdog).
    pub seq: u64,
    pub bytes: Bytes,
}

/// A subscriber's progress, watched by [`Hub::sweep`].
pub struct Subscriber {
    /// `seq` of the last frame handed to the connection.
    consumed: AtomicU64,
    /// Cancelled to close the connection when the subscriber falls too far behind.
    cut: Option<CancellationToken>,
}

impl Subscriber {
    pub fn consumed(&self, seq: u64) {
        self.consumed.store(seq, Ordering::Relaxed);
    }
}

/// Why a resume could not be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The cursor is older than what this instance kept.
    TooOld,
    /// The cursor names a partition the topic does not have, or not the room's partition.
    ForeignCursor,
    /// The cursor is beyond the end of the log (another topic generation, or made up).
    Unknown,
    /// The cursor could not be parsed.
    Malformed,
    /// The client fell too far behind the live stream.
    Lagged,
}

impl ResetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::TooOld => "cursor_too_old",
            ResetReason::ForeignCursor => "foreign_cursor",
            ResetReason::Unknown => "unknown_cursor",
            ResetReason::Malformed => "malformed_cursor",
            ResetReason::Lagged => "lagged",
        }
    }
}

/// Where a subscription starts.
#[derive(Debug, PartialEq, Eq)]
pub enum Start {
    /// Live from now (no cursor).
    Live,
    /// The backlog holds every event after the cursor.
    Resumed,
    /// The cursor is ahead of what this instance has read; live frames up to `offset` must be
    /// skipped once the caller has confirmed the cursor exists (it is below the log's end).
    Ahead { partition: i32, offset: i64 },
    /// The cursor cannot be honoured: tell the client to refetch.
    Reset(ResetReason),
}

pub struct Subscription {
    pub receiver: broadcast::Receiver<Frame>,
    /// Events of the room after the cursor, oldest first.
    pub backlog: Vec<Buffered>,
    pub start: Start,
    pub subscriber: Arc<Subscriber>,
}

/// An event kept for resuming clients.
#[derive(Clone)]
pub struct Buffered {
    cursor: Cursor,
    room: Uuid,
    payload: Payload,
}

#[derive(Clone)]
enum Payload {
    /// The frame sent live (the room had subscribers).
    Frame(Bytes),
    /// Not framed yet: nobody listened when it arrived.
    Event(Arc<Envelope>),
}

pub struct Hub {
    inner: Mutex<Inner>,
    read_model: ReadModel,
    room_capacity: usize,
    resume_capacity: usize,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<Uuid, Room>,
    partitions: HashMap<i32, PartitionLog>,
}

struct Room {
    sender: broadcast::Sender<Frame>,
    tallies: Tallies,
    /// Frames sent so far.
    sent: u64,
    subscribers: Vec<Weak<Subscriber>>,
}

/// The recent events of one partition.
struct PartitionLog {
    events: VecDeque<Buffered>,
    /// Every record from this offset on has been seen (what is older was never read or was evicted).
    complete_from: i64,
    /// The last offset seen, if any.
    last: Option<i64>,
    /// Which partition each recently seen room lives on is implied by this log holding its events.
    rooms: HashSet<Uuid>,
    /// Event ids of the partition's recent records, to drop a record written twice.
    ids: RecentIds,
}

impl PartitionLog {
    fn new(complete_from: i64, ids: usize) -> Self {
        Self {
            events: VecDeque::new(),
            complete_from,
            last: None,
            rooms: HashSet::new(),
            ids: RecentIds::new(ids),
        }
    }
}

/// The last `capacity` distinct ids seen, oldest forgotten first.
struct RecentIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
    capacity: usize,
}

impl RecentIds {
    fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers `id`; false when it was already among the recent ones.
    fn insert(&mut self, id: Uuid) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// Event ids remembered per partition: at least the resume buffer's span, and enough for a
/// producer's in-flight window at low rates.
fn id_window(resume_capacity: usize) -> usize {
    resume_capacity.max(1024)
}

impl Hub {
    /// `room_capacity`: how far behind a subscriber may fall; `resume_capacity`: events kept per
    /// partition for resuming clients.
    pub fn new(room_capacity: usize, resume_capacity: usize, read_model: ReadModel) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            read_model,
            room_capacity,
            resume_capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("hub lock poisoned")
    }

    /// Declares that the fan-out consumer reads `partition` from `offset` on.
    pub fn start_partition(&self, partition: i32, offset: i64) {
        self.lock().partitions.insert(
            partition,
            PartitionLog::new(offset, id_window(self.resume_capacity)),
        );
    }

    /// Subscribes to `room`, resuming after `from` if given.
    pub fn subscribe(
        &self,
        room: Uuid,
        from: Option<Cursor>,
        cut: Option<CancellationToken>,
    ) -> Subscription {
        let mut inner = self.lock();
        let (backlog, start) = match from {
            None => (Vec::new(), Start::Live),
            Some(cursor) => inner.backlog(room, cursor),
        };
        let capacity = self.room_capacity;
        let channel = inner.rooms.entry(room).or_insert_with(|| Room {
            sender: broadcast::channel(capacity).0,
            tallies: Tallies::default(),
            sent: 0,
            subscribers: Vec::new(),
        });
        let subscriber = Arc::new(Subscriber {
            consumed: AtomicU64::new(channel.sent),
            cut,
        });
        channel.subscribers.push(Arc::downgrade(&subscriber));
        Subscription {
            receiver: channel.sender.subscribe(),
            backlog,
            start,
            subscriber,
        }
    }

    /// Frames for backlog events, building those nobody listened to when they arrived. A replayed
    /// reaction carries the count the read model has now.
    pub async fn frames(&self, backlog: Vec<Buffered>) -> Vec<Bytes> {
        let mut frames = Vec::with_capacity(backlog.len());
        for buffered in backlog {
            let built = match buffered.payload {
                Payload::Frame(bytes) => Some(bytes),
                Payload::Event(event) => self.replay_frame(buffered.cursor, &event).await,
            };
            frames.extend(built);
        }
        frames
    }

    async fn replay_frame(&self, cursor: Cursor, event: &Envelope) -> Option<Bytes> {
        match &event.body {
            EventBody::ReactionAdded { message_id, emoji }
            | EventBody::ReactionRemoved { message_id, emoji } => {
                let count = self
                    .read_model
                    .reactions(*message_id)
                    .await
                    .map(|rows| rows.iter().filter(|(e, _)| e == emoji).count())
                    .unwrap_or(0);
                let added = matches!(event.body, EventBody::ReactionAdded { .. });
                Some(reaction_frame(
                    cursor,
                    event,
                    *message_id,
                    emoji,
                    added,
                    count,
                ))
            }
            _ => plain_frame(cursor, event),
        }
    }

    /// Records an event (or, with `None`, a record that was not one) read at `cursor`, and sends it
    /// to the room's subscribers.
    pub async fn dispatch(&self, cursor: Cursor, event: Option<Envelope>) {
        let Some(event) = event else {
            self.lock().seen(cursor, None, self.resume_capacity);
            return;
        };
        {
            let mut inner = self.lock();
            if !inner.first_time(cursor, event.event_id, self.resume_capacity) {
                tracing::debug!(%cursor, event_id = %event.event_id, "fan-out dropped a duplicate record");
                inner.seen(cursor, None, self.resume_capacity);
                return;
            }
        }
        // Seed reaction counts of a message this instance has not tallied, outside the lock. Sets
        // make this safe whether the projector is behind or ahead of this event: adding or
        // removing this user is idempotent.
        let seed = match &event.body {
            EventBody::ReactionAdded { message_id, .. }
            | EventBody::ReactionRemoved { message_id, .. }
                if self.needs_seed(event.room_id, *message_id) =>
            {
                Some(self.seed(*message_id).await)
            }
            _ => None,
        };
        let event = Arc::new(event);
        let mut inner = self.lock();
        let frame = match inner.rooms.get_mut(&event.room_id) {
            Some(room) if room.sender.receiver_count() > 0 => {
                build_live(room, cursor, &event, seed)
            }
            Some(_) => {
                inner.rooms.remove(&event.room_id);
                None
            }
            None => None,
        };
        let payload = match &frame {
            Some(bytes) => Payload::Frame(bytes.clone()),
            None => Payload::Event(event.clone()),
        };
        let keep = !matches!(event.body, EventBody::RoomCreated { .. });
        inner.seen(
            cursor,
            keep.then_some((event.room_id, payload)),
            self.resume_capacity,
        );
        if let (Some(bytes), Some(room)) = (frame, inner.rooms.get_mut(&event.room_id)) {
            room.sent += 1;
            // An error only means every receiver left.
            let _ = room.sender.send(Frame {
                offset: cursor.offset,
                seq: room.sent,
                bytes,
            });
        }
    }

    fn needs_seed(&self, room: Uuid, message: Uuid) -> bool {
        self.lock()
            .rooms
            .get(&room)
            .is_some_and(|r| r.sender.receiver_count() > 0 && !r.tallies.contains(message))
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

    /// Releases rooms nobody listens to and cuts off subscribers that fell a whole ring behind.
    /// Returns how many were cut off.
    pub fn sweep(&self) -> usize {
        let mut inner = self.lock();
        let mut cut = 0;
        let capacity = self.room_capacity as u64;
        inner.rooms.retain(|_, room| {
            room.subscribers.retain(|weak| match weak.upgrade() {
                None => false,
                Some(subscriber) => {
                    let behind =
                        room.sent - subscriber.consumed.load(Ordering::Relaxed).min(room.sent);
                    if behind >= capacity {
                        if let Some(token) = &subscriber.cut {
                            token.cancel();
                        }
                        cut += 1;
                        false
                    } else {
                        true
                    }
                }
            });
            room.sender.receiver_count() > 0
        });
        cut
    }

    /// Rooms with a live channel.
    pub fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }

    /// The last offset dispatched per partition.
    pub fn positions(&self) -> Vec<(i32, Option<i64>)> {
        let inner = self.lock();
        let mut positions: Vec<_> = inner
            .partitions
            .iter()
            .map(|(p, log)| (*p, log.last))
            .collect();
        positions.sort();
        positions
    }
}

impl Inner {
    fn partition(&mut self, cursor: Cursor, capacity: usize) -> &mut PartitionLog {
        self.partitions
            .entry(cursor.partition)
            .or_insert_with(|| PartitionLog::new(cursor.offset, id_window(capacity)))
    }

    /// Whether `event_id` is new in `cursor`'s partition (and remembers it).
    fn first_time(&mut self, cursor: Cursor, event_id: Uuid, capacity: usize) -> bool {
        self.partition(cursor, capacity).ids.insert(event_id)
    }

    /// Notes a record at `cursor`, keeping it for resumes when `kept` is given.
    fn seen(&mut self, cursor: Cursor, kept: Option<(Uuid, Payload)>, capacity: usize) {
        let log = self.partition(cursor, capacity);
        log.last = Some(cursor.offset);
        if let Some((room, payload)) = kept {
            log.rooms.insert(room);
            log.events.push_back(Buffered {
                cursor,
                room,
                payload,
            });
            while log.events.len() > capacity {
                if let Some(old) = log.events.pop_front() {
                    log.complete_from = old.cursor.offset + 1;
                }
            }
        }
    }

    /// The events of `room` after `cursor`, or why they cannot be given.
    fn backlog(&self, room: Uuid, cursor: Cursor) -> (Vec<Buffered>, Start) {
        let Some(log) = self.partitions.get(&cursor.partition) else {
            return (Vec::new(), Start::Reset(ResetReason::ForeignCursor));
        };
        let elsewhere = self
            .partitions
            .iter()
            .any(|(p, other)| *p != cursor.partition && other.rooms.contains(&room));
        if elsewhere {
            return (Vec::new(), Start::Reset(ResetReason::ForeignCursor));
        }
        if cursor.offset + 1 < log.complete_from {
            return (Vec::new(), Start::Reset(ResetReason::TooOld));
        }
        let last = log.last.unwrap_or(log.complete_from - 1);
        if cursor.offset > last {
            return (
                Vec::new(),
                Start::Ahead {
                    partition: cursor.partition,
                    offset: cursor.offset,
                },
            );
        }
        let backlog = log
            .events
            .iter()
            .filter(|b| b.room == room && b.cursor.offset > cursor.offset)
            .cloned()
            .collect();
        (backlog, Start::Resumed)
    }
}

/// The live frame for `event` in a room with subscribers (None when there is nothing to tell).
fn build_live(
    room: &mut Room,
    cursor: Cursor,
    event: &Envelope,
    seed: Option<HashMap<String, HashSet<Uuid>>>,
) -> Option<Bytes> {
    match &event.body {
        EventBody::MessagePosted { message_id, .. } => {
            room.tallies.insert(*message_id, HashMap::new());
            plain_frame(cursor, event)
        }
        EventBody::ReactionAdded { message_id, emoji }
        | EventBody::ReactionRemoved { message_id, emoji } => {
            if let Some(seed) = seed {
                room.tallies.insert_if_absent(*message_id, seed);
            }
            let added = matches!(event.body, EventBody::ReactionAdded { .. });
            let users = room.tallies.users(*message_id, emoji);
            let changed = if added {
                users.insert(event.user.id)
            } else {
                users.remove(&event.user.id)
            };
            let count = users.len();
            // A repeated add or a remove of nothing changes no count: nothing to tell.
            changed.then(|| reaction_frame(cursor, event, *message_id, emoji, added, count))
        }
        _ => plain_frame(cursor, event),
    }
}

/// The frame of a message or mode change (None for events subscribers do not see).
fn plain_frame(cursor: Cursor, event: &Envelope) -> Option<Bytes> {
    match &event.body {
        EventBody::MessagePosted { message_id, text } => {
            let message = Message {
                id: *message_id,
                room_id: event.room_id,
                user: event.user.clone(),
                text: text.clone(),
                at: event.at,
                reactions: Default::default(),
            };
            Some(frame(cursor, "message", &message))
        }
        EventBody::RoomModeChanged { mode } => {
            Some(frame(cursor, "mode", &ModeData { mode: *mode }))
        }
        _ => None,
    }
}

fn reaction_frame(
    cursor: Cursor,
    event: &Envelope,
    message_id: Uuid,
    emoji: &str,
    added: bool,
    count: usize,
) -> Bytes {
    let data = ReactionData {
        message_id,
        emoji,
        user: &event.user,
        op: if added { "added" } else { "removed" },
        count,
    };
    frame(cursor, "reaction", &data)
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
pub fn frame(cursor: Cursor, event: &str, data: &impl Serialize) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    let _ = write!(buf, "id: {cursor}\nevent: {event}\ndata: ");
    serde_json::to_writer(&mut buf, data).expect("event data serialises");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// `event: mode` without an `id:` (so the client's resume cursor is unchanged): the room's current
/// mode, sent first to a client that subscribes while the room is hot.
pub fn mode_frame(mode: RoomMode) -> Bytes {
    let mut buf = Vec::with_capacity(48);
    let _ = write!(buf, "event: mode\ndata: ");
    serde_json::to_writer(&mut buf, &ModeData { mode }).expect("mode data serialises");
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

    fn message_event(room: Uuid) -> Payload {
        let user = User {
            id: Uuid::nil(),
            name: "u".into(),
        };
        Payload::Event(Arc::new(Envelope::new(
            room,
            user,
            EventBody::MessagePosted {
                message_id: Uuid::now_v7(),
                text: "t".into(),
            },
        )))
    }

    fn inner_with(partition: i32, from: i64, rooms: &[(i64, Uuid)], capacity: usize) -> Inner {
        let mut inner = Inner::default();
        inner
            .partitions
            .insert(partition, PartitionLog::new(from, id_window(capacity)));
        for (offset, room) in rooms {
            let cursor = Cursor {
                partition,
                offset: *offset,
            };
            inner.seen(cursor, Some((*room, message_event(*room))), capacity);
        }
        inner
    }

    #[test]
    fn recent_ids_refuse_a_repeat_and_forget_the_oldest_beyond_the_bound() {
        let mut ids = RecentIds::new(2);
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert!(ids.insert(a));
        assert!(!ids.insert(a), "a repeat is refused");
        assert!(ids.insert(b));
        assert!(ids.insert(c));
        assert!(!ids.insert(c));
        assert!(ids.insert(a), "the oldest was forgotten");
        assert_eq!(ids.set.len(), 2);
    }

    #[tokio::test]
    async fn a_record_written_twice_is_dispatched_once() {
        // Message events never reach the read model; it is only there to build a hub.
        let dir = std::env::temp_dir().join(format!("hotchat-hub-test-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let read_model = ReadModel::open_file(&dir.join("read.db")).await.unwrap();
        let hub = Hub::new(16, 16, read_model);
        let room = Uuid::now_v7();
        let subscription = hub.subscribe(room, None, None);
        let Payload::Event(event) = message_event(room) else {
            unreachable!()
        };
        for offset in [3, 4] {
            let cursor = Cursor {
                partition: 0,
                offset,
            };
            hub.dispatch(cursor, Some((*event).clone())).await;
        }
        let mut live = subscription.receiver;
        assert_eq!(live.try_recv().expect("the first copy").offset, 3);
        assert!(live.try_recv().is_err(), "the second copy is dropped");
        let resumed = hub.subscribe(
            room,
            Some(Cursor {
                partition: 0,
                offset: 2,
            }),
            None,
        );
        assert_eq!(offsets(&resumed.backlog), [3], "and left out of resumes");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn offsets(backlog: &[Buffered]) -> Vec<i64> {
        backlog.iter().map(|b| b.cursor.offset).collect()
    }

    #[test]
    fn backlog_holds_exactly_the_rooms_events_after_the_cursor() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let inner = inner_with(0, 0, &[(0, a), (1, b), (2, a), (3, a), (4, b)], 100);
        let (backlog, start) = inner.backlog(
            a,
            Cursor {
                partition: 0,
                offset: 0,
            },
        );
        assert_eq!(start, Start::Resumed);
        assert_eq!(offsets(&backlog), [2, 3]);
        let (backlog, start) = inner.backlog(
            a,
            Cursor {
                partition: 0,
                offset: 3,
            },
        );
        assert_eq!((offsets(&backlog), start), (vec![], Start::Resumed));
    }

    #[test]
    fn cursors_older_than_the_buffer_or_elsewhere_are_reset() {
        let a = Uuid::now_v7();
        let inner = inner_with(0, 10, &[(10, a), (11, a), (12, a), (13, a)], 2);
        // Offsets 10 and 11 were evicted: resuming after 10 would miss 11.
        let (_, start) = inner.backlog(
            a,
            Cursor {
                partition: 0,
                offset: 10,
            },
        );
        assert_eq!(start, Start::Reset(ResetReason::TooOld));
        let (backlog, start) = inner.backlog(
            a,
            Cursor {
                partition: 0,
                offset: 11,
            },
        );
        assert_eq!((offsets(&backlog), start), (vec![12, 13], Start::Resumed));
        let (_, start) = inner.backlog(
            a,
            Cursor {
                partition: 5,
                offset: 11,
            },
        );
        assert_eq!(start, Start::Reset(ResetReason::ForeignCursor));
        let (_, start) = inner.backlog(
            a,
            Cursor {
                partition: 0,
                offset: 99,
            },
        );
        assert_eq!(
            start,
            Start::Ahead {
                partition: 0,
                offset: 99
            }
        );
    }

    #[test]
    fn a_cursor_on_another_partition_than_the_rooms_is_reset() {
        let a = Uuid::now_v7();
        let mut inner = inner_with(0, 0, &[(0, a)], 10);
        inner.partitions.insert(
            1,
            PartitionLog {
                last: Some(5),
                ..PartitionLog::new(0, 16)
            },
        );
        let (_, start) = inner.backlog(
            a,
            Cursor {
                partition: 1,
                offset: 3,
            },
        );
        assert_eq!(start, Start::Reset(ResetReason::ForeignCursor));
    }
}
