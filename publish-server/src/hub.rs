//! Rooms, their subscribers, and what the hub knows from the log.
//!
//! Hot path: each event is serialised once into an SSE frame ([`frames`]; `Bytes`, reference-counted)
//! and the same bytes go to every subscriber through the room's `broadcast` channel, so delivering
//! to N clients costs N pointer copies, not N serialisations. The channel is a bounded ring: a
//! subscriber that falls a whole ring behind has lost events, so it is cut off (bounded memory, and a
//! stalled client never slows anyone else down). [`Hub::sweep`] finds such subscribers even when
//! their socket is blocked and their stream is never polled, and cancels their connection.
//!
//! [`Hub::dispatch`] never waits on I/O: a reaction's count comes from the hub's own tallies
//! ([`tallies`]), seeded off the path when needed ([`seeds`]), and is left out while unknown. The
//! hub also remembers which rooms the log has shown it (their partition and mode), so a client can
//! subscribe to such a room while the database is down.
//!
//! Resume ([`resume`]): the hub keeps the last `resume_capacity` events of every partition. A client
//! that reconnects with a cursor gets the events of its room after that cursor from this buffer,
//! taken in the same critical section in which it subscribes to the live channel — so nothing is
//! missed and nothing is sent twice, even while events keep arriving. A cursor older than the
//! buffer, from an unknown partition, or not matching the room's partition gets `event: reset`.
//!
//! Duplicates: the idempotent producer can still write one event twice when it retries across an
//! epoch bump (librdkafka, after in-flight requests time out during an outage), so each partition
//! remembers the ids of its recent events and a record whose event id it has already seen is
//! dropped, live and for resumes alike. The projector deduplicates on the same id in the database.
//!
//! Rooms have a channel here only while they have subscribers; a room whose last subscriber left is
//! released on the next event or sweep.

mod batches;
mod frames;
mod resume;
mod seeds;
mod tallies;

pub use batches::{Batch, Flushed};
pub use frames::{
    CountsData, DeleteData, EditData, ModeData, ReactionData, frame, mode_frame, presence_frame,
    reset_frame,
};
pub use resume::Buffered;

use std::{
    collections::HashMap,
    sync::{
        Arc, LazyLock, Mutex, OnceLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use shared::{
    cursor::Cursor,
    event::{Envelope, EventBody, RoomMode},
    readmodel::ReadModel,
    shutdown::CancellationToken,
};
use tokio::sync::broadcast;
use uuid::Uuid;

use self::{batches::Pending, resume::PartitionLog, seeds::SeedQueue, tallies::Tallies};
use crate::{
    live::Writers,
    metrics::{FrameClass, LARGE_ROOM, Metrics, Stamp},
};

/// One pre-serialised SSE frame, shared by every subscriber of a room.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The event's offset in its partition.
    pub offset: i64,
    /// The room's frame counter when it was sent (for the stall watchdog).
    pub seq: u64,
    pub bytes: Bytes,
    /// For a throttled room's batch ([`batches`]): its frames one by one, for a subscriber that
    /// must skip some of them.
    pub batch: Option<Arc<Batch>>,
    /// When its event reached the hub (a batch's first): its age is counted from here.
    pub received: Instant,
    /// What its age counts as.
    pub class: FrameClass,
}

impl Frame {
    /// What the frame's age is counted from, and its class.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            received: self.received,
            class: self.class,
        }
    }
}

/// A subscriber's progress, watched by [`Hub::sweep`].
#[derive(Default)]
pub struct Subscriber {
    /// `seq` of the last frame handed to the connection.
    consumed: AtomicU64,
    /// Since when (milliseconds after [`EPOCH`], plus one) bytes have waited for the client; 0
    /// while nothing does.
    owing_since: AtomicU64,
    /// Cancelled to close the connection when the subscriber falls too far behind, or stalls.
    cut: Option<CancellationToken>,
}

