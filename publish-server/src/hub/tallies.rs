//! Who reacted with what, so a reaction event can carry its emoji's new count without asking the
//! database on the live path.
//!
//! A message posted while this instance reads the log starts with an exact, empty tally: every
//! reaction on it comes later in the same partition. A message older than that gets a *pending*
//! tally at its first reaction here: the reactions seen from then on are kept as operations, and a
//! seed (the read model's reactions, off the live path, see [`super::seeds`]) completes it — but only
//! a seed taken when the read model had projected everything before the first kept operation, so
//! seed plus operations is exactly the log. Until then counts are unknown and left out, never
//! guessed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use uuid::Uuid;

/// Messages whose tallies are kept, across all rooms (oldest forgotten first).
pub const TALLIED_MESSAGES: usize = 65_536;
/// Operations kept for one pending tally; beyond this the tally is dropped and started again.
const MAX_PENDING_OPS: usize = 10_000;

type Sets = HashMap<String, HashSet<Uuid>>;

enum Tally {
    Exact(Sets),
    Pending {
        /// Offset of the first kept operation: a seed must cover every record before it.
        since: i64,
        ops: Vec<Op>,
    },
    /// The message was deleted: its reactions went with it, and a late one is not told.
    Deleted,
}

struct Op {
    emoji: String,
    user: Uuid,
    added: bool,
}

/// What a reaction did to its tally.
#[derive(Debug, PartialEq, Eq)]
pub struct Reacted {
    /// The emoji's count after it, when known exactly.
    pub count: Option<usize>,
    /// False for a repeated add or a remove of nothing (nothing to tell); true when it changed
    /// something or when that is unknown.
    pub changed: bool,
    /// The message needs a seed (its first reaction seen here, on a message older than the log
    /// this instance read).
    pub seed: bool,
}

/// What a seed did.
#[derive(Debug, PartialEq, Eq)]
pub enum Seeded {
    /// The tally is exact now.
    Complete,
    /// The read model had not projected far enough yet: try again later.
    TooEarly,
    /// Nothing waits for this seed any more.
    Unwanted,
}

#[derive(Default)]
pub struct Tallies {
    by_message: HashMap<Uuid, Tally>,
    order: VecDeque<Uuid>,
}

impl Tallies {
    /// A message was posted: nobody has reacted to it yet.
    pub fn posted(&mut self, message: Uuid) {
        self.insert(message, Tally::Exact(Sets::new()));
    }

    /// A message was deleted: its reactions are gone, and any that raced the deletion are dropped.
    pub fn deleted(&mut self, message: Uuid) {
        self.insert(message, Tally::Deleted);
    }

    /// Applies `user`'s reaction at `offset`.
    pub fn react(
        &mut self,
        message: Uuid,
        offset: i64,
        emoji: &str,
        user: Uuid,
        added: bool,
    ) -> Reacted {
        let seed = !self.by_message.contains_key(&message);
        if seed {
            self.insert(
                message,
                Tally::Pending {
                    since: offset,
                    ops: Vec::new(),
                },
            );
        }
        match self.by_message.get_mut(&message) {
            Some(Tally::Deleted) => Reacted {
                count: None,
                changed: false,
                seed: false,
            },
            Some(Tally::Exact(sets)) => {
                let users = sets.entry(emoji.to_owned()).or_default();
                let changed = if added {
                    users.insert(user)
                } else {
                    users.remove(&user)
                };
                Reacted {
                    count: Some(users.len()),
                    changed,
                    seed,
                }
            }
            Some(Tally::Pending { ops, .. }) if ops.len() < MAX_PENDING_OPS => {
                ops.push(Op {
                    emoji: emoji.to_owned(),
                    user,
                    added,
                });
                Reacted {
                    count: None,
                    changed: true,
                    seed,
                }
            }
            _ => {
                // Too many operations waiting for a seed that does not come: start again at the
                // next reaction.
                self.by_message.remove(&message);
                Reacted {
                    count: None,
                    changed: true,
                    seed: false,
                }
            }
        }
    }

    /// Every emoji's count on `message` (those with none left out), when known exactly.
    pub fn counts(&self, message: Uuid) -> Option<BTreeMap<String, usize>> {
        let Some(Tally::Exact(sets)) = self.by_message.get(&message) else {
            return None;
        };
        let counted = sets.iter().filter(|(_, users)| !users.is_empty());
        Some(
            counted
                .map(|(emoji, users)| (emoji.clone(), users.len()))
                .collect(),
        )
    }

    /// Completes `message`'s pending tally with `reactions`, read when the read model held every
    /// record before `as_of`.
    pub fn seeded(&mut self, message: Uuid, as_of: i64, reactions: Vec<(String, Uuid)>) -> Seeded {
        let Some(Tally::Pending { since, ops }) = self.by_message.get_mut(&message) else {
            return Seeded::Unwanted;
        };
        if as_of < *since {
            return Seeded::TooEarly;
        }
        let mut sets = Sets::new();
        for (emoji, user) in reactions {
            sets.entry(emoji).or_default().insert(user);
        }
        // Operations the read model already had are applied again: each one sets one (emoji, user)
        // pair to present or absent, so replaying them in order ends in the log's state.
        for op in ops.drain(..) {
            let users = sets.entry(op.emoji).or_default();
            if op.added {
                users.insert(op.user);
            } else {
                users.remove(&op.user);
            }
        }
        self.by_message.insert(message, Tally::Exact(sets));
        Seeded::Complete
    }

