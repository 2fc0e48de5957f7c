//! Just enough of the Prometheus text format to read the servers' counters.

/// The sum of every sample of metric `name` whose labels include all of `labels`
/// (`name` with no labels given sums every series of the metric). 0 when there is none.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_line)
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(k, v)| sample.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|sample| sample.value)
        .sum()
}

struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, &'a str)>,
    value: f64,
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
