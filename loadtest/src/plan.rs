//! Stepped goose plans: a fixed number of users per step, one goose attack per step, and what each
//! step measured at the client and at the server.
//!
//! Each step starts its users within a fraction of a second (sign-ins included), then goose resets its
//! metrics and measures for `step_secs`: the window is read from goose's own step history, and the
//! server side (chat-server CPU from `/proc`, database queries and cache hits from `/metrics`) is
//! sampled every [`SAMPLE_EVERY`] and cut to the same window. Goose's users are closed loops with no
//! think time, so the number of users is the concurrency offered to the server.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use goose::{
    config::GooseConfiguration, metrics::GooseRequestMetricAggregate, prelude::*,
    test_plan::TestPlanStepAction,
};
use serde::{Deserialize, Serialize};

use crate::{
    api::Api,
    procstat, prom,
    saturation::{Point, Rule, Saturation, quoted_step},
    stats::Latency,
};

/// The name of the sign-in request (each user's first).
pub const SIGN_IN: &str = "sign in";

/// How often the server is sampled during a step.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A chat-server under test, and its pid when this run started it.
#[derive(Clone)]
pub struct Server {
    pub label: String,
    pub api: Api,
    pub pid: Option<u32>,
    /// The broker's pid, when this run started it (its CPU is sampled too).
    pub broker_pid: Option<u32>,
}

/// Answers to one kind of request (or several merged) in one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestStats {
    pub answers: u64,
    /// 2xx answers.
    pub ok: u64,
    /// `429 Too Many Requests`: the per-client limit of a hot room, intended.
    pub throttled: u64,
    /// Everything else: other statuses and failed connections.
    pub errors: u64,
    pub ok_per_sec: f64,
    pub answers_per_sec: f64,
    /// Answers by HTTP status (0: no answer, e.g. a failed connection).
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of every answer (2xx, 429 and errors alike), as goose measured it: from sending the
    /// request to the response head.
    pub latency: Latency,
}

impl RequestStats {
    pub fn error_rate(&self) -> f64 {
        if self.answers == 0 {
            0.0
        } else {
            self.errors as f64 / self.answers as f64
        }
    }
}

/// What the chat-server did during a step's window, per second.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ServerRates {
    /// CPU seconds per second (1.0 = one core busy).
    pub cpu: Option<f64>,
    /// The broker's CPU seconds per second.
    #[serde(default)]
    pub broker_cpu: Option<f64>,
    /// `hotchat_fetch_db_queries_total{mode="normal"}` per second.
    pub db_queries_normal: f64,
    /// `hotchat_fetch_db_queries_total{mode="throttled"}` per second: the coalesced hot-room reads.
    pub db_queries_throttled: f64,
    /// `hotchat_fetch_cache_hits_total` per second.
    pub cache_hits: f64,
    /// `hotchat_throttled_answers_total` (429s) per second.
    pub throttled_answers: f64,
    pub rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    pub users: usize,
    /// Users on top of `users` (the cold-room background).
    pub background_users: usize,
    /// Length of the measured window, in seconds.
    pub window_secs: f64,
    /// Answers per second to every request of the step (background included, sign-ins not).
    pub answers_per_sec: f64,
    /// The requests the saturation rule looks at, merged.
    pub focus: RequestStats,
    /// Every named request of the step.
    pub requests: BTreeMap<String, RequestStats>,
    pub server: ServerRates,
}

impl StepResult {
    /// chat-server CPU time per answer, in microseconds (every answer of the step).
    pub fn cpu_us_per_answer(&self) -> Option<f64> {
        let cpu = self.server.cpu?;
        (self.answers_per_sec > 0.0).then(|| cpu * 1e6 / self.answers_per_sec)
    }