    /// Stops waiting for a seed of `message` (its next reaction asks again).
    pub fn give_up(&mut self, message: Uuid) {
        if matches!(self.by_message.get(&message), Some(Tally::Pending { .. })) {
            self.by_message.remove(&message);
        }
    }

    fn insert(&mut self, message: Uuid, tally: Tally) {
        if self.by_message.insert(message, tally).is_none() {
            self.order.push_back(message);
            while self.order.len() > TALLIED_MESSAGES {
                if let Some(old) = self.order.pop_front() {
                    self.by_message.remove(&old);
                }
            }
        }
        // A message removed by `give_up` or a reset may leave its id in `order`; it is dropped
        // when it comes first (harmless: `order` stays bounded by the same limit).
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_posted_here_counts_exactly_and_repeats_change_nothing() {
        let mut tallies = Tallies::default();
        let (message, a, b) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        tallies.posted(message);
        let first = tallies.react(message, 10, "👍", a, true);
        assert_eq!(
            first,
            Reacted {
                count: Some(1),
                changed: true,
                seed: false
            }
        );
        assert_eq!(tallies.react(message, 11, "👍", b, true).count, Some(2));
        let repeat = tallies.react(message, 12, "👍", b, true);
        assert_eq!(
            repeat,
            Reacted {
                count: Some(2),
                changed: false,
                seed: false
            }
        );
        assert_eq!(tallies.react(message, 13, "👍", a, false).count, Some(1));
        assert!(!tallies.react(message, 14, "👍", a, false).changed);
    }

    #[test]
    fn an_older_message_has_no_count_until_a_seed_covers_its_first_reaction() {
        let mut tallies = Tallies::default();
        let (message, a, b, c) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let first = tallies.react(message, 100, "👍", a, true);
        assert_eq!(
            first,
            Reacted {
                count: None,
                changed: true,
                seed: true
            }
        );
        let second = tallies.react(message, 101, "👍", b, false);
        assert_eq!(
            second,
            Reacted {
                count: None,
                changed: true,
                seed: false
            }
        );
        // The read model had only projected up to offset 99: it may miss a reaction at 99.
        assert_eq!(tallies.seeded(message, 99, vec![]), Seeded::TooEarly);
        assert_eq!(tallies.react(message, 102, "👍", c, true).count, None);
        // Projected through 101 (so it already holds a's add and b's remove), with b's earlier
        // reaction gone and c's not yet in: seed plus the kept operations is the log.
        let seed = vec![("👍".to_owned(), a), ("🎉".to_owned(), b)];
        assert_eq!(tallies.seeded(message, 102, seed), Seeded::Complete);
        assert_eq!(tallies.react(message, 103, "🎉", c, true).count, Some(2));
        let thumbs = tallies.react(message, 104, "👍", b, true);
        assert_eq!(thumbs.count, Some(3), "a, c and now b");
        assert_eq!(tallies.seeded(message, 200, vec![]), Seeded::Unwanted);
    }

    #[test]
    fn a_reaction_after_its_message_was_deleted_is_not_told() {
        let mut tallies = Tallies::default();
        let (message, user) = (Uuid::now_v7(), Uuid::now_v7());
        tallies.posted(message);
        tallies.react(message, 1, "👍", user, true);
        tallies.deleted(message);
        let late = tallies.react(message, 3, "👍", Uuid::now_v7(), true);
        assert_eq!(
            late,
            Reacted {
                count: None,
                changed: false,
                seed: false
            }
        );
        // Also for a message this instance never saw posted: no seed is asked for.
        let older = Uuid::now_v7();
        tallies.deleted(older);
        assert!(!tallies.react(older, 5, "👍", user, true).seed);
    }

    #[test]
    fn giving_up_asks_for_a_seed_again_at_the_next_reaction() {
        let mut tallies = Tallies::default();
        let (message, a) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(tallies.react(message, 5, "👍", a, true).seed);
        tallies.give_up(message);
        assert_eq!(tallies.seeded(message, 10, vec![]), Seeded::Unwanted);
        assert!(tallies.react(message, 6, "👍", a, true).seed);
    }

    #[test]
    fn tallies_forget_the_oldest_messages_beyond_the_bound() {
        let mut tallies = Tallies::default();
        let first = Uuid::now_v7();
        tallies.posted(first);
        for _ in 0..TALLIED_MESSAGES {
            tallies.posted(Uuid::now_v7());
        }
        assert!(tallies.react(first, 1, "👍", Uuid::now_v7(), true).seed);
        assert!(tallies.by_message.len() <= TALLIED_MESSAGES);
    }
}
