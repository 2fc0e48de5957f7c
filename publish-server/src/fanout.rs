//! The fan-out: every partition of the event log, in every instance, straight to the hub.
//!
//! It reads with a tail (no consumer group): a shared group would hand each event to one instance
//! only, and the browsers on the other instances would never see it (seeds 001, 002). Each instance
//! starts `resume_capacity` records before the end of every partition, so that a client moving here
//! from another instance can resume at once, and anything appended after start-up is delivered.
//!
//! The loop awaits nothing but the log and its timers: dispatching to the hub never waits on I/O.

use std::{collections::HashMap, sync::Arc, time::Duration};

use shared::{
    event_log::{EventLog, Record, Tail},
    shutdown::CancellationToken,
};

use crate::{
    hub::Hub,
    metrics::{ConsumerLabel, LagLabel, Metrics},
};

/// How often stalled subscribers are cut off and empty rooms released.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often consumer lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// The longest start-up waits to pre-load the resume buffer.
const PRELOAD_LIMIT: Duration = Duration::from_secs(30);
/// Most records taken from the log at once.
const MAX_BATCH: usize = 512;

pub struct Fanout {
    tail: Tail,
}

impl Fanout {
    /// Tails every partition from `resume_capacity` records before its end, tells the hub where
    /// each starts, and reads up to the end seen at start before returning: the resume buffer is
    /// then full, and a client that subscribes afterwards gets only what is new as live events.
    pub async fn start(
        log: &EventLog,
        resume_capacity: usize,
        hub: &Hub,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let mut from = Vec::new();
        let mut ends = HashMap::new();
        for partition in 0..log.partitions() {
            let (low, high) = log.bounds(partition).await?;
            let start = (high - resume_capacity as i64).max(low);
            hub.start_partition(partition, start);
            from.push((partition, start));
            if start < high {
                ends.insert(partition, high);
            }
        }
        let mut tail = log.tail(&from)?;
        let deadline = tokio::time::Instant::now() + PRELOAD_LIMIT;
        while !ends.is_empty() {
            let batch = match tokio::time::timeout_at(deadline, tail.next_batch(MAX_BATCH)).await {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "fan-out cannot read the event log while pre-loading");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(_) => {
                    tracing::warn!(partitions = ?ends.keys().collect::<Vec<_>>(), "the resume buffer is not fully pre-loaded; going on");
                    break;
                }
            };
            for record in batch {
                let (partition, next) = (record.cursor.partition, record.cursor.offset + 1);
                deliver(hub, metrics, record);
                if ends.get(&partition).is_some_and(|end| next >= *end) {
                    ends.remove(&partition);
                }
            }
        }
        Ok(Self { tail })
    }

    /// Reads until `shutdown`, handing each record to the hub in log order; every
    /// [`SWEEP_EVERY`] cuts off the subscribers that fell behind or stalled for `stall`.
    pub async fn run(
        mut self,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        stall: Duration,
        shutdown: CancellationToken,
    ) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let batch = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = sweep.tick() => {
                    sweep_hub(&hub, &metrics, stall);
                    continue;
                }
                batch = self.tail.next_batch(MAX_BATCH) => batch,
            };
            match batch {
                Ok(records) => {
                    for record in records {
                        deliver(&hub, &metrics, record);
                    }
                    hub.write_due();
                }
                Err(e) => {
                    // The clients reconnect by themselves; back off so an outage does not spin.
                    tracing::warn!(error = %e, "fan-out cannot read the event log");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        }
        tracing::info!("fan-out stopped");
    }
}

/// Hands one record to the hub; one that is not a hotchat event is counted and passed on as such
/// (its offset still counts as read).
fn deliver(hub: &Hub, metrics: &Metrics, record: Record) {
    let event = match record.event {
        Ok(event) => Some(event),
        Err(e) => {
            metrics
                .records_skipped
                .get_or_create(&ConsumerLabel { consumer: "fanout" })
                .inc();
            tracing::debug!(cursor = %record.cursor, error = %e, "fan-out skipped a record");
            None
        }
    };
    hub.dispatch(record.cursor, event);
}

/// Cuts off stalled subscribers and releases empty rooms (every [`SWEEP_EVERY`]).
fn sweep_hub(hub: &Hub, metrics: &Metrics, stall: Duration) {
    let cut = hub.sweep(stall);
    if cut > 0 {
        metrics.clients_cut_off.inc_by(cut as u64);
        tracing::info!(cut, "cut off SSE clients that stopped reading");
    }
    metrics.sse_rooms.set(hub.room_count() as i64);
}

/// Publishes `hotchat_consumer_lag{consumer, partition}` every few seconds: records at the end of
/// each partition not yet handled by the fan-out and by this instance's projector.
pub async fn report_lag(
    log: Arc<EventLog>,
    hub: Arc<Hub>,
    projected: Arc<std::sync::Mutex<HashMap<i32, i64>>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(LAG_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        for (partition, last) in hub.positions() {
            let Ok((_, end)) = log.bounds(partition).await else {
                continue;
            };
            let next = last.map_or(0, |o| o + 1);
            let label = |consumer| LagLabel {
                consumer,
                partition: partition.to_string(),
            };
            metrics
                .consumer_lag
                .get_or_create(&label("fanout"))
                .set((end - next).max(0));
            let projected = projected
                .lock()
                .expect("projector offsets lock")
                .get(&partition)
                .copied();
            if let Some(next) = projected {
                metrics
                    .consumer_lag
                    .get_or_create(&label("projector"))
                    .set((end - next).max(0));
            }
        }
    }
}
