//! Prometheus metrics served at `/metrics`.
//!
//! One registry per application instance (not a process-global one), so that tests running several
//! instances in one process read each instance's own counters.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
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
    /// Message fetches served, by mode.
    pub fetches: Family<ModeLabel, Counter>,
    /// Read-model queries made to serve fetches, by mode.
    pub fetch_db_queries: Family<ModeLabel, Counter>,
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
        let fetches = Family::default();
        registry.register("fetches", "Message fetches served", fetches.clone());
        let fetch_db_queries = Family::default();
        registry.register(
            "fetch_db_queries",
            "Read-model queries made to serve fetches",
            fetch_db_queries.clone(),
        );
        Self {
            registry,
            events_appended,
            append_failures,
            append_duration_seconds,
            fetches,
            fetch_db_queries,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
