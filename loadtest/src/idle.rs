//! Idle connections by the hundred thousand on one publish-server (`loadtest/run --full`): what each
//! costs in RSS, whether one message then reaches every one of them, and how long the last one
//! waited for it.
//!
//! One source address has about 28,000 ephemeral ports towards one server port, so the streams come
//! from several loopback addresses (127.0.0.2, 127.0.0.3, …), [`PER_SOURCE`] each. Before trying,
//! the step checks that both the publish-server and this harness may open that many descriptors
//! (`/proc/<pid>/limits`, "Max open files") and that the publish-server serves that many streams
//! (`SSE_MAX_CONNECTIONS`): where a limit is too low the step says so instead of failing half-way,
//! and a step that fails or takes too long is reported the same way, never as a failed run.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{
    fanout::{self, Publisher, Shared, Targets},
    report::thousands,
    stats::Latency,
};

/// The connections of the memory target.
pub const TARGET_CONNECTIONS: usize = 100_000;
/// Streams opened from one source address.
pub const PER_SOURCE: usize = 20_000;
/// Descriptors a process needs beside its streams (listeners, the broker, the database, logs).
pub const HEADROOM: u64 = 1_024;
/// How long the one message may take to reach every stream.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The whole step at most (opening 100,000 streams on two cores takes about a minute).
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleSpec {
    pub connections: usize,
    /// The publish-server's `SSE_MAX_CONNECTIONS`, when known.
    pub max_streams: Option<usize>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdleResult {
    pub connections: usize,
    /// Why the step did not measure; `None` when it did.
    pub not_measured: Option<String>,
    /// "Max open files" (soft) of the publish-server and of the harness.
    pub server_open_files: Option<u64>,
    pub harness_open_files: Option<u64>,
    pub sources: Vec<IpAddr>,
    pub opened: usize,
    pub open_failures: usize,
    pub open_secs: f64,
    /// `hotchat_sse_clients` once the streams were open.
    pub server_clients: f64,
    pub rss_before_open: Option<u64>,
    pub rss_after_open: Option<u64>,
    pub rss_per_connection: Option<f64>,
    /// Deliveries of the one message posted once every stream was open.
    pub received: u64,
    /// Its post → SSE at every stream: the max is how long the last one waited.
    pub latency: Latency,
}

/// A process's limit on open files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// The "Max open files" line of `/proc/<pid>/limits` ("unlimited" is `u64::MAX`).
pub fn parse_open_files(limits: &str) -> Option<FileLimit> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..]
        .split_whitespace()
        .map(|v| match v {
            "unlimited" => Some(u64::MAX),
            v => v.parse().ok(),
        });
    Some(FileLimit {
        soft: values.next()??,
        hard: values.next()??,
    })
}

/// The open-files limit of process `pid`.
pub fn open_files(pid: u32) -> Option<FileLimit> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    parse_open_files(&text)
}

/// Why `connections` streams cannot be tried here, if they cannot: a process that may not open
/// that many descriptors (and [`HEADROOM`]), or a publish-server that serves fewer streams.
pub fn obstacle(
    connections: usize,
    server: Option<FileLimit>,
    harness: Option<FileLimit>,
    max_streams: Option<usize>,
) -> Option<String> {
    let need = connections as u64 + HEADROOM;
    for (who, limit) in [("the publish-server", server), ("the harness", harness)] {
        let Some(limit) = limit.filter(|l| l.soft < need) else {
            continue;
        };
        let which = if limit.soft >= limit.hard {
            "hard limit".to_owned()
        } else {
            format!(
                "soft limit; the hard limit is {}",
                thousands(limit.hard as f64)
            )
        };
        return Some(format!(
            "{who} may open {} descriptors ({which}), {} connections need more",
            thousands(limit.soft as f64),
            thousands(connections as f64)
        ));
    }
    max_streams.filter(|&max| max < connections).map(|max| {
        format!(
            "the publish-server serves at most {} streams (SSE_MAX_CONNECTIONS)",
            thousands(max as f64)
        )
    })
}

/// The source addresses for `connections` streams: 127.0.0.2 on, [`PER_SOURCE`] each.
pub fn source_addresses(connections: usize) -> Vec<IpAddr> {
    let first = u32::from(Ipv4Addr::new(127, 0, 0, 2));
    (0..connections.div_ceil(PER_SOURCE).max(1) as u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(first + i)))
        .collect()
}

impl IdleResult {
    fn not_measured(spec: &IdleSpec, reason: String) -> Self {
        Self {
            connections: spec.connections,
            not_measured: Some(reason),
            ..Self::default()
        }
    }
}

