//! The embedded mode: one chat-server with no Kafka, PostgreSQL or Redis (the event log and the
//! read model are SQLite files in its data folder, and it serves the event streams itself), measured
//! with the harnesses of the distributed stack.
//!
//! The run script starts it after the distributed phases, once their servers and broker are
//! stopped, so it has the cores to itself (with the harness). In order:
//!
//! 1. **idle**: the process's CPU over a few seconds with no load, the background every later
//!    figure includes (nothing is subtracted from them);
//! 2. **paced posts** and **fan-out**: two phases of the fan-out benchmark ([`crate::fanout`]) on
//!    the chat-server's own `/api/rooms/{room}/events`: stamped posts at 100 a second with nobody
//!    subscribed (chat-server CPU per acknowledged post, the `POST`'s latency), then the same rate
//!    with 1,000 subscribers over the 10 rooms (post→SSE latency, CPU per delivery), the shape of
//!    the distributed fan-out's first phase;
//! 3. **posts**: the posts-only goose plan ([`crate::fetch::posts_plan`]), steps of closed-loop
//!    posters, to find where the embedded write path saturates and what a post costs there.
//!
//! The plan runs last: at saturation the in-process projector may fall behind the log, and its
//! catching up must not land in the windows of the paced phases.

use std::time::Duration;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};

use crate::{
    fanout::{self, FanoutSpec, PhaseResult, PhaseSpec, Targets},
    fetch::{FetchConfig, posts_plan},
    plan::{PlanResult, Server, run_plan},
    procstat,
    seed::seed,
};

/// Messages a second of the paced phases: the target's rate, and the distributed fan-out's first
/// phase's.
pub const PACED_RATE: f64 = 100.0;
/// Subscribers of the fan-out phase, spread evenly over [`ROOMS`].
pub const SUBSCRIBERS: usize = 1_000;
pub const ROOMS: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddedSpec {
    /// How long the process is watched with no load, before anything else.
    pub idle_secs: f64,
    /// The paced posts and the fan-out, as two phases of the fan-out benchmark.
    pub fanout: FanoutSpec,
    /// The posts-only plan's users and step length, and the rooms it posts to: the fetch plans'.
    pub plans: FetchConfig,
}

impl EmbeddedSpec {
    /// The default run (`full`: 30 s phases, and the fetch plans' `--full` steps).
    pub fn new(full: bool) -> Self {
        let secs = if full { 30.0 } else { 10.0 };
        let phase = |name: &str, subscribers| PhaseSpec {
            name: name.to_owned(),
            subscribers,
            rate: PACED_RATE,
            posted_rooms: None,
            secs,
            viral: None,
        };
        Self {
            idle_secs: 3.0,
            fanout: FanoutSpec {
                rooms: ROOMS,
                phases: vec![
                    phase("no subscribers", 0),
                    phase("1,000 subscribers", SUBSCRIBERS),
                ],
                // 2 s at the paced rate: the first posts pay for connections and allocations.
                warmup_messages: 200,
            },
            plans: if full {
                FetchConfig::full()
            } else {
                FetchConfig::short()
            },
        }
    }
}

/// The process's own CPU with no load.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Idle {
    pub secs: f64,
    pub cpu_seconds: Option<f64>,
    pub rss_bytes: Option<u64>,
}

