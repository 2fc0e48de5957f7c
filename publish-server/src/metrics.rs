//! Prometheus metrics served at `/metrics`, one registry per application instance.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabel {
    pub consumer: &'static str,
}

/// An upper bound of room audience sizes (`le`, as in a Prometheus histogram).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SizeLabel {
    pub le: &'static str,
}

/// The bounds of `room_viewers`.
pub const AUDIENCE_BUCKETS: [(u64, &str); 6] = [
    (1, "1"),
    (10, "10"),
    (100, "100"),
    (1_000, "1000"),
    (10_000, "10000"),
    (u64::MAX, "+Inf"),
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabel {
    pub consumer: &'static str,
    pub partition: String,
}

pub struct Metrics {
    registry: Registry,
    /// Open SSE connections.
    pub sse_clients: Gauge,
    /// Events of the log handed to SSE connections (a throttled room's batch counts each event it
    /// tells; presence announcements are not counted).
    pub events_delivered: Counter,
    /// Chunks written to SSE connections (one system call each when the socket has room):
    /// `events_delivered / sse_writes` is how well writes are batched.
    pub sse_writes: Counter,
    /// Connections cut off because they fell too far behind.
    pub clients_cut_off: Counter,
    /// Times a taken-over connection's socket was full, so that its own task had to wait to write
    /// the rest, instead of its room's senders writing to it without waiting.
    pub sse_parked: Counter,
    /// Writes that carried a throttled room's batch, and the events of the log they told:
    /// `throttled_deliveries / throttled_writes` is the deliveries per write in throttled rooms.
    pub throttled_writes: Counter,
    pub throttled_deliveries: Counter,
    /// Reaction frames of throttled rooms not sent because a later one on the same message, in the
    /// same batch, told its counts.
    pub reactions_folded: Counter,
    /// Records that were not hotchat events, by consumer (`fanout`, `projector`).
    pub records_skipped: Family<ConsumerLabel, Counter>,
    /// Events written to the read model for the first time.
    pub events_projected: Counter,
    /// Rooms with at least one subscriber here.
    pub sse_rooms: Gauge,
    /// Records not yet handled, by consumer and partition.
    pub consumer_lag: Family<LagLabel, Gauge>,
    /// Rooms watched here, by how many watch them across the cluster (cumulative `le` buckets, as
    /// a histogram, but of the last second's snapshot): no label per room.
    pub room_viewers: Family<SizeLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hotchat");
        let mut metrics = Self::registered_in(&mut registry);
        metrics.registry = registry;
        metrics
    }
}

impl Metrics {
    /// The metrics, registered in `registry` (chat-server's, in the embedded mode) rather than in a
    /// registry of their own.
    pub fn registered_in(registry: &mut Registry) -> Self {
        let sse_clients = Gauge::default();
        registry.register("sse_clients", "Open SSE connections", sse_clients.clone());
        let events_delivered = Counter::default();
        registry.register(
            "sse_events_delivered",
            "Events of the log handed to SSE connections",
            events_delivered.clone(),
        );
        let sse_writes = Counter::default();
        registry.register(
            "sse_writes",
            "Chunks written to SSE connections",
            sse_writes.clone(),
        );
        let sse_parked = Counter::default();
        registry.register(
            "sse_parked",
            "Times an SSE connection's socket was full and its own task waited to write",
            sse_parked.clone(),
        );
        let clients_cut_off = Counter::default();
        registry.register(
            "sse_clients_cut_off",
            "SSE connections cut off for falling too far behind",
            clients_cut_off.clone(),
        );
        let throttled_writes = Counter::default();
        registry.register(
            "sse_throttled_writes",
            "Chunks written to SSE connections that carried a throttled room's batch",
            throttled_writes.clone(),
        );
        let throttled_deliveries = Counter::default();
        registry.register(
            "sse_throttled_deliveries",
            "Events told by throttled rooms' batches, counted per connection",
            throttled_deliveries.clone(),
        );
        let reactions_folded = Counter::default();
        registry.register(
            "sse_reactions_folded",
            "Reaction frames of throttled rooms replaced by a later count of the same message",
            reactions_folded.clone(),
        );
        let records_skipped = Family::default();
        registry.register(
            "records_skipped",
            "Topic records that were not readable hotchat events",
            records_skipped.clone(),
        );
        let events_projected = Counter::default();
        registry.register(
            "events_projected",
            "Events written to the read model",
            events_projected.clone(),
        );
        let sse_rooms = Gauge::default();
        registry.register(
            "sse_rooms",
            "Rooms with subscribers on this instance",
            sse_rooms.clone(),
        );
        let consumer_lag = Family::default();
        registry.register(
            "consumer_lag",
            "Records at the end of a partition not yet handled, by consumer",
            consumer_lag.clone(),
        );
        let room_viewers = Family::default();
        registry.register(
            "room_viewers",
            "Rooms with viewers on this instance, by their audience across the cluster (le: at most)",
            room_viewers.clone(),
        );
        Self {
            registry: Registry::default(),
            room_viewers,
            sse_rooms,
            consumer_lag,
            sse_clients,
            events_delivered,
            sse_writes,
            clients_cut_off,
            sse_parked,
            throttled_writes,
            throttled_deliveries,
            reactions_folded,
            records_skipped,
            events_projected,
        }
    }
}

impl Metrics {
    /// The metrics in this instance's own registry, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
