//! Where partitions end, asked once per round for every write waiting, whatever its partition.
//!
//! A write must see every event acknowledged before it arrived, so the end it waits for must be
//! read *after* it arrived: a read already under way when it arrives may have started too early.
//! So callers that arrive while a read is under way wait for the next round, which starts as soon
//! as that read returns and answers all of them with one request naming every partition they wait
//! on. Under load that is one request per round trip to the broker, not one per write. The
//! embedded log's end is in this process: it is read at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use shared::event_log::EventLog;
use tokio::sync::oneshot;

type Answer = Result<i64, String>;

/// The round keeper of one log.
#[derive(Default)]
pub struct Ends {
    state: Arc<Mutex<Round>>,
}

#[derive(Default)]
struct Round {
    /// Callers waiting for a read that has not started yet, by partition.
    waiting: HashMap<i32, Vec<oneshot::Sender<Answer>>>,
    /// Whether a task is reading rounds.
    running: bool,
}

impl Ends {
    /// The offset `partition`'s next record will get, read after this call began.
    pub async fn end(&self, log: &Arc<EventLog>, partition: i32) -> Answer {
        if log.is_private() {
            return match log.ends(&[partition]).await {
                Ok(ends) => ends.first().map(|(_, end)| *end).ok_or_else(String::new),
                Err(e) => Err(format!("{e:#}")),
            };
        }
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut round = self.state.lock().expect("ends lock");
            round.waiting.entry(partition).or_default().push(answer);
            !std::mem::replace(&mut round.running, true)
        };
        if start {
            tokio::spawn(read_rounds(self.state.clone(), log.clone()));
        }
        answered
            .await
            .unwrap_or_else(|_| Err("the end reader stopped".into()))
    }
}

/// Reads the ends for everyone who waits, round after round, until nobody does.
async fn read_rounds(state: Arc<Mutex<Round>>, log: Arc<EventLog>) {
    loop {
        let waiting = {
            let mut round = state.lock().expect("ends lock");
            if round.waiting.is_empty() {
                round.running = false;
                return;
            }
            std::mem::take(&mut round.waiting)
        };
        let partitions: Vec<i32> = waiting.keys().copied().collect();
        let ends: Result<HashMap<i32, i64>, String> = log
            .ends(&partitions)
            .await
            .map(|ends| ends.into_iter().collect())
            .map_err(|e| format!("{e:#}"));
        for (partition, callers) in waiting {
            let end = match &ends {
                Ok(ends) => ends
                    .get(&partition)
                    .copied()
                    .ok_or_else(|| format!("the broker named no end for partition {partition}")),
                Err(e) => Err(e.clone()),
            };
            for caller in callers {
                let _ = caller.send(end.clone());
            }
        }
    }
}