/// What [`Subscriber::owing_since`] counts from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn since_epoch() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Subscriber {
    pub fn consumed(&self, seq: u64) {
        self.consumed.store(seq, Ordering::Relaxed);
    }

    /// Bytes wait for the client (its socket is full, or its response body is not being read):
    /// if it does not take them within the stall period, [`Hub::sweep`] cuts it off. The first
    /// mark counts until [`Subscriber::paid`].
    pub fn owing(&self) {
        let now = since_epoch().saturating_add(1);
        let _ = self
            .owing_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The client took everything that waited for it.
    pub fn paid(&self) {
        self.owing_since.store(0, Ordering::Relaxed);
    }

    /// Whether bytes have waited for the client for `stall` or longer.
    fn stalled(&self, stall: Duration) -> bool {
        match self.owing_since.load(Ordering::Relaxed) {
            0 => false,
            since => {
                let waited = since_epoch().saturating_add(1).saturating_sub(since);
                u128::from(waited) >= stall.as_millis()
            }
        }
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
    /// Live frames at or before this offset are already in the backlog or from before the
    /// subscription (a throttled room's batch that was waiting to go out).
    pub skip_through: Option<i64>,
    /// The room's connections written to by its senders.
    pub writers: Arc<Writers>,
}

/// A kept event: its frame if it was sent live, else what is needed to build it (nobody listened
/// when it arrived, so it was not serialised).
#[derive(Clone)]
pub enum Payload {
    Frame(Bytes),
    Event {
        event: Arc<Envelope>,
        /// A reaction's count when it was dispatched, if known.
        count: Option<usize>,
        /// Its frame, built by the first resume that needs it and shared by every later one: a
        /// thousand clients resuming through the same events hold one copy of them, not a
        /// thousand.
        built: Arc<OnceLock<Option<Bytes>>>,
    },
}

impl Payload {
    fn event(event: &Arc<Envelope>, count: Option<usize>) -> Self {
        Payload::Event {
            event: event.clone(),
            count,
            built: Arc::default(),
        }
    }
}

/// What the log has shown about a room.
#[derive(Clone, Copy)]
struct KnownRoom {
    partition: i32,
    /// `None` until a creation or mode change of the room has been read.
    mode: Option<ModeData>,
}

pub struct Hub {
    inner: Mutex<Inner>,
    /// Read off the live path only, by the seeder.
    read_model: ReadModel,
    seeds: SeedQueue,
    room_capacity: usize,
    resume_capacity: usize,
    /// Whether throttled rooms' frames are batched (`HOT_SSE_BATCH_MS` > 0).
    coalesce: bool,
    /// Shards of each room's writers: one per core.
    shards: usize,
    /// Where rooms' writers count what they write.
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Inner {
    /// Rooms with subscribers here.
    rooms: HashMap<Uuid, Room>,
    /// Every room seen in the log since start-up (a few dozen bytes each).
    known: HashMap<Uuid, KnownRoom>,
    partitions: HashMap<i32, PartitionLog>,
    tallies: Tallies,
    /// Rooms whose batch has frames waiting for the next [`Hub::flush`].
    batching: Vec<Uuid>,
    /// Batches sent before their time (their room cooled down), for the next flush to report.
    early: Flushed,
    /// Rooms sent frames that their writers have not passed over yet ([`Hub::write_due`]).
    due: Vec<Arc<Writers>>,
}

struct Room {
    sender: broadcast::Sender<Frame>,
    /// Frames sent so far.
    sent: u64,
    subscribers: Vec<Weak<Subscriber>>,
    /// Frames of a throttled room waiting to go out together.
    pending: Pending,
    /// Its taken-over connections that keep up, written to in passes by whoever sends.
    writers: Arc<Writers>,
}

impl Room {
    /// Sends a frame to the room's channel and puts the room on `due`, the rooms whose writers
    /// the sender passes over once it is done sending.
    fn send(
        &mut self,
        offset: i64,
        bytes: Bytes,
        batch: Option<Arc<Batch>>,
        received: Instant,
        due: &mut Vec<Arc<Writers>>,
    ) {
        self.sent += 1;
        // The room's size without the channel's lock (its `receiver_count` takes it): the
        // subscribers as of the last sweep are near enough for a label.
        let class = if batch.is_some() {
            FrameClass::Batched
        } else if self.subscribers.len() > LARGE_ROOM {
            FrameClass::Large
        } else {
            FrameClass::Normal
        };
        // An error only means every receiver left.
        let _ = self.sender.send(Frame {
            offset,
            seq: self.sent,
            bytes,
            batch,
            received,
            class,
        });
        if !self.writers.due.swap(true, Ordering::Relaxed) {
            due.push(self.writers.clone());
        }
    }

    /// Sends what the room's batch holds, as one frame.
    fn send_batch(&mut self, flushed: &mut Flushed, due: &mut Vec<Arc<Writers>>) {
        if let Some((offset, bytes, batch, received)) = self.pending.take(flushed) {
            self.send(offset, bytes, Some(batch), received, due);
        }
    }
}

impl Hub {
    /// `room_capacity`: how far behind a subscriber may fall; `resume_capacity`: events kept per
    /// partition for resuming clients. `read_model` seeds reaction counts, off the live path.
    /// `coalesce`: whether throttled rooms' frames wait for [`Hub::flush`] to go out together.
    pub fn new(
        room_capacity: usize,
        resume_capacity: usize,
        read_model: ReadModel,
        coalesce: bool,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            read_model,
            seeds: SeedQueue::default(),
            room_capacity,
            resume_capacity,
            coalesce,
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("hub lock poisoned")
    }

    /// Declares that the fan-out reads `partition` from `offset` on.
    pub fn start_partition(&self, partition: i32, offset: i64) {
        self.lock()
            .partitions
            .insert(partition, PartitionLog::new(offset, self.resume_capacity));
    }

    /// What the log has shown about `room`: `None` if nothing, else its mode (and the fetch
    /// interval that goes with it) if known.
    pub fn room(&self, room: Uuid) -> Option<Option<ModeData>> {
        self.lock().known.get(&room).map(|known| known.mode)
    }

    /// Subscribes to `room`, resuming after `from` if given.
    pub fn subscribe(
        &self,
        room: Uuid,
        from: Option<Cursor>,
        cut: Option<CancellationToken>,
    ) -> Subscription {
        let mut inner = self.lock();
        let (mut backlog, start) = match from {
            None => (Vec::new(), Start::Live),
            Some(cursor) => inner.backlog(room, cursor),
        };
        if self.coalesce && inner.throttled(room) {
            // Told as it would have been live: each message's reactions as its counts.
            backlog = batches::fold_backlog(backlog, |message| inner.tallies.counts(message));
        }
        let capacity = self.room_capacity;
        let channel = inner.rooms.entry(room).or_insert_with(|| Room {
            sender: broadcast::channel(capacity).0,
            sent: 0,
            subscribers: Vec::new(),
            pending: Pending::default(),
            writers: Arc::new(Writers::new(self.shards, &self.metrics)),
        });
        let subscriber = Arc::new(Subscriber {
            consumed: AtomicU64::new(channel.sent),
            owing_since: AtomicU64::new(0),
            cut,
        });
        channel.subscribers.push(Arc::downgrade(&subscriber));
        Subscription {
            receiver: channel.sender.subscribe(),
            backlog,
            start,
            subscriber,
            skip_through: channel.pending.last_offset(),
            writers: channel.writers.clone(),
        }
    }

    /// Frames for backlog events, building those nobody listened to when they arrived (once:
    /// the frames are shared with the resume buffer and every other resume, never copied).
    pub fn frames(&self, backlog: Vec<Buffered>) -> Vec<Bytes> {
        backlog
            .into_iter()
            .filter_map(|buffered| match buffered.payload {
                Payload::Frame(bytes) => Some(bytes),
                Payload::Event {
                    event,
                    count,
                    built,
                } => built
                    .get_or_init(|| frames::event_frame(buffered.cursor, &event, count))
                    .clone(),
            })
            .collect()
    }

    /// Records an event (or, with `None`, a record that was not one) read at `cursor`, and sends it
    /// to the room's subscribers. Takes the hub's lock once and waits on nothing else.
    pub fn dispatch(&self, cursor: Cursor, event: Option<Envelope>) {
        let received = Instant::now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let partition = inner.partition(cursor, self.resume_capacity);
        let Some(event) = event else {
            partition.seen(cursor, None);
            return;
        };
        if !partition.first_time(event.event_id) {
            tracing::debug!(%cursor, event_id = %event.event_id, "fan-out dropped a duplicate record");
            partition.seen(cursor, None);
            return;
        }
        inner.learn(cursor, &event);
        let (tell, count) = match &event.body {
            EventBody::RoomCreated { .. } => (false, None),
            EventBody::MessagePosted { message_id, .. } => {
                inner.tallies.posted(*message_id);
                (true, None)
            }
            EventBody::ReactionAdded { message_id, emoji }
            | EventBody::ReactionRemoved { message_id, emoji } => {
                let added = matches!(event.body, EventBody::ReactionAdded { .. });
                let reacted =
                    inner
                        .tallies
                        .react(*message_id, cursor.offset, emoji, event.user.id, added);
                if reacted.seed {
                    self.seeds.request(*message_id, cursor.partition);
                }
                // A repeated add or a remove of nothing changes no count: nothing to tell.
                (reacted.changed, reacted.count)
            }
            EventBody::MessageDeleted { message_id } => {
                inner.tallies.deleted(*message_id);
                (true, None)
            }
            EventBody::RoomModeChanged { .. }
            | EventBody::MessageEdited { .. }
            | EventBody::RoomUpdated { .. } => (true, None),
            // Roles and bans concern the write side; streams do not show them.
            EventBody::ModeratorAdded { .. }
            | EventBody::ModeratorRemoved { .. }
            | EventBody::UserBanned { .. }
            | EventBody::UserUnbanned { .. } => (false, None),
        };
        let partition = inner.partition(cursor, self.resume_capacity);
        if !tell {
            partition.seen(cursor, None);
            return;
        }
        let event = Arc::new(event);
        let room_id = event.room_id;
        let throttled = self.coalesce && inner.throttled(room_id);
        let Inner {
            rooms,
            tallies,
            batching,
            early,
            due,
            ..
        } = inner;
        let payload = match rooms.get_mut(&room_id) {
            Some(room) if room.sender.receiver_count() > 0 => {
                let folded = match (&event.body, count) {
                    (EventBody::ReactionAdded { message_id, .. }, Some(_))
                    | (EventBody::ReactionRemoved { message_id, .. }, Some(_))
                        if throttled =>
                    {
                        tallies
                            .counts(*message_id)
                            .map(|counts| (*message_id, counts))
                    }
                    _ => None,
                };
                if let Some((message_id, counts)) = folded {
                    // Told by the batch as the message's counts; a resume tells it one by one.
                    let data = CountsData {
                        message_id,
                        counts: &counts,
                    };
                    let bytes = frame(cursor, "reaction", &data);
                    if room
                        .pending
                        .fold(message_id, cursor.offset, bytes, received)
                    {
                        batching.push(room_id);
                    }
                    Payload::event(&event, count)
                } else if let Some(bytes) = frames::event_frame(cursor, &event, count) {
                    if throttled {
                        if room
                            .pending
                            .push(Some(cursor.offset), bytes.clone(), received)
                        {
                            batching.push(room_id);
                        }
                    } else {
                        // What waited in the batch goes first (the room just cooled down).
                        room.send_batch(early, due);
                        room.send(cursor.offset, bytes.clone(), None, received, due);
                    }
                    Payload::Frame(bytes)
                } else {
                    Payload::event(&event, count)
                }
            }
            room => {
                if room.is_some() {
                    rooms.remove(&room_id);
                }
                Payload::event(&event, count)
            }
        };
        let reaction_on = match &event.body {
            EventBody::ReactionAdded { message_id, .. }
            | EventBody::ReactionRemoved { message_id, .. } => count.map(|_| *message_id),
            _ => None,
        };
        inner
            .partition(cursor, self.resume_capacity)
            .seen(cursor, Some((room_id, payload, reaction_on)));
    }

    /// Sends `bytes` (a frame that is not an event of the log, e.g. `presence`) to `room`'s
    /// current subscribers. It is not kept for resuming clients, and no client skips it.
    pub fn announce(&self, room_id: Uuid, bytes: Bytes) {
        let mut inner = self.lock();
        let throttled = self.coalesce && inner.throttled(room_id);
        let Inner {
            rooms,
            batching,
            due,
            ..
        } = &mut *inner;
        if let Some(room) = rooms.get_mut(&room_id)
            && room.sender.receiver_count() > 0
        {
            let now = Instant::now();
            if !throttled {
                room.send(i64::MAX, bytes, None, now, due);
            } else if room.pending.push(None, bytes, now) {
                batching.push(room_id);
            }
        }
    }

    /// Sends every throttled room's waiting frames, one frame per room. Run every
    /// `HOT_SSE_BATCH_MS`: a subscriber of a throttled room gets one write per period at most.
    pub fn flush(&self) -> Flushed {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut flushed = std::mem::take(&mut inner.early);
        for room_id in std::mem::take(&mut inner.batching) {
            if let Some(room) = inner.rooms.get_mut(&room_id) {
                room.send_batch(&mut flushed, &mut inner.due);
            }
        }
        flushed
    }

    /// Writes the frames sent since the last call to the taken-over connections that keep up, one
    /// pass per room, smallest rooms first: small rooms at once, bigger ones on tasks of their own
    /// that yield between slices ([`Writers::write`]), so a viral room holds up neither the cold
    /// rooms' frames nor the sender, and big rooms are written on both cores. Whoever sends frames
    /// calls this when it is done sending, outside the hub's lock.
    pub fn write_due(&self) {
        let mut due = {
            let mut inner = self.lock();
            for writers in &inner.due {
                writers.due.store(false, Ordering::Relaxed);
            }
            std::mem::take(&mut inner.due)
        };
        due.sort_by_key(|writers| writers.size());
        for writers in due {
            writers.write();
        }
    }

    /// Every room's writers (for keep-alives).
    pub fn writers(&self) -> Vec<Arc<Writers>> {
        let inner = self.lock();
        inner
            .rooms
            .values()
            .map(|room| room.writers.clone())
            .collect()
    }

    /// Completes a pending tally with a seed read when the read model held everything before
    /// `as_of`.
    fn seeded(&self, message: Uuid, as_of: i64, reactions: Vec<(String, Uuid)>) -> tallies::Seeded {
        self.lock().tallies.seeded(message, as_of, reactions)
    }

    /// Releases rooms nobody listens to and cuts off subscribers that fell a whole ring behind or
    /// left what waits for them untaken for `stall` (see [`Subscriber::owing`]): a client that
    /// stops reading is cut off even in a room that stays quiet. Returns how many were cut off.
    pub fn sweep(&self, stall: Duration) -> usize {
        let mut inner = self.lock();
        let mut cut = 0;
        let capacity = self.room_capacity as u64;
        inner.rooms.retain(|_, room| {
            room.subscribers.retain(|weak| match weak.upgrade() {
                None => false,
                Some(subscriber) => {
                    let behind =
                        room.sent - subscriber.consumed.load(Ordering::Relaxed).min(room.sent);
                    if behind >= capacity || subscriber.stalled(stall) {
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
    /// Whether the log last said `room` is throttled.
    fn throttled(&self, room: Uuid) -> bool {
        self.known
            .get(&room)
            .and_then(|known| known.mode)
            .is_some_and(|mode| mode.mode == RoomMode::Throttled)
    }

    fn partition(&mut self, cursor: Cursor, capacity: usize) -> &mut PartitionLog {
        self.partitions
            .entry(cursor.partition)
            .or_insert_with(|| PartitionLog::new(cursor.offset, capacity))
    }

    /// Notes the room of `event`: its partition, and its mode when the event tells it.
    fn learn(&mut self, cursor: Cursor, event: &Envelope) {
        let mode = match &event.body {
            EventBody::RoomCreated { .. } => Some(ModeData::NORMAL),
            EventBody::RoomModeChanged {
                mode,
                fetch_interval_ms,
                reason,
            } => Some(ModeData {
                mode: *mode,
                fetch_interval_ms: *fetch_interval_ms,
                reason: *reason,
            }),
            _ => None,
        };
        let known = self.known.entry(event.room_id).or_insert(KnownRoom {
            partition: cursor.partition,
            mode: None,
        });
        known.partition = cursor.partition;
        if mode.is_some() {
            known.mode = mode;
        }
    }

    /// The events of `room` after `cursor`, or why they cannot be given.
    fn backlog(&self, room: Uuid, cursor: Cursor) -> (Vec<Buffered>, Start) {
        let Some(log) = self.partitions.get(&cursor.partition) else {
            return (Vec::new(), Start::Reset(ResetReason::ForeignCursor));
        };
        if self
            .known
            .get(&room)
            .is_some_and(|known| known.partition != cursor.partition)
        {
            return (Vec::new(), Start::Reset(ResetReason::ForeignCursor));
        }
        log.backlog(room, cursor)
    }
}

#[cfg(test)]
mod tests {
    use shared::event::User;

    use super::*;

    async fn hub() -> Hub {
        // Only seeds would touch the read model; these tests do not run the seeder.
        let dir = std::env::temp_dir().join(format!("hotchat-hub-test-{}", Uuid::now_v7()));
        let read_model = ReadModel::open_file(&dir.join("read.db")).await.unwrap();
        Hub::new(16, 16, read_model, true, Arc::default())
    }

    fn user() -> User {
        User {
            id: Uuid::now_v7(),
            name: "u".into(),
        }
    }

    fn at(partition: i32, offset: i64) -> Cursor {
        Cursor { partition, offset }
    }

    fn posted(room: Uuid) -> (Uuid, Envelope) {
        let message_id = Uuid::now_v7();
        let body = EventBody::MessagePosted {
            message_id,
            text: "t".into(),
        };
        (message_id, Envelope::new(room, user(), body))
    }

    fn reaction(room: Uuid, message_id: Uuid, who: &User) -> Envelope {
        let body = EventBody::ReactionAdded {
            message_id,
            emoji: "👍".into(),
        };
        Envelope::new(room, who.clone(), body)
    }

    fn text(frame: &Frame) -> String {
        String::from_utf8(frame.bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_record_written_twice_is_dispatched_once() {
        let hub = hub().await;
        let room = Uuid::now_v7();
        let mut live = hub.subscribe(room, None, None).receiver;
        let (_, event) = posted(room);
        for offset in [3, 4] {
            hub.dispatch(at(0, offset), Some(event.clone()));
        }
        assert_eq!(live.try_recv().expect("the first copy").offset, 3);
        assert!(live.try_recv().is_err(), "the second copy is dropped");
        let resumed = hub.subscribe(room, Some(at(0, 2)), None);
        let offsets: Vec<i64> = resumed.backlog.iter().map(|b| b.cursor.offset).collect();
        assert_eq!(offsets, [3], "and left out of resumes");
    }

    #[tokio::test]
    async fn reactions_on_a_message_read_here_carry_exact_counts_without_the_database() {
        let hub = hub().await;
        let room = Uuid::now_v7();
        let mut live = hub.subscribe(room, None, None).receiver;
        let (message, event) = posted(room);
        hub.dispatch(at(0, 0), Some(event));
        let (alice, bob) = (user(), user());
        hub.dispatch(at(0, 1), Some(reaction(room, message, &alice)));
        hub.dispatch(at(0, 2), Some(reaction(room, message, &bob)));
        hub.dispatch(at(0, 3), Some(reaction(room, message, &bob)));
        let frames: Vec<String> = std::iter::from_fn(|| live.try_recv().ok())
            .map(|f| text(&f))
            .collect();
        assert_eq!(
            frames.len(),
            3,
            "the repeated add tells nothing: {frames:?}"
        );
        assert!(frames[1].contains(r#""count":1"#), "{}", frames[1]);
        assert!(frames[2].contains(r#""count":2"#), "{}", frames[2]);
    }

    #[tokio::test]
    async fn a_reaction_on_an_older_message_goes_out_at_once_without_a_count_and_asks_for_a_seed() {
        let hub = hub().await;
        let room = Uuid::now_v7();
        let mut live = hub.subscribe(room, None, None).receiver;
        let (older, first) = (Uuid::now_v7(), user());
        hub.dispatch(at(0, 7), Some(reaction(room, older, &first)));
        let frame = text(&live.try_recv().expect("sent without waiting"));
        assert!(
            frame.contains("\"op\":\"added\"") && !frame.contains("count"),
            "{frame}"
        );
        assert_eq!(hub.seeds.take(), [(older, 0)]);
        // Seeded with the read model complete through offset 7 (so it has the first reaction):
        // exact from then on.
        let seed = vec![("👍".to_owned(), first.id)];
        assert_eq!(hub.seeded(older, 8, seed), tallies::Seeded::Complete);
        hub.dispatch(at(0, 8), Some(reaction(room, older, &user())));
        let frame = text(&live.try_recv().unwrap());
        assert!(frame.contains(r#""count":2"#), "{frame}");
    }

    #[tokio::test]
    async fn the_hub_knows_rooms_and_their_mode_from_the_log() {
        let hub = hub().await;
        let room = Uuid::now_v7();
        assert_eq!(hub.room(room), None);
        let created = Envelope::new(room, user(), EventBody::RoomCreated { name: "r".into() });
        hub.dispatch(at(1, 0), Some(created));
        assert_eq!(hub.room(room), Some(Some(ModeData::NORMAL)));
        let hot = Envelope::new(
            room,
            user(),
            EventBody::RoomModeChanged {
                mode: RoomMode::Throttled,
                fetch_interval_ms: 250,
                reason: Some(shared::event::HotReason::Deliveries),
            },
        );
        hub.dispatch(at(1, 1), Some(hot));
        let throttled = ModeData {
            mode: RoomMode::Throttled,
            fetch_interval_ms: 250,
            reason: Some(shared::event::HotReason::Deliveries),
        };
        assert_eq!(hub.room(room), Some(Some(throttled)));
        let (_, message) = posted(Uuid::now_v7());
        let other = message.room_id;
        hub.dispatch(at(1, 2), Some(message));
        assert_eq!(hub.room(other), Some(None), "known, mode not read yet");
        // A cursor on another partition than the room's is foreign.
        hub.start_partition(0, 0);
        let resumed = hub.subscribe(room, Some(at(0, 0)), None);
        assert_eq!(resumed.start, Start::Reset(ResetReason::ForeignCursor));
    }

    fn mode(room: Uuid, mode: RoomMode) -> Envelope {
        let body = EventBody::RoomModeChanged {
            mode,
            fetch_interval_ms: 100,
            reason: None,
        };
        Envelope::new(room, user(), body)
    }

    #[tokio::test]
    async fn a_throttled_room_sends_one_batch_per_flush_with_reactions_folded_into_counts() {
        let hub = hub().await;
        let (hot, cold) = (Uuid::now_v7(), Uuid::now_v7());
        let mut live = hub.subscribe(hot, None, None).receiver;
        let mut cold_live = hub.subscribe(cold, None, None).receiver;
        hub.dispatch(at(0, 0), Some(mode(hot, RoomMode::Throttled)));
        let (message, event) = posted(hot);
        hub.dispatch(at(0, 1), Some(event));
        let (alice, bob) = (user(), user());
        hub.dispatch(at(0, 2), Some(reaction(hot, message, &alice)));
        let (_, cold_event) = posted(cold);
        hub.dispatch(at(0, 3), Some(cold_event));
        hub.dispatch(at(0, 4), Some(reaction(hot, message, &bob)));
        assert_eq!(
            cold_live
                .try_recv()
                .expect("a cold room is not delayed")
                .offset,
            3
        );
        assert!(live.try_recv().is_err(), "the hot room's frames wait");

        assert_eq!(
            hub.flush(),
            Flushed {
                batches: 1,
                folded: 1
            }
        );
        let batch = live.try_recv().expect("one frame for the batch");
        assert!(live.try_recv().is_err(), "and only one");
        let text = text(&batch);
        let ids: Vec<&str> = text.lines().filter(|l| l.starts_with("id: ")).collect();
        assert_eq!(ids, ["id: 0-0", "id: 0-1", "id: 0-4"], "{text}");
        assert!(
            text.contains(&format!(
                r#"event: reaction
data: {{"message_id":"{message}","counts":{{"👍":2}}}}"#
            )),
            "{text}"
        );
        assert_eq!(batch.batch.as_ref().unwrap().events, 4);
        assert_eq!(hub.flush(), Flushed::default(), "nothing waits");

        // A resume is told what a live subscriber was: the reactions as the message's counts.
        let resumed = hub.subscribe(hot, Some(at(0, 1)), None);
        let offsets: Vec<i64> = resumed.backlog.iter().map(|b| b.cursor.offset).collect();
        assert_eq!(offsets, [4]);
        let told = String::from_utf8(hub.frames(resumed.backlog)[0].to_vec()).unwrap();
        assert!(told.contains(r#""counts":{"👍":2}"#), "{told}");
    }

    #[tokio::test]
    async fn a_subscriber_skips_the_waiting_batch_and_a_room_that_cools_down_sends_it_first() {
        let hub = hub().await;
        let room = Uuid::now_v7();
        let mut early = hub.subscribe(room, None, None).receiver;
        hub.dispatch(at(0, 0), Some(mode(room, RoomMode::Throttled)));
        let (_, event) = posted(room);
        hub.dispatch(at(0, 1), Some(event));
        let late = hub.subscribe(room, Some(at(0, 0)), None);
        assert_eq!(
            late.backlog
                .iter()
                .map(|b| b.cursor.offset)
                .collect::<Vec<_>>(),
            [1]
        );
        assert_eq!(
            late.skip_through,
            Some(1),
            "the batch's events are in its backlog"
        );
        let mut late = late.receiver;
        hub.dispatch(at(0, 2), Some(mode(room, RoomMode::Normal)));
        let batch = early.try_recv().expect("the waiting batch goes first");
        assert_eq!(batch.batch.as_ref().unwrap().events, 2);
        assert_eq!(early.try_recv().unwrap().offset, 2, "then the cold frame");
        assert!(
            late.try_recv()
                .unwrap()
                .batch
                .unwrap()
                .starts_at_or_before(1)
        );
        assert_eq!(hub.flush().batches, 1, "sent already, reported now");
        assert!(early.try_recv().is_err(), "and not sent again");
        let (_, event) = posted(room);
        hub.dispatch(at(0, 3), Some(event));
        assert_eq!(early.try_recv().unwrap().offset, 3, "cold again: at once");
    }

    #[tokio::test]
    async fn sweep_cuts_off_a_subscriber_a_whole_ring_behind_and_releases_empty_rooms() {
        let hub = hub().await;
        let (busy, quiet) = (Uuid::now_v7(), Uuid::now_v7());
        let token = CancellationToken::new();
        let stalled = hub.subscribe(busy, None, Some(token.clone()));
        let reader = hub.subscribe(busy, None, None);
        drop(hub.subscribe(quiet, None, None));
        for offset in 0..16 {
            let (_, event) = posted(busy);
            hub.dispatch(at(0, offset), Some(event));
            reader.subscriber.consumed(offset as u64 + 1);
        }
        assert_eq!(hub.room_count(), 2);
        assert_eq!(
            hub.sweep(Duration::from_secs(30)),
            1,
            "the stalled one, 16 frames behind a ring of 16"
        );
        assert!(token.is_cancelled());
        assert_eq!(
            hub.room_count(),
            1,
            "the room nobody listens to is released"
        );
        drop(stalled);
    }

    #[tokio::test]
    async fn sweep_cuts_off_a_subscriber_that_leaves_its_bytes_untaken_in_a_quiet_room() {
        let hub = hub().await;
        let room = Uuid::now_v7();
        let (owing, paying) = (CancellationToken::new(), CancellationToken::new());
        let stalled = hub.subscribe(room, None, Some(owing.clone()));
        let reading = hub.subscribe(room, None, Some(paying.clone()));
        stalled.subscriber.owing();
        reading.subscriber.owing();
        reading.subscriber.paid();
        let stall = Duration::from_millis(50);
        assert_eq!(
            hub.sweep(stall),
            0,
            "not yet: it has had no time to take them"
        );
        std::thread::sleep(Duration::from_millis(60));
        stalled.subscriber.owing(); // A later mark does not restart the wait.
        assert_eq!(hub.sweep(stall), 1);
        assert!(
            owing.is_cancelled(),
            "no event arrived, and it is cut off all the same"
        );
        assert!(!paying.is_cancelled(), "the one that took its bytes stays");
    }

    #[tokio::test]
    async fn resumes_share_the_frames_they_build() {
        let hub = hub().await;
        let room = Uuid::now_v7();
        hub.start_partition(0, 0);
        for offset in 0..3 {
            let (_, event) = posted(room);
            // Nobody listens: the events are kept unserialised.
            hub.dispatch(at(0, offset), Some(event));
        }
        let first = hub.subscribe(room, Some(at(0, 0)), None);
        let second = hub.subscribe(room, Some(at(0, 0)), None);
        let (first, second) = (hub.frames(first.backlog), hub.frames(second.backlog));
        assert_eq!(first.len(), 2);
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(a.as_ptr(), b.as_ptr(), "one frame, shared, not two copies");
        }
    }
}
