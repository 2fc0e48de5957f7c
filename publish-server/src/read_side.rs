//! The read side, built once for both places that serve it: publish-server's own application, and
//! chat-server when its event log is the embedded one (nobody else can read that log).
//!
//! It is the hub with its event-stream route, the fan-out that feeds the hub, the projector that
//! keeps the read model, and their metrics. Both modes run exactly this: the fan-out and the
//! projector read the log independently, so live delivery never waits on the database.

use std::{sync::Arc, time::Duration};

use shared::{
    event_log::EventLog,
    readmodel::ReadModel,
    shutdown::CancellationToken,
    supervise::{Supervisor, TaskHealth},
};
use tokio::sync::Semaphore;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    audience::Audience,
    fanout::{self, Fanout},
    hub::Hub,
    metrics::Metrics,
    per_address::StreamsPerAddress,
    projector::Projector,
    routes,
    serve::ConnectionOptions,
    settings::SseSettings,
    state::AppState,
};

/// The projector group when none is configured (`PROJECTOR_GROUP`).
pub const DEFAULT_PROJECTOR_GROUP: &str = "hotchat-projector";

pub struct ReadSide {
    state: AppState,
    /// `HOT_SSE_BATCH_MS`: how often throttled rooms' batches go out (zero: never batched).
    batch_every: Duration,
    /// `SSE_STALL_SECS`: how long a stream may leave what waits for it untaken.
    stall: Duration,
    fanout: Fanout,
    projector: Projector,
}

impl ReadSide {
    /// Positions the fan-out near the end of every partition (pre-loading the resume buffer) and
    /// joins the projector group.
    pub async fn build(
        log: Arc<EventLog>,
        read_model: ReadModel,
        sse: &SseSettings,
        projector_group: &str,
        metrics: Arc<Metrics>,
        audience: Arc<Audience>,
        health: TaskHealth,
    ) -> anyhow::Result<Self> {
        let hub = Arc::new(Hub::new(
            sse.room_buffer,
            sse.resume_buffer,
            read_model.clone(),
            !sse.batch.is_zero(),
            metrics.clone(),
        ));
        let fanout = Fanout::start(&log, sse.resume_buffer, &hub, &metrics).await?;
        let projector =
            Projector::join(&log, projector_group, read_model.clone(), metrics.clone()).await?;
        tracing::info!(partitions = log.partitions(), group = %projector_group, "read side ready");
        let state = AppState {
            hub,
            read_model,
            metrics,
            log,
            connections: Arc::new(Semaphore::new(sse.max_connections)),
            streams_per_address: StreamsPerAddress::new(sse.max_streams_per_address),
            keepalive: sse.keepalive,
            shutdown: CancellationToken::new(),
            audience,
            health,
        };
        Ok(Self {
            state,
            stall: sse.stall,
            batch_every: sse.batch,
            fanout,
            projector,
        })
    }

    /// `GET /api/rooms/{room}/events` with its documentation, to merge into a router.
    pub fn events_router(&self) -> OpenApiRouter {
        routes::events_router().with_state(self.state.clone())
    }

    /// What every handler of the read side reaches (health and metrics routes included).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// How connections must be served where event streams are: small socket buffers so stalled
    /// clients are noticed, and streams taking their connection over.
    pub fn connection_options(
        sse: &SseSettings,
        head_timeout: Duration,
        max_connections: Option<usize>,
    ) -> ConnectionOptions {
        ConnectionOptions {
            send_buffer: Some(sse.send_buffer),
            write_buffer: Some(sse.send_buffer),
            take_over: Some(routes::is_event_stream),
            head_timeout: Some(head_timeout),
            max_connections,
        }
    }

    /// Starts the fan-out, the projector and their helpers under `tasks` (each must run until
    /// shutdown). When `shutdown` comes, every open stream ends (clients reconnect elsewhere and
    /// resume) and they stop; the projector commits what it wrote.
    pub fn start(self, tasks: &mut Supervisor, shutdown: &CancellationToken) {
        let state = self.state;
        let stop = state.shutdown.clone();
        tokio::spawn({
            let (shutdown, stop) = (shutdown.clone(), stop.clone());
            async move {
                shutdown.cancelled().await;
                stop.cancel();
            }
        });
        let progress = self.projector.progress.clone();
        tasks.spawn(
            "fan-out",
            self.fanout.run(
                state.hub.clone(),
                state.metrics.clone(),
                self.stall,
                stop.clone(),
            ),
        );
        tasks.spawn("projector", self.projector.run(stop.clone()));
        tasks.spawn("reaction seeder", {
            let (hub, stop) = (state.hub.clone(), stop.clone());
            async move { hub.run_seeder(stop).await }
        });
        tasks.spawn(
            "audience",
            state
                .audience
                .clone()
                .run(state.hub.clone(), state.metrics.clone(), stop.clone()),
        );
        if !self.batch_every.is_zero() {
            tasks.spawn(
                "batches",
                send_batches(
                    state.hub.clone(),
                    self.batch_every,
                    state.metrics.clone(),
                    stop.clone(),
                ),
            );
        }
        tasks.spawn(
            "keep-alives",
            keep_alive(state.hub.clone(), state.keepalive, stop.clone()),
        );
        tasks.spawn(
            "lag report",
            fanout::report_lag(
                state.log.clone(),
                state.hub.clone(),
                progress,
                state.metrics.clone(),
                stop,
            ),
        );
    }
}

/// Sends throttled rooms' batches every `every` (not zero) until `stop`.
async fn send_batches(
    hub: Arc<Hub>,
    every: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    // A late tick is not made up for: a batch holds whatever arrived meanwhile.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                let flushed = hub.flush();
                hub.write_due();
                metrics.reactions_folded.inc_by(flushed.folded);
            }
        }
    }
}

/// Writes keep-alives to the taken-over connections of every room that nothing was written to for
/// `period`, checking four times a period (their own tasks sleep meanwhile).
async fn keep_alive(hub: Arc<Hub>, period: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(period / 4);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                for writers in hub.writers() {
                    writers.keep_alive(period);
                }
            }
        }
    }
}
