//! The loop every chat-server runs, four times a second: flush this instance's fetch counts, take or
//! keep the leader lock, refresh the local hot set and — on the leader, once per second — decide which
//! rooms are hot.

use std::{collections::HashSet, sync::Arc, time::Duration};

use shared::{
    event::{Envelope, EventBody, HotReason, RoomMode, system_user},
    event_log::EventLog,
    shutdown::CancellationToken,
};
use uuid::Uuid;

use super::{
    HotSettings, HotView, RoomCounter,
    detector::{Rates, Thresholds, decide},
    store::{Counted, HotStore, StoreError},
};
use crate::{audience::Online, metrics::Metrics};

/// The loop's period: counts are flushed and the view refreshed this often.
pub const TICK: Duration = Duration::from_millis(250);
/// The leader lock's expiry: a leader that dies is replaced within this plus one tick.
pub const LEADER_TTL: Duration = Duration::from_secs(2);
/// Detection runs this often on the leader.
const DETECT_EVERY_MS: i64 = 1_000;
/// Quarters per detection window (one second).
const WINDOW_QUARTERS: i64 = (1_000 / TICK.as_millis()) as i64;

pub struct Scheduler {
    pub instance: Uuid,
    pub settings: HotSettings,
    pub store: HotStore,
    /// History fetches counted here since the last flush.
    pub counter: Arc<RoomCounter>,
    /// Events written here since the last flush.
    pub written: Arc<RoomCounter>,
    /// Each room's open streams, cluster-wide: with the events written, its deliveries.
    pub online: Online,
    pub view: Arc<HotView>,
    pub log: Arc<EventLog>,
    pub metrics: Arc<Metrics>,
}

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_detect = 0;
        let mut healthy = true;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now_ms = chrono::Utc::now().timestamp_millis();
            let result = self.round(now_ms, &mut last_detect).await;
            self.view.set_store_reachable(result.is_ok());
            match (&result, healthy) {
                (Err(e), true) => {
                    tracing::warn!(error = %e, "hot-room store unreachable: serving every room in normal mode");
                    healthy = false;
                }
                (Ok(()), false) => {
                    tracing::info!("hot-room store reachable again: detection resumed");
                    healthy = true;
                }
                _ => {}
            }
            if result.is_err() {
                self.metrics.hot_store_errors.inc();
                self.metrics.scheduler_leader.set(0);
                // Fail open: a room nobody can confirm is hot is served normally.
                self.view.replace(HashSet::new());
            }
            self.metrics.hot_rooms.set(self.view.len() as i64);
        }
        if let Err(e) = self.store.resign(self.instance).await {
            tracing::debug!(error = %e, "could not release the scheduler lock; it expires by itself");
        }
        tracing::info!("hot-room scheduler stopped");
    }

    async fn round(&self, now_ms: i64, last_detect: &mut i64) -> Result<(), StoreError> {
        let quarter = now_ms / TICK.as_millis() as i64;
        // Counts taken here are lost if the store is down: detection fails open, fetches go on.
        let fetched = self.counter.take();
        self.store.add(Counted::Fetches, quarter, &fetched).await?;
        let written = self.written.take();
        self.store.add(Counted::Events, quarter, &written).await?;
        let leading = self.store.lead(self.instance, LEADER_TTL).await?;
        self.metrics.scheduler_leader.set(i64::from(leading));
        if leading && now_ms - *last_detect >= DETECT_EVERY_MS {
            *last_detect = now_ms;
            self.detect(now_ms, quarter).await?;
        }
        let hot = self.store.hot_map().await?;
        self.view.replace(hot.into_keys().collect());
        Ok(())
    }

    /// One detection round over the last complete second.
    async fn detect(&self, now_ms: i64, quarter: i64) -> Result<(), StoreError> {
        let window = quarter - WINDOW_QUARTERS..quarter;
        let fetches = self.store.sums(Counted::Fetches, window.clone()).await?;
        let events = self.store.sums(Counted::Events, window).await?;
        // Deliveries: each event goes to every open stream (a crowd behind one address is one
        // viewer but as many streams). Only rooms written to are asked about.
        let written: Vec<Uuid> = events.keys().copied().collect();
        let streams = self.online.streams(&written).await;
        let deliveries = events
            .iter()
            .map(|(room, n)| (*room, n * streams.get(room).copied().unwrap_or(0)))
            .collect();
        let rates = Rates {
            fetches,
            deliveries,
        };
        let previous = self.store.hot_map().await?;
        let limits = Thresholds {
            fetches_per_sec: self.settings.threshold,
            deliveries_per_sec: self.settings.delivery_threshold,
            cooldown_ms: self.settings.cooldown.as_millis() as i64,
        };
        let decision = decide(now_ms, &rates, &previous, limits);
        if decision.hot != previous {
            self.store.set_hot_map(&previous, &decision.hot).await?;
        }
        let changes = decision
            .became_hot
            .iter()
            .map(|(room, reason)| (*room, RoomMode::Throttled, Some(*reason)))
            .chain(
                decision
                    .became_normal
                    .iter()
                    .map(|room| (*room, RoomMode::Normal, None::<HotReason>)),
            );
        for (room, mode, reason) in changes {
            let fetches_per_sec = rates.fetches.get(&room).copied().unwrap_or(0);
            let deliveries_per_sec = rates.deliveries.get(&room).copied().unwrap_or(0);
            tracing::info!(
                room_id = %room,
                mode = mode.as_str(),
                reason = reason.map(HotReason::as_str),
                fetches_per_sec,
                deliveries_per_sec,
                "room mode changed"
            );
            self.metrics
                .mode_changes
                .get_or_create(&crate::metrics::ModeLabel {
                    mode: mode.as_str(),
                })
                .inc();
            // Tell every subscriber through the log, off this loop so a slow broker cannot delay
            // detection. If the broker is down the mode still applies (the fetch API reports it);
            // only the SSE notice is missed.
            let fetch_interval_ms = match mode {
                RoomMode::Throttled => self.settings.fetch_interval_ms(),
                RoomMode::Normal => 0,
            };
            let body = EventBody::RoomModeChanged {
                mode,
                fetch_interval_ms,
                reason,
            };
            let event = Envelope::new(room, system_user(), body);
            let log = self.log.clone();
            tokio::spawn(async move {
                if let Err(e) = log.append(&event).await {
                    tracing::warn!(room_id = %room, error = %e, "could not announce the mode change");
                }
            });
        }
        Ok(())
    }
}
