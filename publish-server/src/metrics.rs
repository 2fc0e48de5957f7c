//! Prometheus metrics served at `/metrics`, one registry per application instance.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet, text::encode},
    metrics::{MetricType, TypedMetric, counter::Counter, family::Family, gauge::Gauge},
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
    /// How old each frame is when it is written to a socket, by its room's class.
    pub frame_ages: FrameAges,
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
        let ages = Family::<ClassLabel, AgeHistogram>::default();
        registry.register(
            "sse_frame_age_seconds",
            "Time from the fan-out handing a frame's event to the hub to the frame's write to a \
             socket, by room class (batched: a hot room's batch, from its first event)",
            ages.clone(),
        );
        // One statement each: the family's guard must be gone before it is written again.
        let normal = ages.get_or_create(&FrameClass::Normal.label()).clone();
        let large = ages.get_or_create(&FrameClass::Large.label()).clone();
        let batched = ages.get_or_create(&FrameClass::Batched.label()).clone();
        let frame_ages = FrameAges {
            normal,
            large,
            batched,
        };
        Self {
            registry: Registry::default(),
            frame_ages,
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

/// A frame's room class, as `hotchat_sse_frame_age_seconds` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    /// Sent on its own to a room of at most [`LARGE_ROOM`] subscribers here: a cold room's frame.
    Normal,
    /// Sent on its own to a room of more subscribers here (a viral room's, while it is not
    /// batched): apart from the cold rooms' frames, so that what a big room costs them shows.
    Large,
    /// A hot room's batch of frames (`HOT_SSE_BATCH_MS`).
    Batched,
}

/// The most subscribers on this instance a room's unbatched frames count as `class="normal"` for.
pub const LARGE_ROOM: usize = 128;

/// The classes, in the order of [`FrameClass::index`].
const FRAME_CLASSES: [FrameClass; 3] = [FrameClass::Normal, FrameClass::Large, FrameClass::Batched];

