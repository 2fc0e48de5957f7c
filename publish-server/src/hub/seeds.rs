//! Seeding pending reaction tallies from the read model, off the live path.
//!
//! The hub only queues a request ([`SeedQueue::request`]) and goes on; this task asks the read
//! model, one message at a time, with a deadline, and hands the answer back to the hub. A slow or
//! hung database delays counts (they are left out meanwhile), never an event.

use std::{sync::Mutex, time::Duration};

use shared::shutdown::CancellationToken;
use tokio::{sync::Notify, time::Instant};
use uuid::Uuid;

use super::{Hub, tallies::Seeded};

/// The longest one seed query may take before the database counts as unreachable.
const SEED_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait before asking again when the read model is behind the log.
const BEHIND_RETRY: Duration = Duration::from_millis(250);
/// How long to wait before asking again when the database did not answer.
const UNREACHABLE_RETRY: Duration = Duration::from_secs(1);
/// Tries while the read model is behind (about 30 s) before the tally is dropped; the message's
/// next reaction asks again.
const MAX_BEHIND_TRIES: u32 = 120;

/// Messages waiting for a seed: (message, its partition).
#[derive(Default)]
pub struct SeedQueue {
    requests: Mutex<Vec<(Uuid, i32)>>,
    wake: Notify,
}

impl SeedQueue {
    pub fn request(&self, message: Uuid, partition: i32) {
        self.requests
            .lock()
            .expect("seed queue lock")
            .push((message, partition));
        self.wake.notify_one();
    }

    pub(super) fn take(&self) -> Vec<(Uuid, i32)> {
        std::mem::take(&mut *self.requests.lock().expect("seed queue lock"))
    }
}

struct Waiting {
    message: Uuid,
    partition: i32,
    due: Instant,
    behind_tries: u32,
}

impl Hub {
    /// Answers seed requests until `shutdown`.
    pub async fn run_seeder(&self, shutdown: CancellationToken) {
        let mut waiting: Vec<Waiting> = Vec::new();
        loop {
            let next_due = waiting
                .iter()
                .map(|w| w.due)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.seeds.wake.notified() => {}
                () = tokio::time::sleep_until(next_due) => {}
            }
            let now = Instant::now();
            waiting.extend(
                self.seeds
                    .take()
                    .into_iter()
                    .map(|(message, partition)| Waiting {
                        message,
                        partition,
                        due: now,
                        behind_tries: 0,
                    }),
            );
            let (due, later): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|w| w.due <= now);
            waiting = later;
            let mut due = due.into_iter();
            while let Some(mut item) = due.next() {
                let answer = tokio::time::timeout(
                    SEED_TIMEOUT,
                    self.read_model
                        .reactions_as_of(item.message, item.partition),
                )
                .await;
                let outcome = match answer {
                    Ok(Ok(Some((as_of, reactions)))) => self.seeded(item.message, as_of, reactions),
                    Ok(Ok(None)) => Seeded::TooEarly,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "cannot seed reaction counts yet");
                        self.later(&mut waiting, item, due, UNREACHABLE_RETRY);
                        break;
                    }
                    Err(_) => {
                        tracing::debug!("the read model did not answer a seed in time");
                        self.later(&mut waiting, item, due, UNREACHABLE_RETRY);
                        break;
                    }
                };
                if outcome == Seeded::TooEarly {
                    item.behind_tries += 1;
                    if item.behind_tries >= MAX_BEHIND_TRIES {
                        self.lock().tallies.give_up(item.message);
                    } else {
                        item.due = Instant::now() + BEHIND_RETRY;
                        waiting.push(item);
                    }
                }
            }
        }
    }

    /// Puts `item` and everything after it back, due after `delay` (the database is unreachable:
    /// asking about the others now would only wait as long again).
    fn later(
        &self,
        waiting: &mut Vec<Waiting>,
        item: Waiting,
        rest: impl Iterator<Item = Waiting>,
        delay: Duration,
    ) {
        let due = Instant::now() + delay;
        waiting.extend(
            std::iter::once(item)
                .chain(rest)
                .map(|w| Waiting { due, ..w }),
        );
    }
}