impl Idle {
    /// CPU seconds per second.
    pub fn cpu_per_sec(&self) -> Option<f64> {
        self.cpu_seconds
            .filter(|_| self.secs > 0.0)
            .map(|c| c / self.secs)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddedResult {
    pub spec: EmbeddedSpec,
    pub idle: Idle,
    /// Paced posts, nobody subscribed.
    pub paced: PhaseResult,
    /// The same rate with the subscribers.
    pub fanout: PhaseResult,
    /// The posts-only plan.
    pub posts: PlanResult,
}

impl EmbeddedResult {
    /// Acknowledged posts a second of the paced phase.
    pub fn paced_posts_per_sec(&self) -> f64 {
        self.paced.messages_posted as f64 / self.paced.window_secs.max(1e-9)
    }

    /// chat-server CPU per acknowledged post of the paced phase, in µs (its idle CPU included).
    pub fn paced_cpu_us_per_post(&self) -> Option<f64> {
        cpu_us_per(
            self.paced.server_cpu_seconds,
            self.paced.messages_posted as f64,
        )
    }

    /// chat-server CPU per acknowledged post at the plan's quoted step (its saturation point, or
    /// its busiest step), in µs.
    pub fn saturation_cpu_us_per_post(&self) -> Option<f64> {
        let step = self.posts.quoted_step()?;
        let cpu = step.server.cpu?;
        let posts = step.focus.ok_per_sec;
        (posts > 0.0).then(|| cpu * 1e6 / posts)
    }

    /// chat-server CPU per delivery of the fan-out phase, in µs: the whole process's (posts, log,
    /// projector and fan-out), over the deliveries it counted.
    pub fn cpu_us_per_delivery(&self) -> Option<f64> {
        cpu_us_per(
            self.fanout.server_cpu_seconds,
            self.fanout.deliveries_server,
        )
    }
}

/// `cpu` seconds over `count` things, in µs each.
fn cpu_us_per(cpu: Option<f64>, count: f64) -> Option<f64> {
    cpu.filter(|_| count > 0.0).map(|c| c * 1e6 / count)
}

/// Runs the three parts against the embedded chat-server `server` (its pid for `/proc`; `/metrics`
/// on its public port, `METRICS_PUBLIC=true`), whose event streams are at `server_addr`.
pub async fn run(
    server: &Server,
    server_addr: std::net::SocketAddr,
    spec: &EmbeddedSpec,
) -> anyhow::Result<EmbeddedResult> {
    // Let the start-up's last work (migrations, the first checkpoint) pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = idle(server.pid, spec.idle_secs).await;
    eprintln!(
        "  embedded idle: {:.4} CPU-s/s over {:.0} s",
        idle.cpu_per_sec().unwrap_or(f64::NAN),
        idle.secs
    );

    let targets = Targets {
        chat: server.api.clone(),
        publish: server.api.clone(),
        publish_addr: server_addr,
        publish_pid: server.pid,
        broker_pid: None,
    };
    let result = fanout::run(&targets, &spec.fanout).await?;
    let [paced, fanout]: [PhaseResult; 2] = result
        .phases
        .try_into()
        .map_err(|_| anyhow!("the embedded fan-out runs two phases"))?;

    eprintln!("  embedded posts plan: seeding rooms");
    let target = seed(&server.api, spec.plans.seed_spec())
        .await
        .context("seeding the embedded chat-server")?;
    let posts = run_plan(&posts_plan(
        server,
        &target,
        &spec.plans,
        "Embedded mode: posts only, each acknowledged by the embedded log (on disk)",
    ))
    .await?;
    Ok(EmbeddedResult {
        spec: spec.clone(),
        idle,
        paced,
        fanout,
        posts,
    })
}

/// The CPU `pid` uses over `secs` seconds with no load.
async fn idle(pid: Option<u32>, secs: f64) -> Idle {
    let before = procstat::maybe_sample(pid);
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let after = procstat::maybe_sample(pid);
    Idle {
        secs: started.elapsed().as_secs_f64(),
        cpu_seconds: fanout::cpu_between(&before, &after),
        rss_bytes: after.map(|s| s.rss_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paced_phases_are_the_distributed_fan_outs_first_phase_with_and_without_subscribers() {
        for full in [false, true] {
            let spec = EmbeddedSpec::new(full);
            let phases = &spec.fanout.phases;
            assert_eq!(spec.fanout.rooms, 10);
            assert_eq!(
                phases.iter().map(|p| p.subscribers).collect::<Vec<_>>(),
                [0, 1_000]
            );
            assert!(phases.iter().all(|p| p.rate == 100.0 && p.viral.is_none()));
        }
        assert_eq!(EmbeddedSpec::new(false).fanout.phases[0].secs, 10.0);
        assert_eq!(EmbeddedSpec::new(true).fanout.phases[0].secs, 30.0);
    }

    #[test]
    fn cost_per_thing_needs_a_reading_and_something_counted() {
        assert_eq!(cpu_us_per(Some(0.25), 1_000.0), Some(250.0));
        assert_eq!(cpu_us_per(None, 1_000.0), None);
        assert_eq!(cpu_us_per(Some(0.25), 0.0), None);
        let idle = Idle {
            secs: 4.0,
            cpu_seconds: Some(0.02),
            rss_bytes: None,
        };
        assert_eq!(idle.cpu_per_sec(), Some(0.005));
    }
}