impl FrameClass {
    fn label(self) -> ClassLabel {
        ClassLabel {
            class: match self {
                FrameClass::Normal => "normal",
                FrameClass::Large => "large",
                FrameClass::Batched => "batched",
            },
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: &'static str,
}

/// Upper bounds of the frame-age buckets, in microseconds: fine below 10 ms, where a cold room's
/// frames should be, so that a p99 can be told within a fraction of a millisecond.
const AGE_BOUNDS_US: [u64; 24] = [
    100, 250, 500, 750, 1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000, 15_000,
    20_000, 30_000, 50_000, 75_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
];
/// The buckets, `+Inf` included.
const AGE_BUCKETS: usize = AGE_BOUNDS_US.len() + 1;

/// The bucket of an age.
fn age_bucket(age: Duration) -> usize {
    let micros = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
    AGE_BOUNDS_US.partition_point(|&bound| bound < micros)
}

/// A histogram of frame ages, kept in atomics.
///
/// Hot path: prometheus-client's own histogram takes a lock per observation, and a delivery
/// pass makes one observation per frame and member. Passes count into an [`AgeTally`] of their
/// own and add it here once per slice: a few atomic additions per pass, not one lock per frame.
#[derive(Debug, Clone, Default)]
pub struct AgeHistogram(Arc<AgeCounts>);

#[derive(Debug, Default)]
struct AgeCounts {
    buckets: [AtomicU64; AGE_BUCKETS],
    sum_ns: AtomicU64,
}

impl TypedMetric for AgeHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AgeHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts = &self.0;
        let buckets: Vec<(f64, u64)> = AGE_BOUNDS_US
            .iter()
            .map(|&bound| bound as f64 / 1e6)
            .chain(std::iter::once(f64::MAX))
            .zip(counts.buckets.iter().map(|n| n.load(Ordering::Relaxed)))
            .collect();
        // The count from the buckets themselves, so the two always agree.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = counts.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// `hotchat_sse_frame_age_seconds`, one histogram per [`FrameClass`].
///
/// A frame's age is counted from the moment the fan-out handed its event to the hub (for a batch:
/// its first event), on this process's monotonic clock, to the moment the frame was written to
/// the socket in full. Not from the event's `at` (the chat-server's wall clock, before the broker's
/// round trip, on another machine's clock): what this measures is the publish-server's own part,
/// where one room's writes could hold up another's; the log's part is `hotchat_consumer_lag`, and
/// the whole of it is what a client sees.
pub struct FrameAges {
    normal: AgeHistogram,
    large: AgeHistogram,
    batched: AgeHistogram,
}

impl FrameAges {
    fn of(&self, class: FrameClass) -> &AgeCounts {
        match class {
            FrameClass::Normal => &self.normal.0,
            FrameClass::Large => &self.large.0,
            FrameClass::Batched => &self.batched.0,
        }
    }

    /// Counts the frames of `stamps` as written `now`.
    pub fn observe(&self, stamps: &[Stamp], now: Instant) {
        let mut tally = AgeTally::default();
        tally.add(stamps, now);
        self.merge(&mut tally);
    }

    /// Adds what `tally` counted, and empties it.
    pub fn merge(&self, tally: &mut AgeTally) {
        if !std::mem::take(&mut tally.any) {
            return;
        }
        for class in FRAME_CLASSES {
            let (counts, i) = (self.of(class), class.index());
            for (bucket, n) in counts.buckets.iter().zip(&mut tally.buckets[i]) {
                if *n > 0 {
                    bucket.fetch_add(std::mem::take(n), Ordering::Relaxed);
                }
            }
            let sum = std::mem::take(&mut tally.sum_ns[i]);
            if sum > 0 {
                counts.sum_ns.fetch_add(sum, Ordering::Relaxed);
            }
        }
    }
}

/// When a frame's event reached the hub, and its class: what its age is counted from.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub received: Instant,
    pub class: FrameClass,
}

/// Frame ages counted by one pass, to add to [`FrameAges`] at once.
#[derive(Debug, Default)]
pub struct AgeTally {
    buckets: [[u64; AGE_BUCKETS]; FRAME_CLASSES.len()],
    sum_ns: [u64; FRAME_CLASSES.len()],
    any: bool,
}

impl AgeTally {
    /// Counts the frames of `stamps` as written `now`.
    pub fn add(&mut self, stamps: &[Stamp], now: Instant) {
        for stamp in stamps {
            let age = now.saturating_duration_since(stamp.received);
            let i = stamp.class.index();
            self.buckets[i][age_bucket(age)] += 1;
            self.sum_ns[i] =
                self.sum_ns[i].saturating_add(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX));
            self.any = true;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(received: Instant, class: FrameClass) -> Stamp {
        Stamp { received, class }
    }

    #[test]
    fn an_age_falls_in_the_first_bucket_whose_bound_is_at_least_it() {
        assert_eq!(age_bucket(Duration::ZERO), 0);
        assert_eq!(age_bucket(Duration::from_micros(100)), 0);
        assert_eq!(age_bucket(Duration::from_micros(101)), 1);
        assert_eq!(age_bucket(Duration::from_millis(10)), 12);
        assert_eq!(age_bucket(Duration::from_secs(5)), AGE_BUCKETS - 2);
        assert_eq!(
            age_bucket(Duration::from_secs(3600)),
            AGE_BUCKETS - 1,
            "+Inf"
        );
    }

    #[test]
    fn frame_ages_are_exposed_as_one_histogram_per_room_class() {
        let metrics = Metrics::default();
        let now = Instant::now();
        let mut tally = AgeTally::default();
        tally.add(
            &[
                stamp(now - Duration::from_micros(700), FrameClass::Normal),
                stamp(now - Duration::from_millis(3), FrameClass::Normal),
                stamp(now - Duration::from_millis(40), FrameClass::Batched),
                stamp(now - Duration::from_millis(12), FrameClass::Large),
            ],
            now,
        );
        metrics.frame_ages.merge(&mut tally);
        metrics.frame_ages.merge(&mut tally); // Emptied by the first merge: nothing counts twice.
        let text = metrics.render();
        let line = |series: &str| {
            text.lines()
                .find(|line| line.starts_with(series))
                .unwrap_or_else(|| panic!("no {series} in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        let bucket = |le: &str, class: &str| {
            line(&format!(
                r#"hotchat_sse_frame_age_seconds_bucket{{le="{le}",class="{class}"}}"#
            ))
        };
        assert_eq!(bucket("0.0005", "normal"), "0");
        assert_eq!(bucket("0.00075", "normal"), "1");
        assert_eq!(bucket("0.003", "normal"), "2");
        assert_eq!(
            line(r#"hotchat_sse_frame_age_seconds_count{class="normal"}"#),
            "2"
        );
        assert_eq!(bucket("0.01", "large"), "0");
        assert_eq!(bucket("0.015", "large"), "1");
        assert_eq!(bucket("0.03", "batched"), "0");
        assert_eq!(bucket("0.05", "batched"), "1");
        assert_eq!(bucket("+Inf", "batched"), "1");
        let sum: f64 = line(r#"hotchat_sse_frame_age_seconds_sum{class="batched"}"#)
            .parse()
            .unwrap();
        assert!((sum - 0.04).abs() < 1e-6, "{sum}");
    }
}
