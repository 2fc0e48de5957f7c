//! The recent past of every partition, for clients that reconnect with a cursor.
//!
//! Each partition keeps its last `capacity` events, filed by room, so a resume costs what it
//! returns (a binary search in the room's events and a copy of those after the cursor), not a scan
//! of the whole buffer: a reconnect storm of thousands of clients holds the hub's lock briefly each.
//! It also remembers the event ids of its recent records, to drop one the producer wrote twice.

use std::collections::{HashMap, HashSet, VecDeque};

use shared::cursor::Cursor;
use uuid::Uuid;

use super::{Payload, ResetReason, Start};

/// An event kept for resuming clients.
#[derive(Clone)]
pub struct Buffered {
    pub cursor: Cursor,
    pub payload: Payload,
    /// For a reaction whose count was known: its message, so that a resume in a throttled room
    /// can fold it into the message's counts.
    pub reaction_on: Option<Uuid>,
}

/// An event to keep: its room, what to send, and for a reaction with a known count its message.
pub type Kept = (Uuid, Payload, Option<Uuid>);

/// The recent events of one partition.
pub struct PartitionLog {
    /// Every record from this offset on has been seen (what is older was never read or was evicted).
    complete_from: i64,
    /// The last offset seen, if any.
    pub last: Option<i64>,
    /// Kept events per room, oldest first.
    by_room: HashMap<Uuid, VecDeque<Buffered>>,
    /// Which room each kept event belongs to, oldest first: the eviction order.
    order: VecDeque<(i64, Uuid)>,
    capacity: usize,
    /// Event ids of the partition's recent records, to drop a record written twice.
    ids: RecentIds,
}

impl PartitionLog {
    /// A partition read from `complete_from` on, keeping `capacity` events.
    pub fn new(complete_from: i64, capacity: usize) -> Self {
        Self {
            complete_from,
            last: None,
            by_room: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            ids: RecentIds::new(id_window(capacity)),
        }
    }

    /// Whether `event_id` is new here (and remembers it).
    pub fn first_time(&mut self, event_id: Uuid) -> bool {
        self.ids.insert(event_id)
    }

    /// Notes a record at `cursor`, keeping it for resumes when `kept` is given.
    pub fn seen(&mut self, cursor: Cursor, kept: Option<Kept>) {
        self.last = Some(cursor.offset);
        let Some((room, payload, reaction_on)) = kept else {
            return;
        };
        self.by_room.entry(room).or_default().push_back(Buffered {
            cursor,
            payload,
            reaction_on,
        });
        self.order.push_back((cursor.offset, room));
        while self.order.len() > self.capacity {
            let Some((offset, room)) = self.order.pop_front() else {
                break;
            };
            self.complete_from = offset + 1;
            if let Some(events) = self.by_room.get_mut(&room) {
                events.pop_front();
                if events.is_empty() {
                    self.by_room.remove(&room);
                }
            }
        }
    }

    /// The events of `room` after `cursor` (a cursor of this partition), or why they cannot be
    /// given.
    pub fn backlog(&self, room: Uuid, cursor: Cursor) -> (Vec<Buffered>, Start) {
        if cursor.offset + 1 < self.complete_from {
            return (Vec::new(), Start::Reset(ResetReason::TooOld));
        }
        let last = self.last.unwrap_or(self.complete_from - 1);
        if cursor.offset > last {
            return (
                Vec::new(),
                Start::Ahead {
                    partition: cursor.partition,
                    offset: cursor.offset,
                },
            );
        }
        let backlog = match self.by_room.get(&room) {
            None => Vec::new(),
            Some(events) => {
                let after = events.partition_point(|b| b.cursor.offset <= cursor.offset);
                events.range(after..).cloned().collect()
            }
        };
        (backlog, Start::Resumed)
    }
}

/// Event ids remembered per partition: at least the resume buffer's span, and enough for a
/// producer's in-flight window at low rates.
fn id_window(capacity: usize) -> usize {
    capacity.max(1024)
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn log_with(from: i64, rooms: &[(i64, Uuid)], capacity: usize) -> PartitionLog {
        let mut log = PartitionLog::new(from, capacity);
        for (offset, room) in rooms {
            let cursor = Cursor {
                partition: 0,
                offset: *offset,
            };
            log.seen(cursor, Some((*room, Payload::Frame(Bytes::new()), None)));
        }
        log
    }

    fn at(offset: i64) -> Cursor {
        Cursor {
            partition: 0,
            offset,
        }
    }

    fn offsets(backlog: &[Buffered]) -> Vec<i64> {
        backlog.iter().map(|b| b.cursor.offset).collect()
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

    #[test]
    fn backlog_holds_exactly_the_rooms_events_after_the_cursor() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let log = log_with(0, &[(0, a), (1, b), (2, a), (3, a), (4, b)], 100);
        let (backlog, start) = log.backlog(a, at(0));
        assert_eq!((offsets(&backlog), start), (vec![2, 3], Start::Resumed));
        let (backlog, start) = log.backlog(a, at(1));
        assert_eq!((offsets(&backlog), start), (vec![2, 3], Start::Resumed));
        let (backlog, start) = log.backlog(a, at(3));
        assert_eq!((offsets(&backlog), start), (vec![], Start::Resumed));
        let (backlog, _) = log.backlog(b, at(0));
        assert_eq!(offsets(&backlog), [1, 4]);
    }

    #[test]
    fn cursors_older_than_the_buffer_are_reset_and_newer_ones_are_ahead() {
        let a = Uuid::now_v7();
        let log = log_with(10, &[(10, a), (11, a), (12, a), (13, a)], 2);
        // Offsets 10 and 11 were evicted: resuming after 10 would miss 11.
        assert_eq!(log.backlog(a, at(10)).1, Start::Reset(ResetReason::TooOld));
        let (backlog, start) = log.backlog(a, at(11));
        assert_eq!((offsets(&backlog), start), (vec![12, 13], Start::Resumed));
        assert_eq!(
            log.backlog(a, at(99)).1,
            Start::Ahead {
                partition: 0,
                offset: 99
            }
        );
    }

    #[test]
    fn eviction_is_in_log_order_across_rooms() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let log = log_with(0, &[(0, a), (1, b), (2, b), (3, a), (4, b)], 3);
        // 0 (a) and 1 (b) were evicted; the buffer is complete from offset 2.
        assert_eq!(log.backlog(a, at(0)).1, Start::Reset(ResetReason::TooOld));
        assert_eq!(offsets(&log.backlog(a, at(1)).0), [3]);
        assert_eq!(offsets(&log.backlog(b, at(1)).0), [2, 4]);
        assert_eq!(log.by_room.values().map(VecDeque::len).sum::<usize>(), 3);
    }
}
