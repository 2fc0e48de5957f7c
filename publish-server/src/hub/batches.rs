//! Coalesced delivery in throttled rooms.
//!
//! A hot room's events would wake every subscriber once per event: at 100 messages and 1,000
//! reactions a second to thousands of viewers, that is most of the push side's work. While the log
//! says a room is throttled, its frames wait in the room's [`Pending`] batch instead, and every
//! `HOT_SSE_BATCH_MS` ([`super::Hub::flush`]) the batch goes to the room's channel as *one* frame:
//! each subscriber is woken once and writes it with one system call. Reactions on one message within
//! a batch fold into one `event: reaction` with the message's complete counts, placed where the last
//! of them was, so the `id:`s in a batch still rise and a client resuming after any of them misses
//! nothing. The resume buffer keeps every event one by one; a client that resumes while the room is
//! throttled gets its missed events told the same way ([`fold_backlog`]).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Instant,
};

use bytes::{Bytes, BytesMut};
use uuid::Uuid;

use super::{
    Payload,
    frames::{CountsData, frame},
    resume::Buffered,
};

/// A throttled room's frames, sent together.
#[derive(Debug)]
pub struct Batch {
    /// Each frame with its offset in the partition (`None`: not an event of the log, e.g. presence).
    pub parts: Vec<(Option<i64>, Bytes)>,
    /// Events of the log the batch tells, folded reactions included.
    pub events: u64,
}

impl Batch {
    /// Whether the batch holds an event at or before `offset`.
    pub fn starts_at_or_before(&self, offset: i64) -> bool {
        self.parts
            .iter()
            .find_map(|(at, _)| *at)
            .is_some_and(|first| first <= offset)
    }
}

/// What batches went out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub batches: u64,
    /// Reaction frames that were not sent because a later one on the same message replaced them.
    pub folded: u64,
}

/// Frames waiting for the next batch.
#[derive(Default)]
pub struct Pending {
    /// `None` marks a folded reaction frame that a later one replaced.
    parts: Vec<(Option<i64>, Option<Bytes>)>,
    /// Where each message's folded reactions are in `parts`.
    counts_at: HashMap<Uuid, usize>,
    events: u64,
    folded: u64,
    /// The offset of the last event waiting.
    last: Option<i64>,
    /// When the first frame waiting reached the hub (the batch's age counts from it).
    since: Option<Instant>,
}

impl Pending {
    /// Adds a frame (an event's at `offset`, or one that is not an event). True when the batch was
    /// empty: the room must be flushed.
    pub fn push(&mut self, offset: Option<i64>, bytes: Bytes, received: Instant) -> bool {
        let first = self.parts.is_empty();
        self.since.get_or_insert(received);
        if offset.is_some() {
            self.events += 1;
            self.last = offset;
        }
        self.parts.push((offset, Some(bytes)));
        first
    }

    /// Adds a reaction on `message` as its counts frame, replacing the one the batch already has.
    pub fn fold(&mut self, message: Uuid, offset: i64, bytes: Bytes, received: Instant) -> bool {
        if let Some(&earlier) = self.counts_at.get(&message) {
            self.parts[earlier].1 = None;
            self.folded += 1;
        }
        self.counts_at.insert(message, self.parts.len());
        self.push(Some(offset), bytes, received)
    }

    /// The offset of the last event waiting, if any.
    pub fn last_offset(&self) -> Option<i64> {
        self.last
    }

    /// Empties the batch into one frame: its last event's offset (`i64::MAX` if it holds none, as
    /// for any frame no client skips), its bytes, its parts, and when its first frame came.
    pub fn take(&mut self, flushed: &mut Flushed) -> Option<(i64, Bytes, Arc<Batch>, Instant)> {
        if self.parts.is_empty() {
            return None;
        }
        let since = self.since.take().unwrap_or_else(Instant::now);
        let parts: Vec<(Option<i64>, Bytes)> = self
            .parts
            .drain(..)
            .filter_map(|(offset, bytes)| Some((offset, bytes?)))
            .collect();
        let mut bytes = BytesMut::with_capacity(parts.iter().map(|(_, b)| b.len()).sum());
        for (_, part) in &parts {
            bytes.extend_from_slice(part);
        }
        let offset = self.last.take().unwrap_or(i64::MAX);
        flushed.batches += 1;
        flushed.folded += std::mem::take(&mut self.folded);
        self.counts_at.clear();
        let batch = Batch {
            parts,
            events: std::mem::take(&mut self.events),
        };
        Some((offset, bytes.freeze(), Arc::new(batch), since))
    }
}