    pub fn point(&self) -> Point {
        Point {
            users: self.users,
            throughput: self.focus.ok_per_sec,
            p99_ms: self.focus.latency.p99_ms,
            error_rate: self.focus.error_rate(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanResult {
    pub name: String,
    pub title: String,
    /// Which chat-server configuration ran it.
    pub server: String,
    /// The request names the rule looks at.
    pub focus: Vec<String>,
    pub step_secs: u64,
    pub steps: Vec<StepResult>,
    pub rule: Rule,
    pub saturation: Saturation,
    /// The step quoted as this plan's result: the saturation point, or the busiest step if the
    /// plan did not reach it.
    pub quoted: Option<usize>,
}

impl PlanResult {
    pub fn quoted_step(&self) -> Option<&StepResult> {
        self.quoted.and_then(|i| self.steps.get(i))
    }
}

/// Builds a fresh set of scenarios for a step of `users` users (goose takes them by value). The
/// scenarios' weights must add up to `users` plus the plan's background users, so that goose
/// starts exactly that many of each.
pub type ScenarioFactory = Box<dyn Fn(usize) -> Result<Vec<Scenario>, GooseError> + Send + Sync>;

pub struct PlanSpec {
    pub name: String,
    pub title: String,
    pub server: Server,
    pub users: Vec<usize>,
    /// Users started in every step on top of `users` (the cold-room background).
    pub background_users: usize,
    pub step_secs: u64,
    pub focus: Vec<String>,
    pub scenarios: ScenarioFactory,
}

/// Runs every step of `spec` in order and applies the saturation rule.
pub async fn run_plan(spec: &PlanSpec) -> anyhow::Result<PlanResult> {
    let mut steps = Vec::new();
    for &users in &spec.users {
        let step = run_step(spec, users)
            .await
            .with_context(|| format!("plan {}, step of {users} users", spec.name))?;
        eprintln!(
            "  {:<12} {:>4} users: {:>7.0} ok/s  p99 {:>6.2} ms  errors {:>5.2} %  429 {:>6.0}/s  cpu {:.2}  broker {:.2}  db {:>5.0}/s  {:?}",
            spec.name,
            users,
            step.focus.ok_per_sec,
            step.focus.latency.p99_ms,
            step.focus.error_rate() * 100.0,
            step.focus.throttled as f64 / step.window_secs.max(1e-9),
            step.server.cpu.unwrap_or(f64::NAN),
            step.server.broker_cpu.unwrap_or(f64::NAN),
            step.server.db_queries_normal + step.server.db_queries_throttled,
            step.focus.statuses,
        );
        steps.push(step);
        // Let the last step's connections close before the next one starts.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rule = Rule::default();
    let points: Vec<Point> = steps.iter().map(StepResult::point).collect();
    let saturation = rule.saturation(&points);
    Ok(PlanResult {
        name: spec.name.clone(),
        title: spec.title.clone(),
        server: spec.server.label.clone(),
        focus: spec.focus.clone(),
        step_secs: spec.step_secs,
        quoted: quoted_step(&points, saturation),
        steps,
        rule,
        saturation,
    })
}

/// One goose attack of `users` users for `spec.step_secs` seconds.
pub async fn run_step(spec: &PlanSpec, users: usize) -> anyhow::Result<StepResult> {
    let sampler = Sampler::start(spec.server.clone());
    let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?;
    for scenario in (spec.scenarios)(users)? {
        attack = attack.register_scenario(scenario);
    }
    let all_users = users + spec.background_users;
    // All users start within ~50 ms; the measured window starts when the last one has.
    let increase_rate = (all_users * 20).to_string();
    let metrics = attack
        .set_default(GooseDefault::Host, spec.server.api.base.as_str())?
        .set_default(GooseDefault::Users, all_users)?
        .set_default(GooseDefault::IncreaseRate, increase_rate.as_str())?
        .set_default(GooseDefault::RunTime, spec.step_secs as usize)?
        .set_default(GooseDefault::Timeout, "10")?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::NoErrorSummary, true)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoGzip, true)?
        .set_default(GooseDefault::Quiet, 1)?
        .execute()
        .await
        .context("running goose")?;
    let samples = sampler.stop().await;

    let (start, end) = measured_window(&metrics.history).unwrap_or_else(|| {
        let now = Utc::now();
        (now - chrono::TimeDelta::seconds(spec.step_secs as i64), now)
    });
    let window_secs = ((end - start).num_microseconds().unwrap_or(0) as f64 / 1e6).max(1e-3);

    let by_name: HashMap<&str, &GooseRequestMetricAggregate> = metrics
        .requests
        .values()
        .map(|aggregate| (aggregate.path.as_str(), aggregate))
        .collect();
    let requests: BTreeMap<String, RequestStats> = by_name
        .iter()
        .map(|(name, aggregate)| ((*name).to_owned(), request_stats(&[aggregate], window_secs)))
        .collect();
    let answers_per_sec = requests
        .iter()
        .filter(|(name, _)| name.as_str() != SIGN_IN)
        .map(|(_, stats)| stats.answers_per_sec)
        .sum();
    let focus: Vec<&GooseRequestMetricAggregate> = spec
        .focus
        .iter()
        .filter_map(|name| by_name.get(name.as_str()).copied())
        .collect();
    Ok(StepResult {
        users,
        background_users: spec.background_users,
        window_secs,
        answers_per_sec,
        focus: request_stats(&focus, window_secs),
        requests,
        server: server_rates(&samples, start, end),
    })
}

/// The span of the step in which all users ran (goose's "maintaining" phase).
fn measured_window(
    history: &[goose::test_plan::TestPlanHistory],
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let i = history
        .iter()
        .position(|h| matches!(h.action, TestPlanStepAction::Maintaining))?;
    Some((history[i].timestamp, history.get(i + 1)?.timestamp))
}

/// Merges goose's aggregates of one or more request names.
fn request_stats(aggregates: &[&GooseRequestMetricAggregate], window_secs: f64) -> RequestStats {
    let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut answers, mut ok, mut throttled, mut max_us) = (0u64, 0u64, 0u64, 0u64);
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for aggregate in aggregates {
        for (&bucket, &count) in aggregate.raw_data.times_us.iter() {
            *buckets.entry(bucket).or_default() += count as u64;
        }
        max_us = max_us.max(aggregate.raw_data.maximum_time_us);
        answers += (aggregate.success_count + aggregate.fail_count) as u64;
        for (&status, &count) in &aggregate.status_code_counts {
            *statuses.entry(status).or_default() += count as u64;
            match status {
                200..=299 => ok += count as u64,
                429 => throttled += count as u64,
                _ => {}
            }
        }
    }
    let buckets: Vec<(u64, u64)> = buckets.into_iter().collect();
    RequestStats {
        answers,
        ok,
        throttled,
        errors: answers.saturating_sub(ok + throttled),
        ok_per_sec: ok as f64 / window_secs,
        answers_per_sec: answers as f64 / window_secs,
        statuses,
        latency: Latency::from_buckets(&buckets, max_us),
    }
}

/// One reading of the server.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: DateTime<Utc>,
    proc: Option<procstat::ProcSample>,
    broker: Option<procstat::ProcSample>,
    db_normal: f64,
    db_throttled: f64,
    cache_hits: f64,
    throttled_answers: f64,
}

/// Samples the server every [`SAMPLE_EVERY`] until stopped.
struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(server: Server) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let sink = samples.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = every.tick() => {}
                }
                if let Some(sample) = read_server(&server).await
                    && let Ok(mut samples) = sink.lock()
                {
                    samples.push(sample);
                }
            }
        });
        Self {
            samples,
            stop,
            task,
        }
    }

    async fn stop(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        let _ = self.task.await;
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn read_server(server: &Server) -> Option<Sample> {
    let text = server.api.metrics().await.ok()?;
    let db = |mode| prom::sum(&text, "hotchat_fetch_db_queries_total", &[("mode", mode)]);
    Some(Sample {
        at: Utc::now(),
        proc: procstat::maybe_sample(server.pid),
        broker: procstat::maybe_sample(server.broker_pid),
        db_normal: db("normal"),
        db_throttled: db("throttled"),
        cache_hits: prom::sum(&text, "hotchat_fetch_cache_hits_total", &[]),
        throttled_answers: prom::sum(&text, "hotchat_throttled_answers_total", &[]),
    })
}

/// Rates between the first and the last sample inside `[start, end]`.
fn server_rates(samples: &[Sample], start: DateTime<Utc>, end: DateTime<Utc>) -> ServerRates {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= start && s.at <= end)
        .collect();
    let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
        return ServerRates::default();
    };
    let secs = (last.at - first.at).num_microseconds().unwrap_or(0) as f64 / 1e6;
    if secs <= 0.0 {
        return ServerRates::default();
    }
    let rate = |f: fn(&Sample) -> f64| (f(last) - f(first)) / secs;
    ServerRates {
        cpu: cpu_rate(first.proc, last.proc, secs),
        broker_cpu: cpu_rate(first.broker, last.broker, secs),
        db_queries_normal: rate(|s| s.db_normal),
        db_queries_throttled: rate(|s| s.db_throttled),
        cache_hits: rate(|s| s.cache_hits),
        throttled_answers: rate(|s| s.throttled_answers),
        rss_bytes: last.proc.map(|p| p.rss_bytes),
    }
}

/// CPU seconds per second between two readings of a process.
fn cpu_rate(
    first: Option<procstat::ProcSample>,
    last: Option<procstat::ProcSample>,
    secs: f64,
) -> Option<f64> {
    match (first, last) {
        (Some(a), Some(b)) => Some((b.cpu_seconds - a.cpu_seconds) / secs),
        _ => None,
    }
}
