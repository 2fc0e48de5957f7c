//! Percentiles of latency samples.
//!
//! One rule everywhere, nearest rank: the p-th percentile of n samples is the smallest sample with at
//! least `ceil(p/100 · n)` samples at or below it. It is always a value that was measured (no
//! interpolation), so a p99 of 12 ms means 99 % of the samples took 12 ms or less.
//!
//! The SSE harness keeps every sample (a few hundred thousand `u32` microseconds); goose keeps
//! log-linear buckets (each at most 1/64 of its value wide), read with [`percentile_of_buckets`].

use serde::{Deserialize, Serialize};

/// The nearest-rank `p`-th percentile (0 < p ≤ 100) of `sorted` (ascending); `None` when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    let rank = rank(sorted.len() as u64, p)?;
    sorted.get(rank as usize - 1).copied()
}

/// The nearest-rank `p`-th percentile of a histogram: `(value, count)` buckets in ascending order of
/// value. The answer is the value of the bucket holding that rank.
pub fn percentile_of_buckets(buckets: &[(u64, u64)], p: f64) -> Option<u64> {
    let total = buckets.iter().map(|(_, count)| count).sum();
    let rank = rank(total, p)?;
    let mut seen = 0;
    buckets.iter().find_map(|&(value, count)| {
        seen += count;
        (seen >= rank).then_some(value)
    })
}

/// The 1-based rank of the `p`-th percentile among `n` samples.
fn rank(n: u64, p: f64) -> Option<u64> {
    if n == 0 || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    Some(((p / 100.0 * n as f64).ceil() as u64).clamp(1, n))
}

/// What a latency distribution is summed up by in the reports, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Summarises samples given in microseconds (sorted here).
    pub fn from_micros(samples: &mut [u64]) -> Self {
        samples.sort_unstable();
        let ms = |p| percentile(samples, p).unwrap_or(0) as f64 / 1000.0;
        Self {
            count: samples.len() as u64,
            p50_ms: ms(50.0),
            p90_ms: ms(90.0),
            p99_ms: ms(99.0),
            max_ms: samples.last().copied().unwrap_or(0) as f64 / 1000.0,
        }
    }

    /// Summarises microsecond buckets (ascending), with the largest time measured.
    pub fn from_buckets(buckets: &[(u64, u64)], max_us: u64) -> Self {
        let ms = |p| percentile_of_buckets(buckets, p).unwrap_or(0).min(max_us) as f64 / 1000.0;
        Self {
            count: buckets.iter().map(|(_, count)| count).sum(),
            p50_ms: ms(50.0),
            p90_ms: ms(90.0),
            p99_ms: ms(99.0),
            max_ms: max_us as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_a_measured_value() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50));
        assert_eq!(percentile(&samples, 99.0), Some(99));
        assert_eq!(percentile(&samples, 99.5), Some(100));
        assert_eq!(percentile(&samples, 100.0), Some(100));
        assert_eq!(percentile(&[7, 9], 50.0), Some(7));
        assert_eq!(percentile(&[7, 9], 50.1), Some(9));
    }

    #[test]
    fn a_single_sample_is_every_percentile() {
        assert_eq!(percentile(&[42], 1.0), Some(42));
        assert_eq!(percentile(&[42], 99.0), Some(42));
    }

    #[test]
    fn no_samples_or_a_silly_percentile_give_none() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1, 2], 0.0), None);
        assert_eq!(percentile(&[1, 2], 101.0), None);
        assert_eq!(percentile(&[1, 2], f64::NAN), None);
    }

    #[test]
    fn bucket_percentiles_agree_with_the_same_samples_expanded() {
        let buckets = [(1, 10), (5, 80), (20, 9), (300, 1)];
        let mut expanded = Vec::new();
        for &(value, count) in &buckets {
            expanded.extend(std::iter::repeat_n(value, count as usize));
        }
        for p in [1.0, 10.0, 10.1, 50.0, 90.0, 99.0, 99.01, 100.0] {
            assert_eq!(
                percentile_of_buckets(&buckets, p),
                percentile(&expanded, p),
                "p{p}"
            );
        }
    }

    #[test]
    fn a_summary_reports_milliseconds_and_caps_buckets_at_the_slowest_time() {
        let mut samples = vec![3000, 1000, 2000, 4000];
        let summary = Latency::from_micros(&mut samples);
        assert_eq!(summary.count, 4);
        assert_eq!(summary.p50_ms, 2.0);
        assert_eq!(summary.p99_ms, 4.0);
        assert_eq!(summary.max_ms, 4.0);

        // A bucket is keyed by its lowest value; the slowest time caps what it reports.
        let summary = Latency::from_buckets(&[(1000, 1), (8192, 1)], 8000);
        assert_eq!(summary.p99_ms, 8.0);
        assert_eq!(summary.p50_ms, 1.0);
    }
}
