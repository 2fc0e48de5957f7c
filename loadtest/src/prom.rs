//! Just enough of the Prometheus text format to read the servers' counters and histograms.

use crate::stats;

/// The sum of every sample of metric `name` whose labels include all of `labels`
/// (`name` with no labels given sums every series of the metric). 0 when there is none.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text, name, labels).map(|sample| sample.value).sum()
}

/// A histogram's cumulative buckets: `(upper bound, count at or below it)`, by increasing bound,
/// `+Inf` last.
pub type Buckets = Vec<(f64, f64)>;

/// The cumulative buckets of histogram `name` (its `<name>_bucket` series) whose labels include
/// all of `labels`, summed bound by bound over the labels not given. Empty when there is none.
pub fn buckets(text: &str, name: &str, labels: &[(&str, &str)]) -> Buckets {
    let mut buckets: Buckets = Vec::new();
    for sample in samples(text, &format!("{name}_bucket"), labels) {
        let Some(bound) = sample.label("le").and_then(|le| le.parse::<f64>().ok()) else {
            continue;
        };
        match buckets.iter_mut().find(|(b, _)| *b == bound) {
            Some((_, count)) => *count += sample.value,
            None => buckets.push((bound, sample.value)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// What a window added to cumulative buckets: `after − before`, bound by bound (a bound missing
/// from `before`, as when the server had not observed anything yet, counts from 0).
pub fn bucket_delta(before: &[(f64, f64)], after: &[(f64, f64)]) -> Buckets {
    after
        .iter()
        .map(|&(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c);
            (bound, (count - earlier).max(0.0))
        })
        .collect()
}

/// Observations counted by cumulative buckets (the `+Inf` bucket's count).
pub fn count(buckets: &[(f64, f64)]) -> f64 {
    buckets.last().map_or(0.0, |(_, count)| *count)
}

/// The `q` quantile (0 < q ≤ 1) of cumulative buckets: the upper bound of the bucket that holds
/// the nearest rank (as [`stats::percentile_of_buckets`]), not interpolated within it, so it
/// is never below the true value and at most one bucket's width above. When that bucket is `+Inf`,
/// the highest finite bound (as Prometheus' `histogram_quantile`): "at least this". `None` when
/// the buckets are empty.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    // Each bucket's own count, keyed by its index.
    let own: Vec<(u64, u64)> = buckets
        .iter()
        .scan(0.0, |below, &(_, cumulative)| {
            let n = (cumulative - *below).max(0.0).round() as u64;
            *below = f64::max(*below, cumulative);
            Some(n)
        })
        .enumerate()
        .map(|(i, n)| (i as u64, n))
        .collect();
    let i = stats::percentile_of_buckets(&own, q * 100.0)? as usize;
    buckets[..=i]
        .iter()
        .rev()
        .map(|(bound, _)| *bound)
        .find(|bound| bound.is_finite())
}

/// Every sample of metric `name` whose labels include all of `labels`.
fn samples<'a>(
    text: &'a str,
    name: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = Sample<'a>> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_line)
        .filter(move |sample| sample.name == name)
        .filter(move |sample| labels.iter().all(|(k, v)| sample.label(k) == Some(*v)))
}

struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, &'a str)>,
    value: f64,
}

impl Sample<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// `name{k="v",...} value [timestamp]` or `name value`; `None` for anything else. Label values with
/// escaped quotes or commas are not needed here (the servers' labels are identifiers).
fn parse_line(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    let (series, rest) = match line.find('{') {
        Some(open) => {
            let close = open + line[open..].find('}')?;
            (&line[..close + 1], &line[close + 1..])
        }
        None => line.split_at(line.find(char::is_whitespace)?),
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, labels)) => {
            let labels = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|pair| !pair.trim().is_empty())
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.trim(), v.trim().trim_matches('"')))
                })
                .collect();
            (name, labels)
        }
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP hotchat_fetch_db_queries Database queries for fetches.
# TYPE hotchat_fetch_db_queries counter
hotchat_fetch_db_queries_total{mode="throttled"} 12
hotchat_fetch_db_queries_total{mode="normal"} 3400
hotchat_sse_clients 1000
hotchat_consumer_lag{consumer="fanout",partition="0"} 2
hotchat_consumer_lag{consumer="fanout",partition="1"} 3
hotchat_consumer_lag{consumer="projector",partition="1"} 40
# EOF
"#;

    #[test]
    fn a_labelled_counter_is_read_by_its_label() {
        assert_eq!(
            sum(
                TEXT,
                "hotchat_fetch_db_queries_total",
                &[("mode", "throttled")]
            ),
            12.0
        );
        assert_eq!(sum(TEXT, "hotchat_fetch_db_queries_total", &[]), 3412.0);
    }

    #[test]
    fn series_are_summed_over_the_labels_not_given() {
        assert_eq!(
            sum(TEXT, "hotchat_consumer_lag", &[("consumer", "fanout")]),
            5.0
        );
        assert_eq!(sum(TEXT, "hotchat_sse_clients", &[]), 1000.0);
    }

    const HISTOGRAM: &str = r#"# TYPE hotchat_sse_frame_age_seconds histogram
