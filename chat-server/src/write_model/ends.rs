//! Where each partition ends, asked once per round for every write waiting on it.
//!
//! A write must see every event acknowledged before it arrived, so the end it waits for must be
//! read *after* it arrived: a read already under way when it arrives may have started too early.
//! So callers that arrive while a read is under way wait for the next round, which starts as soon
//! as that read returns and answers all of them with one request.

use std::sync::{Arc, Mutex};

use shared::event_log::EventLog;
use tokio::sync::oneshot;

type Answer = Result<i64, String>;

/// One round keeper per partition.
pub struct Ends {
    partitions: Box<[Arc<Rounds>]>,
}

#[derive(Default)]
struct Rounds {
    state: Mutex<Round>,
}

#[derive(Default)]
struct Round {
    /// Callers waiting for a read that has not started yet.
    waiting: Vec<oneshot::Sender<Answer>>,
    /// Whether a task is reading rounds.
    running: bool,
}

impl Ends {
    pub fn new(partitions: i32) -> Self {
        Self {
            partitions: (0..partitions.max(1)).map(|_| Arc::default()).collect(),
        }
    }

    /// The offset `partition`'s next record will get, read after this call began.
    pub async fn end(&self, log: &Arc<EventLog>, partition: i32) -> Answer {
        let rounds = usize::try_from(partition)
            .ok()
            .and_then(|p| self.partitions.get(p))
            .ok_or_else(|| format!("no partition {partition}"))?;
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut round = rounds.state.lock().expect("ends lock");
            round.waiting.push(answer);
            !std::mem::replace(&mut round.running, true)
        };
        if start {
            tokio::spawn(read_rounds(rounds.clone(), log.clone(), partition));
        }
        answered
            .await
            .unwrap_or_else(|_| Err("the end reader stopped".into()))
    }
}

/// Reads the partition's end for everyone who waits, round after round, until nobody does.
async fn read_rounds(rounds: Arc<Rounds>, log: Arc<EventLog>, partition: i32) {
    loop {
        let waiting = {
            let mut round = rounds.state.lock().expect("ends lock");
            if round.waiting.is_empty() {
                round.running = false;
                return;
            }
            std::mem::take(&mut round.waiting)
        };
        let end = log
            .bounds(partition)
            .await
            .map(|(_, end)| end)
            .map_err(|e| format!("{e:#}"));
        for caller in waiting {
            let _ = caller.send(end.clone());
        }
    }
}
