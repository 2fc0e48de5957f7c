//! Prometheus metrics served at `/metrics`.
//!
//! One registry per application instance (not a process-global one), so that tests running several
//! instances in one process read each instance's own counters.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventTypeLabel {
    pub event_type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Events the broker acknowledged, by type.
    pub events_appended: Family<EventTypeLabel, Counter>,
    /// Appends answered with 503 (timeout or broker error).
    pub append_failures: Counter,
    /// Time from send to the broker's acknowledgement.
    pub append_duration_seconds: Histogram,
    /// Writes decided without knowing where their room's partition ends (the broker did not say
    /// in time): see `WriteModel::sync`.
    pub writes_unsynced: Counter,
    /// Time a write waited for the write model to catch up with its room's partition (asking
    /// where it ends, then applying up to there): what cross-instance order costs a write.
    pub write_sync_seconds: Histogram,
    /// Message fetches served, by mode.
    pub fetches: Family<ModeLabel, Counter>,
    /// Read-model queries made to serve fetches, by mode.
    pub fetch_db_queries: Family<ModeLabel, Counter>,
    /// Rooms this instance currently serves in throttled mode.
    pub hot_rooms: Gauge,
    /// Fetches counted toward hot-room detection.
    pub fetches_counted: Counter,
    /// Throttled fetches answered 429.
    pub throttled_answers: Counter,
    /// Throttled fetches answered from the page cache (or by joining a query in flight).
    pub cache_hits: Counter,
    /// Failed rounds of the hot-room loop (store unreachable).
    pub hot_store_errors: Counter,
    /// 1 while this instance leads the hot-room scheduler.
    pub scheduler_leader: Gauge,
    /// Rooms switched to a mode by this instance's scheduler.
    pub mode_changes: Family<ModeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hotchat");
        let events_appended = Family::default();
        registry.register(
            "events_appended",
            "Events the broker acknowledged",
            events_appended.clone(),
        );
        let append_failures = Counter::default();
        registry.register(
            "append_failures",
            "Appends that failed or timed out (answered 503)",
            append_failures.clone(),
        );
        let append_duration_seconds = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
        ]);
        registry.register(
            "append_duration_seconds",
            "Time until the broker acknowledged an event",
            append_duration_seconds.clone(),
        );
        let writes_unsynced = Counter::default();
        registry.register(
            "writes_unsynced",
            "Writes decided without knowing where their room's partition ends (broker slow or out)",
            writes_unsynced.clone(),
        );
        let write_sync_seconds = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
        ]);
        registry.register(
            "write_sync_seconds",
            "Time a write waited for the write model to catch up with its room's partition",
            write_sync_seconds.clone(),
        );
        let fetches = Family::default();
        registry.register("fetches", "Message fetches served", fetches.clone());
        let fetch_db_queries = Family::default();
        registry.register(
            "fetch_db_queries",
            "Read-model queries made to serve fetches",
            fetch_db_queries.clone(),
        );
        let hot_rooms = Gauge::default();
        registry.register(
            "hot_rooms",
            "Rooms served in throttled mode",
            hot_rooms.clone(),
        );
        let fetches_counted = Counter::default();
        registry.register(
            "fetches_counted",
            "Fetches counted toward hot-room detection",
            fetches_counted.clone(),
        );
        let throttled_answers = Counter::default();
        registry.register(
            "throttled_answers",
            "Throttled fetches answered 429",
            throttled_answers.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "fetch_cache_hits",
            "Throttled fetches served without a query of their own",
            cache_hits.clone(),
        );
        let hot_store_errors = Counter::default();
        registry.register(
            "hot_store_errors",
            "Hot-room rounds that failed because the store was unreachable",
            hot_store_errors.clone(),
        );
        let scheduler_leader = Gauge::default();
        registry.register(
            "scheduler_leader",
            "1 while this instance leads the hot-room scheduler",
            scheduler_leader.clone(),
        );
        let mode_changes = Family::default();
        registry.register(
            "mode_changes",
            "Room mode changes decided by this instance",
            mode_changes.clone(),
        );
        Self {
            registry,
            hot_rooms,
            fetches_counted,
            throttled_answers,
            cache_hits,
            hot_store_errors,
            scheduler_leader,
            mode_changes,
            events_appended,
            append_failures,
            append_duration_seconds,
            writes_unsynced,
            write_sync_seconds,
            fetches,
            fetch_db_queries,
        }
    }
}

impl Metrics {
    /// Registers the event-stream metrics here too (the embedded mode serves the streams).
    pub fn register_sse(&mut self) -> publish_server::metrics::Metrics {
        publish_server::metrics::Metrics::registered_in(&mut self.registry)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
