//! Deciding which rooms are hot: pure logic, so the hysteresis is tested on its own.
//!
//! A room turns hot when its cluster-wide fetch rate is above the fetch threshold, or its delivery
//! rate (events written × open streams) above the delivery threshold. It stays hot until both have been
//! at or below their thresholds for the whole cooldown, so a room hovering at the edge does not
//! flap between modes every second.

use std::collections::HashMap;

use shared::event::HotReason;
use uuid::Uuid;

/// Hot rooms and, for each, the last time (Unix ms) its rate was above the threshold.
pub type HotMap = HashMap<Uuid, i64>;

#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Fetches per second, cluster-wide, above which a room is hot.
    pub fetches_per_sec: u64,
    /// Deliveries per second (events written × open streams), cluster-wide, above which a room is hot.
    pub deliveries_per_sec: u64,
    /// How long a room stays hot after its rate drops, in ms.
    pub cooldown_ms: i64,
}

/// The outcome of one detection round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// The hot rooms after this round.
    pub hot: HotMap,
    /// Rooms that turned hot, and what made them (fetches first when both did).
    pub became_hot: Vec<(Uuid, HotReason)>,
    pub became_normal: Vec<Uuid>,
}

/// What each room did over the last second, cluster-wide.
#[derive(Debug, Default)]
pub struct Rates {
    pub fetches: HashMap<Uuid, u64>,
    pub deliveries: HashMap<Uuid, u64>,
}

/// The rooms of `rates` above `limit`, with `reason`.
fn over(
    rates: &HashMap<Uuid, u64>,
    limit: u64,
    reason: HotReason,
) -> impl Iterator<Item = (Uuid, HotReason)> + '_ {
    rates
        .iter()
        .filter(move |(_, rate)| **rate > limit)
        .map(move |(room, _)| (*room, reason))
}

/// One round: `rates` over the last second, `previous` the hot map before this round.
pub fn decide(now_ms: i64, rates: &Rates, previous: &HotMap, limits: Thresholds) -> Decision {
    let mut decision = Decision::default();
    let fetched = over(&rates.fetches, limits.fetches_per_sec, HotReason::Fetches);
    let delivered = over(
        &rates.deliveries,
        limits.deliveries_per_sec,
        HotReason::Deliveries,
    );
    for (room, reason) in fetched.chain(delivered) {
        if decision.hot.insert(room, now_ms).is_none() && !previous.contains_key(&room) {
            decision.became_hot.push((room, reason));
        }
    }
    for (&room, &last_over) in previous {
        if decision.hot.contains_key(&room) {
            continue;
        }
        if now_ms - last_over < limits.cooldown_ms {
            decision.hot.insert(room, last_over);
        } else {
            decision.became_normal.push(room);
        }
    }
    decision.became_hot.sort_by_key(|(room, _)| *room);
    decision.became_normal.sort();
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Thresholds = Thresholds {
        fetches_per_sec: 200,
        deliveries_per_sec: 10_000,
        cooldown_ms: 10_000,
    };

    fn fetches(rates: &[(Uuid, u64)]) -> Rates {
        Rates {
            fetches: rates.iter().copied().collect(),
            ..Rates::default()
        }
    }

    #[test]
    fn a_room_above_the_threshold_turns_hot_and_others_stay_normal() {
        let (hot, cold) = (Uuid::now_v7(), Uuid::now_v7());
        let rates = fetches(&[(hot, 201), (cold, 200)]);
        let decision = decide(1_000, &rates, &HotMap::new(), LIMITS);
        assert_eq!(decision.became_hot, [(hot, HotReason::Fetches)]);
        assert_eq!(decision.hot, HotMap::from([(hot, 1_000)]));
        assert!(decision.became_normal.is_empty());
    }

    #[test]
    fn a_hot_room_stays_hot_through_the_cooldown_then_turns_normal() {
        let room = Uuid::now_v7();
        let previous = HotMap::from([(room, 1_000)]);
        let quiet = fetches(&[(room, 10)]);
        let during = decide(10_999, &quiet, &previous, LIMITS);
        assert_eq!(during.hot, previous, "still within the cooldown");
        assert!(during.became_normal.is_empty() && during.became_hot.is_empty());
        let after = decide(11_000, &quiet, &during.hot, LIMITS);
        assert!(after.hot.is_empty());
        assert_eq!(after.became_normal, [room]);
    }

    #[test]
    fn a_room_at_the_edge_does_not_flap() {
        let room = Uuid::now_v7();
        let mut hot = HotMap::new();
        let mut changes = 0;
        for second in 0..30 {
            // Alternates just above and just below the threshold every second.
            let rate = if second % 2 == 0 { 201 } else { 199 };
            let decision = decide(second * 1_000, &fetches(&[(room, rate)]), &hot, LIMITS);
            changes += decision.became_hot.len() + decision.became_normal.len();
            hot = decision.hot;
        }
        assert_eq!(changes, 1, "turned hot once and stayed hot");
    }

    #[test]
    fn renewed_load_restarts_the_cooldown() {
        let room = Uuid::now_v7();
        let previous = HotMap::from([(room, 1_000)]);
        let decision = decide(9_000, &fetches(&[(room, 500)]), &previous, LIMITS);
        assert_eq!(decision.hot[&room], 9_000);
        assert!(
            decision.became_hot.is_empty(),
            "already hot: no new announcement"
        );
    }

    #[test]
    fn a_room_turns_hot_from_its_deliveries_alone_and_says_so() {
        let (viral, busy_but_small) = (Uuid::now_v7(), Uuid::now_v7());
        let rates = Rates {
            fetches: HashMap::new(),
            deliveries: HashMap::from([(viral, 10_001), (busy_but_small, 10_000)]),
        };
        let decision = decide(1_000, &rates, &HotMap::new(), LIMITS);
        assert_eq!(decision.became_hot, [(viral, HotReason::Deliveries)]);
        // Both over: told once, as fetches.
        let both = Rates {
            fetches: HashMap::from([(viral, 201)]),
            deliveries: HashMap::from([(viral, 20_000)]),
        };
        let decision = decide(1_000, &both, &HotMap::new(), LIMITS);
        assert_eq!(decision.became_hot, [(viral, HotReason::Fetches)]);
        // Deliveries keep it hot through the cooldown like fetches do.
        let later = decide(20_000, &rates, &decision.hot, LIMITS);
        assert!(later.hot.contains_key(&viral) && later.became_normal.is_empty());
    }
}
