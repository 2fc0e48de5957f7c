//! Building and running the application: connect, bind, serve until the shutdown token fires.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use publish_server::{
    audience::Audience,
    read_side::{DEFAULT_PROJECTOR_GROUP, ReadSide},
    serve::{ConnectionOptions, serve},
};
use shared::{
    event_log::EventLog,
    readmodel::ReadModel,
    redis_client::RedisClient,
    shutdown::CancellationToken,
    supervise::{Supervisor, TaskHealth},
    tokens,
};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::{
    audience::Online,
    auth::TokenVerifier,
    hot::{
        HotView, RoomCounter,
        scheduler::Scheduler,
        store::{HotStore, LocalStore, RedisStore},
        throttle::Throttle,
    },
    idempotency::KeyStore,
    limits::{PostLimiter, ReactionLimiter},
    metrics::Metrics,
    moderation::SlowMode,
    rate_limit, routes,
    settings::{AuthSettings, Settings},
    state::{AppState, Services},
    write_model::{MESSAGE_WINDOW, WriteModel, WriteTail},
};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    scheduler: Scheduler,
    /// Keeps the write model current.
    write_tail: WriteTail,
    /// The read side, when this process is the only one that can read its log.
    read_side: Option<ReadSide>,
    connection_options: ConnectionOptions,
    /// The listener of `METRICS_ADDR` and what it serves.
    metrics_listener: Option<(TcpListener, axum::Router)>,
    /// `SHUTDOWN_DRAIN_MS`: how long shutdown waits for open connections, then for the tasks.
    drain: Duration,
    /// `HOTCHAT_TEST_FAIL_TASK`.
    fail_task: Option<String>,
}