hotchat_sse_frame_age_seconds_sum{class="normal"} 0.5
hotchat_sse_frame_age_seconds_count{class="normal"} 100
hotchat_sse_frame_age_seconds_bucket{le="0.0001",class="normal"} 10
hotchat_sse_frame_age_seconds_bucket{le="0.00025",class="normal"} 50
hotchat_sse_frame_age_seconds_bucket{le="0.0005",class="normal"} 98
hotchat_sse_frame_age_seconds_bucket{le="0.001",class="normal"} 100
hotchat_sse_frame_age_seconds_bucket{le="+Inf",class="normal"} 100
hotchat_sse_frame_age_seconds_bucket{le="0.0001",class="batched"} 0
hotchat_sse_frame_age_seconds_bucket{le="0.00025",class="batched"} 0
hotchat_sse_frame_age_seconds_bucket{le="0.0005",class="batched"} 1
hotchat_sse_frame_age_seconds_bucket{le="0.001",class="batched"} 1
hotchat_sse_frame_age_seconds_bucket{le="+Inf",class="batched"} 3
"#;

    #[test]
    fn a_histograms_buckets_are_read_by_label_in_order_of_their_bounds() {
        let normal = buckets(
            HISTOGRAM,
            "hotchat_sse_frame_age_seconds",
            &[("class", "normal")],
        );
        assert_eq!(
            normal,
            vec![
                (0.0001, 10.0),
                (0.00025, 50.0),
                (0.0005, 98.0),
                (0.001, 100.0),
                (f64::INFINITY, 100.0)
            ]
        );
        assert_eq!(count(&normal), 100.0);
        // Over every class: summed bound by bound.
        let all = buckets(HISTOGRAM, "hotchat_sse_frame_age_seconds", &[]);
        assert_eq!(all[2], (0.0005, 99.0));
        assert_eq!(count(&all), 103.0);
        assert!(buckets(HISTOGRAM, "hotchat_nope", &[]).is_empty());
    }

    #[test]
    fn a_quantile_is_the_upper_bound_of_the_bucket_holding_its_rank() {
        let normal = buckets(
            HISTOGRAM,
            "hotchat_sse_frame_age_seconds",
            &[("class", "normal")],
        );
        // Rank 50 of 100 is the 50th observation: in (0.1 ms, 0.25 ms].
        assert_eq!(quantile(&normal, 0.5), Some(0.00025));
        assert_eq!(quantile(&normal, 0.51), Some(0.0005));
        // Rank 99: in (0.5 ms, 1 ms].
        assert_eq!(quantile(&normal, 0.99), Some(0.001));
        assert_eq!(quantile(&normal, 0.1), Some(0.0001));
    }

    #[test]
    fn a_quantile_in_the_inf_bucket_is_the_highest_finite_bound_and_none_without_observations() {
        let batched = buckets(
            HISTOGRAM,
            "hotchat_sse_frame_age_seconds",
            &[("class", "batched")],
        );
        assert_eq!(quantile(&batched, 0.3), Some(0.0005));
        assert_eq!(quantile(&batched, 0.99), Some(0.001));
        assert_eq!(quantile(&[], 0.99), None);
        assert_eq!(quantile(&[(0.001, 0.0), (f64::INFINITY, 0.0)], 0.99), None);
    }

    #[test]
    fn a_windows_buckets_are_the_difference_of_two_readings() {
        let before = [(0.001, 5.0), (0.01, 8.0), (f64::INFINITY, 8.0)];
        let after = [(0.001, 105.0), (0.01, 110.0), (f64::INFINITY, 111.0)];
        let delta = bucket_delta(&before, &after);
        assert_eq!(
            delta,
            vec![(0.001, 100.0), (0.01, 102.0), (f64::INFINITY, 103.0)]
        );
        // The old observations no longer count: the window's p99 is the slow few's bucket.
        assert_eq!(quantile(&delta, 0.5), Some(0.001));
        assert_eq!(quantile(&delta, 0.99), Some(0.01));
        // Nothing before (the server had not observed any): the reading itself.
        assert_eq!(bucket_delta(&[], &after), after.to_vec());
    }

    #[test]
    fn a_missing_metric_or_label_is_zero() {
        assert_eq!(sum(TEXT, "hotchat_nope", &[]), 0.0);
        assert_eq!(
            sum(TEXT, "hotchat_fetch_db_queries_total", &[("mode", "x")]),
            0.0
        );
        // A prefix of a name is another metric.
        assert_eq!(sum(TEXT, "hotchat_sse", &[]), 0.0);
    }
}
