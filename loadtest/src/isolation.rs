//! Isolation: while one room is viral, do the other rooms still get their messages as fast?
//!
//! Two fan-out phases ([`crate::fanout`]) back to back on rooms of their own, with the same
//! background: other rooms with their subscribers and a modest message rate, first alone, then with
//! a viral room beside them (its own subscribers, its own rate, posted through the same
//! chat-server). Latency is measured on the other rooms' messages only; the target compares their
//! post→SSE p99 with the viral room against without it.
//!
//! On one machine the harness shares the cores with the servers. The viral room's readers run in a
//! process of their own under `nice -n 15` ([`crate::viral`]), so the other rooms' readers and the
//! servers come first, and each phase also keeps the publish-server's own frame ages
//! ([`crate::fanout::FrameAges`]): a delay the server reports is not the load generator's.

use anyhow::anyhow;
use serde::{Deserialize, Serialize};

use crate::{
    fanout::{self, FanoutSpec, PhaseResult, PhaseSpec, Targets, ViralRoom},
    stats::Latency,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsolationSpec {
    /// The other rooms, and the subscribers of each.
    pub rooms: usize,
    pub subscribers_per_room: usize,
    /// Messages a second over the other rooms.
    pub rate: f64,
    pub viral: ViralRoom,
    pub secs: f64,
    /// Messages posted to the other rooms before the first phase (not measured).
    pub warmup_messages: usize,
}

impl IsolationSpec {
    /// The two phases, in fan-out terms.
    fn fanout(&self) -> FanoutSpec {
        let phase = |name: &str, viral| PhaseSpec {
            name: name.to_owned(),
            subscribers: self.rooms * self.subscribers_per_room,
            rate: self.rate,
            posted_rooms: None,
            secs: self.secs,
            viral,
        };
        FanoutSpec {
            rooms: self.rooms,
            phases: vec![
                phase("other rooms alone", None),
                phase("with the viral room", Some(self.viral)),
            ],
            warmup_messages: self.warmup_messages,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsolationResult {
    pub spec: IsolationSpec,
    /// The other rooms alone.
    pub alone: PhaseResult,
    /// The same, with the viral room beside them (its own numbers in `viral`).
    pub with_viral: PhaseResult,
}

impl IsolationResult {
    /// The other rooms' acknowledged post→SSE p99 with the viral room over without it (from
    /// before the `POST` for results that lack it); `None` when either phase has no deliveries.
    pub fn p99_ratio(&self) -> Option<f64> {
        ratio(push_side(&self.alone), push_side(&self.with_viral))
    }

    /// The same from before the `POST`: the write path's round trip included.
    pub fn p99_ratio_from_post(&self) -> Option<f64> {
        ratio(&self.alone.latency, &self.with_viral.latency)
    }
}

/// A phase's post→SSE from the `201` (what a room's push side adds), or from before the `POST`
/// in results from before it was measured.
pub fn push_side(phase: &PhaseResult) -> &Latency {
    if phase.acked_latency.count > 0 {
        &phase.acked_latency
    } else {
        &phase.latency
    }
}

fn ratio(alone: &Latency, with: &Latency) -> Option<f64> {
    (alone.count > 0 && with.count > 0 && alone.p99_ms > 0.0).then(|| with.p99_ms / alone.p99_ms)
}

/// One line for comparing builds: the other rooms' client-side p50/p99 (from the `201` and from
/// before the `POST`) alone and beside the viral room, the publish-server's unbatched frame ages (bucket bounds), its CPU, and the viral room's
/// own deliveries.
pub fn summary(result: &IsolationResult) -> String {
    let phase = |p: &PhaseResult| {
        let ages = p.frame_ages("normal").map_or_else(
            || "frame age –".to_owned(),
            |a| format!("frame age p50 ≤ {:.2} p99 ≤ {:.2} ms", a.p50_ms, a.p99_ms),
        );
        let cpu = p
            .server_cpu_seconds
            .map_or_else(|| "–".to_owned(), |s| format!("{s:.2}"));
        let acked = push_side(p);
        format!(
            "from the 201 p50 {:.1} p99 {:.1} ms (from before the POST p50 {:.1} p99 {:.1} ms), \
             {ages}, publish-server {cpu} CPU-s",
            acked.p50_ms, acked.p99_ms, p.latency.p50_ms, p.latency.p99_ms
        )
    };
    let viral = result
        .with_viral
        .viral
        .as_ref()
        .map_or_else(String::new, |v| {
            format!(
                "; viral room {}/{} deliveries, p99 {:.1} ms",
                v.deliveries_received, v.deliveries_expected, v.latency.p99_ms
            )
        });
    format!(
        "isolation: other rooms alone {}; beside the viral room {}; ratio {}{viral}",
        phase(&result.alone),
        phase(&result.with_viral),
        result
            .p99_ratio()
            .map_or_else(|| "–".to_owned(), |r| format!("{r:.1}×")),
    )
}

pub async fn run(targets: &Targets, spec: &IsolationSpec) -> anyhow::Result<IsolationResult> {
    let result = fanout::run(targets, &spec.fanout()).await?;
    let [alone, with_viral]: [PhaseResult; 2] = result
        .phases
        .try_into()
        .map_err(|_| anyhow!("the isolation benchmark runs two phases"))?;
    Ok(IsolationResult {
        spec: spec.clone(),
        alone,
        with_viral,
    })
}