impl Application {
    /// Opens the event log (Kafka, creating the topic if missing, or the embedded log), the read
    /// model and, when no other process can read the log, the read side; then binds the listener
    /// (`CHAT_ADDR`; port 0 picks a free port, see [`Application::local_addr`]). Redis is not needed
    /// to start: the hot-room loop connects (and reconnects) by itself.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let log = Arc::new(EventLog::open(settings.kafka.as_ref(), &settings.data_dir).await?);
        log.prepare_writer()?;
        // Writes never wait on the read model: a database that does not answer at start-up is
        // connected to later (history answers 503 meanwhile).
        let read_model = ReadModel::open_or_later(&settings.database, &settings.data_dir).await?;
        // How long a write may wait for this server's view of the log to catch up: as long as it
        // would wait for the broker to take its event.
        let write_deadline = settings
            .kafka
            .as_ref()
            .map_or(Duration::from_secs(5), |kafka| kafka.produce_timeout);
        let (write, write_tail) =
            WriteModel::build(log.clone(), &read_model, MESSAGE_WINDOW, write_deadline).await?;
        let mut metrics = Metrics::default();
        let redis = match &settings.hot.redis_url {
            Some(url) => Some(Arc::new(
                RedisClient::new(url, &settings.hot.key_prefix)
                    .context("REDIS_URL is not valid")?,
            )),
            None => None,
        };
        let tokens = Arc::new(token_verifier(&settings.auth).await?);
        let health = TaskHealth::default();
        let read_side = if log.is_private() {
            let read_metrics = Arc::new(metrics.register_sse());
            // The only process serving streams: its own count is the whole audience.
            let audience = Audience::new(
                redis.clone(),
                true,
                Some(tokens.clone()),
                settings.hot.trust_forwarded_for,
            );
            Some(
                ReadSide::build(
                    log.clone(),
                    read_model.clone(),
                    &settings.sse,
                    DEFAULT_PROJECTOR_GROUP,
                    read_metrics,
                    Arc::new(audience),
                    health.clone(),
                )
                .await?,
            )
        } else {
            None
        };
        let online = match (&read_side, &redis) {
            (Some(read_side), _) => Online::Here(read_side.state().audience.clone()),
            (None, Some(redis)) => Online::Shared(redis.clone()),
            (None, None) => Online::Unknown,
        };
        let metrics = Arc::new(metrics);
        let hot = Arc::new(HotView::default());
        let counter = Arc::new(RoomCounter::default());
        let written = Arc::new(RoomCounter::default());
        let throttle = Arc::new(Throttle::new(&settings.hot));
        let (store, idempotency) = match &redis {
            Some(redis) => (
                HotStore::Redis(RedisStore::new(redis.clone())),
                KeyStore::redis(redis.clone()),
            ),
            None => (HotStore::Local(LocalStore::default()), KeyStore::local()),
        };
        let state = AppState::new(Services {
            log: log.clone(),
            read_model,
            write,
            slow_mode: Arc::new(SlowMode::new(redis.clone())),
            tokens,
            online: online.clone(),
            session_limit: rate_limit::session_limit(
                settings.session_limits,
                settings.hot.trust_forwarded_for,
            ),
            room_limit: rate_limit::room_limit(
                settings.room_limits,
                settings.hot.trust_forwarded_for,
            ),
            metrics: metrics.clone(),
            hot: hot.clone(),
            counter: counter.clone(),
            written: written.clone(),
            throttle: throttle.clone(),
            idempotency: Arc::new(idempotency),
            post_limiter: Arc::new(PostLimiter::new(settings.post_limits)),
            reaction_limiter: Arc::new(ReactionLimiter::new(settings.reaction_limits)),
            trust_forwarded_for: settings.hot.trust_forwarded_for,
            health,
        });
        let scheduler = Scheduler {
            instance: Uuid::now_v7(),
            settings: settings.hot.clone(),
            store,
            counter,
            written,
            online,
            view: hot,
            log,
            metrics,
        };
        let listener = shared::http::listen(settings.addr)
            .with_context(|| format!("binding {}", settings.addr))?;
        let router = routes::router(
            state.clone(),
            &settings,
            read_side.as_ref().map(ReadSide::events_router),
        );
        let metrics_listener = match settings.metrics_addr {
            Some(addr) => Some((
                shared::http::listen(addr)
                    .with_context(|| format!("binding METRICS_ADDR {addr}"))?,
                routes::metrics_router(state.clone()),
            )),
            None => None,
        };
        let connection_options = match read_side {
            Some(_) => ReadSide::connection_options(
                &settings.sse,
                settings.head_timeout,
                settings.max_connections,
            ),
            None => ConnectionOptions {
                head_timeout: Some(settings.head_timeout),
                max_connections: settings.max_connections,
                ..ConnectionOptions::default()
            },
        };
        Ok(Self {
            listener,
            router,
            state,
            scheduler,
            write_tail,
            read_side,
            connection_options,
            metrics_listener,
            drain: settings.drain,
            fail_task: settings.fail_task,
        })
    }

    /// The router as served, for tests that read its route table ([`shared::openapi::route_table`]).
    pub fn router(&self) -> &axum::Router {
        &self.router
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `METRICS_ADDR` is bound, if it is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let (listener, _) = self.metrics_listener.as_ref()?;
        listener.local_addr().ok()
    }

    /// Serves until `shutdown` is cancelled, or until a critical task stops (which cancels it and
    /// ends the run with an error); then finishes in-flight requests within `SHUTDOWN_DRAIN_MS`,
    /// gives the tasks as long again to stop (the scheduler hands its lock over, the read side if
    /// here ends its streams) and flushes the producer.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks =
            Supervisor::new(self.state.health.clone(), shutdown.clone(), self.fail_task);
        tasks.spawn("hot-room scheduler", self.scheduler.run(shutdown.clone()));
        tasks.spawn("write model tail", self.write_tail.run(shutdown.clone()));
        if let Some(read_side) = self.read_side {
            read_side.start(&mut tasks, &shutdown);
        }
        tasks.spawn(
            "housekeeping",
            housekeeping(self.state.clone(), shutdown.clone()),
        );
        if let Some((listener, router)) = self.metrics_listener {
            tasks.spawn(
                "metrics listener",
                shared::http::serve_side(listener, router, shutdown.clone()),
            );
        }
        let tasks = tokio::spawn(tasks.run(self.drain));
        serve(
            self.listener,
            self.router,
            shutdown.clone(),
            self.drain,
            self.connection_options,
        )
        .await;
        shutdown.cancel();
        let stopped = tasks.await?;
        self.state.log.flush(self.drain);
        Ok(stopped?)
    }
}

/// The token verifier of `auth`; with `AUTH_JWKS`, the key set is loaded once now, and a failure
/// does not stop the server (its tokens answer 503 until a load succeeds).
async fn token_verifier(auth: &AuthSettings) -> anyhow::Result<TokenVerifier> {
    tokens::verifier(
        &auth.secret,
        auth.previous_secret.as_deref(),
        auth.token_ttl,
        &auth.operator,
    )
    .await
}

/// Every 10 s: rate limiters forget clients that went quiet, so their memory follows the active ones.
async fn housekeeping(state: AppState, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = every.tick() => {
                state.throttle.housekeeping();
                state.post_limiter.housekeeping();
                state.reaction_limiter.housekeeping();
                rate_limit::housekeeping(&state.session_limit);
                rate_limit::housekeeping(&state.room_limit);
            }
        }
    }
}