/// A throttled room's resume backlog as it would have been told live: each message's reactions
/// folded into one counts frame where the last of them was. `counts` gives a message's counts now,
/// which are its counts after its last reaction in the backlog, since a backlog runs to the last
/// event read. Reactions whose counts are unknown stay one by one.
pub fn fold_backlog(
    backlog: Vec<Buffered>,
    counts: impl Fn(Uuid) -> Option<BTreeMap<String, usize>>,
) -> Vec<Buffered> {
    let mut last = HashMap::new();
    for (i, buffered) in backlog.iter().enumerate() {
        if let Some(message) = buffered.reaction_on {
            last.insert(message, i);
        }
    }
    if last.is_empty() {
        return backlog;
    }
    let counts: HashMap<Uuid, BTreeMap<String, usize>> = last
        .keys()
        .filter_map(|&message| Some((message, counts(message)?)))
        .collect();
    backlog
        .into_iter()
        .enumerate()
        .filter_map(|(i, buffered)| {
            let Some(message) = buffered.reaction_on else {
                return Some(buffered);
            };
            let Some(counts) = counts.get(&message) else {
                return Some(buffered);
            };
            (last.get(&message) == Some(&i)).then(|| {
                let data = CountsData {
                    message_id: message,
                    counts,
                };
                Buffered {
                    cursor: buffered.cursor,
                    payload: Payload::Frame(frame(buffered.cursor, "reaction", &data)),
                    reaction_on: None,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use shared::cursor::Cursor;

    use super::*;

    fn text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_batch_keeps_order_and_folds_reactions_per_message_where_the_last_one_was() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut pending = Pending::default();
        let first = Instant::now();
        let later = first + std::time::Duration::from_millis(5);
        assert!(pending.push(Some(1), Bytes::from_static(b"m1;"), first));
        assert!(!pending.fold(a, 2, Bytes::from_static(b"a2;"), later));
        pending.fold(b, 3, Bytes::from_static(b"b3;"), later);
        pending.push(None, Bytes::from_static(b"presence;"), later);
        pending.fold(a, 4, Bytes::from_static(b"a4;"), later);
        pending.push(Some(5), Bytes::from_static(b"m5;"), later);
        assert_eq!(pending.last_offset(), Some(5));

        let mut flushed = Flushed::default();
        let (offset, bytes, batch, since) = pending.take(&mut flushed).expect("a batch");
        assert_eq!(since, first, "a batch is as old as its first frame");
        assert_eq!(text(&bytes), "m1;b3;presence;a4;m5;");
        assert_eq!(offset, 5);
        assert_eq!(batch.events, 5, "every event is told, the folded one too");
        let offsets: Vec<_> = batch.parts.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, [Some(1), Some(3), None, Some(4), Some(5)]);
        assert_eq!(
            flushed,
            Flushed {
                batches: 1,
                folded: 1
            }
        );

        assert!(pending.take(&mut flushed).is_none(), "nothing is left");
        assert_eq!(pending.last_offset(), None);
        assert!(
            pending.fold(a, 6, Bytes::from_static(b"a6;"), later),
            "a new batch starts"
        );
    }

    #[test]
    fn a_batch_of_frames_that_are_not_events_is_skipped_by_nobody() {
        let mut pending = Pending::default();
        pending.push(None, Bytes::from_static(b"presence;"), Instant::now());
        let (offset, _, batch, _) = pending.take(&mut Flushed::default()).unwrap();
        assert_eq!((offset, batch.events), (i64::MAX, 0));
    }

    #[test]
    fn a_resume_backlog_folds_each_messages_reactions_where_the_last_one_was() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let at = |offset| Cursor {
            partition: 0,
            offset,
        };
        let kept = |offset, reaction_on| Buffered {
            cursor: at(offset),
            payload: Payload::Frame(Bytes::from(format!("{offset};"))),
            reaction_on,
        };
        let backlog = vec![
            kept(1, Some(a)),
            kept(2, None),
            kept(3, Some(b)),
            kept(4, Some(a)),
            kept(5, Some(b)),
        ];
        // b's counts are unknown: its reactions stay one by one.
        let counts = |message| (message == a).then(|| BTreeMap::from([("👍".to_owned(), 2)]));
        let folded = fold_backlog(backlog, counts);
        let offsets: Vec<i64> = folded.iter().map(|b| b.cursor.offset).collect();
        assert_eq!(offsets, [2, 3, 4, 5]);
        let Payload::Frame(bytes) = &folded[2].payload else {
            panic!("a frame");
        };
        assert_eq!(
            text(bytes),
            format!(
                "id: 0-4\nevent: reaction\ndata: {{\"message_id\":\"{a}\",\"counts\":{{\"👍\":2}}}}\n\n"
            )
        );
    }
}