/// Checks the limits, then opens the streams, posts one message and waits for it everywhere.
pub async fn run(targets: &Targets, spec: &IdleSpec) -> IdleResult {
    let Some(pid) = targets.publish_pid else {
        let reason = "the publish-server's pid is not known (its RSS cannot be read)".to_owned();
        return IdleResult::not_measured(spec, reason);
    };
    let (server, harness) = (open_files(pid), open_files(std::process::id()));
    let limits = |mut result: IdleResult| {
        result.server_open_files = server.map(|l| l.soft);
        result.harness_open_files = harness.map(|l| l.soft);
        result
    };
    if let Some(reason) = obstacle(spec.connections, server, harness, spec.max_streams) {
        return limits(IdleResult::not_measured(spec, reason));
    }
    limits(
        match tokio::time::timeout(STEP_TIMEOUT, measure(targets, pid, spec)).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => IdleResult::not_measured(spec, format!("the step failed: {e:#}")),
            Err(_) => IdleResult::not_measured(
                spec,
                format!("the step took over {} s", STEP_TIMEOUT.as_secs()),
            ),
        },
    )
}

async fn measure(targets: &Targets, pid: u32, spec: &IdleSpec) -> anyhow::Result<IdleResult> {
    let shared = Shared::new(1);
    let publisher = Publisher::new(&targets.chat, 1).await?;
    let sources = source_addresses(spec.connections);
    let (stop, stopped) = watch::channel(false);
    let rss_before_open = fanout::sample_rss(Some(pid));
    let opening = Instant::now();
    let opened = fanout::open_subscribers(
        targets.publish_addr,
        &publisher.rooms,
        0..spec.connections,
        &sources,
        &shared,
        &stopped,
    )
    .await;
    let open_secs = opening.elapsed().as_secs_f64();
    eprintln!(
        "  idle: {} streams open from {} addresses in {open_secs:.1} s ({} failed)",
        opened.tasks.len(),
        sources.len(),
        opened.failures
    );
    // Let the server settle (allocations of the last accepts, the hub's bookkeeping).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after_open = fanout::sample_rss(Some(pid));
    let server_clients = fanout::server_clients(targets).await;

    shared.start_phase(1);
    let published = publisher
        .publish(&shared, 1.0, 1.0, None, &[opened.tasks.len()])
        .await;
    shared
        .wait_for(1, published.expected, Instant::now() + DRAIN_TIMEOUT)
        .await;
    let result = IdleResult {
        connections: spec.connections,
        not_measured: None,
        server_open_files: None,
        harness_open_files: None,
        sources,
        opened: opened.tasks.len(),
        open_failures: opened.failures,
        open_secs,
        server_clients,
        rss_before_open,
        rss_after_open,
        rss_per_connection: fanout::per_connection(
            rss_before_open,
            rss_after_open,
            opened.tasks.len(),
        ),
        received: shared.received(1),
        latency: shared.latency(1),
    };
    let _ = stop.send(true);
    for (_, task) in opened.tasks {
        let _ = task.await;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max cpu time              unlimited            unlimited            seconds   \n\
        Max open files            20000                20000                files     \n\
        Max locked memory         8388608              8388608              bytes     \n";

    #[test]
    fn the_open_files_line_is_read_from_proc_limits() {
        assert_eq!(
            parse_open_files(LIMITS),
            Some(FileLimit {
                soft: 20_000,
                hard: 20_000
            })
        );
        let unlimited =
            "Max open files            1024                 unlimited            files\n";
        assert_eq!(
            parse_open_files(unlimited),
            Some(FileLimit {
                soft: 1_024,
                hard: u64::MAX
            })
        );
        assert_eq!(
            parse_open_files("Max cpu time  unlimited unlimited seconds\n"),
            None
        );
        assert!(open_files(std::process::id()).is_some());
    }

    #[test]
    fn a_descriptor_limit_below_the_connections_is_the_reason_not_to_try() {
        let low = FileLimit {
            soft: 20_000,
            hard: 20_000,
        };
        let high = FileLimit {
            soft: 200_000,
            hard: 200_000,
        };
        assert_eq!(
            obstacle(100_000, Some(low), Some(high), Some(110_000)).as_deref(),
            Some(
                "the publish-server may open 20,000 descriptors (hard limit), 100,000 connections need more"
            )
        );
        let soft = FileLimit {
            soft: 65_536,
            hard: 1_048_576,
        };
        let reason = obstacle(100_000, Some(high), Some(soft), None).expect("an obstacle");
        assert!(
            reason.starts_with(
                "the harness may open 65,536 descriptors (soft limit; the hard limit is 1,048,576)"
            ),
            "{reason}"
        );
        // The streams and the headroom must both fit.
        let tight = FileLimit {
            soft: 100_500,
            hard: 100_500,
        };
        assert!(obstacle(100_000, Some(tight), Some(high), None).is_some());
        assert_eq!(
            obstacle(100_000, Some(high), Some(high), Some(20_000)).as_deref(),
            Some("the publish-server serves at most 20,000 streams (SSE_MAX_CONNECTIONS)")
        );
        assert_eq!(obstacle(100_000, Some(high), None, Some(110_000)), None);
    }

    #[test]
    fn streams_are_spread_over_enough_loopback_addresses() {
        let sources = source_addresses(100_000);
        assert_eq!(sources.len(), 5);
        assert_eq!(sources[0].to_string(), "127.0.0.2");
        assert_eq!(sources[4].to_string(), "127.0.0.6");
        assert_eq!(source_addresses(100_001).len(), 6);
        assert_eq!(source_addresses(0).len(), 1);
    }
}
