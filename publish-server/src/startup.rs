//! Building and running the application.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use shared::{
    event_log::EventLog,
    readmodel::ReadModel,
    redis_client::RedisClient,
    shutdown::CancellationToken,
    supervise::{Supervisor, TaskHealth},
    tokens,
};
use tokio::net::TcpListener;

use crate::{
    audience::Audience,
    metrics::Metrics,
    read_side::ReadSide,
    routes,
    serve::{ConnectionOptions, serve},
    settings::Settings,
};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    read_side: ReadSide,
    health: TaskHealth,
    /// `HOTCHAT_TEST_FAIL_TASK`.
    fail_task: Option<String>,
    drain: Duration,
    connection_options: ConnectionOptions,
    /// The listener of `METRICS_ADDR` and what it serves.
    metrics_listener: Option<(TcpListener, axum::Router)>,
}

impl Application {
    /// Opens the topic (creating it if missing), connects the read model, builds the read side and
    /// binds the listener (`PUBLISH_ADDR`; port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let log = Arc::new(EventLog::open(Some(&settings.kafka), &settings.data_dir).await?);
        let read_model = ReadModel::open(&settings.database, &settings.data_dir).await?;
        let redis = match &settings.redis {
            Some((url, prefix)) => Some(Arc::new(
                RedisClient::new(url, prefix).context("REDIS_URL is not valid")?,
            )),
            None => None,
        };
        let tokens = match &settings.auth {
            Some(auth) => Some(Arc::new(
                tokens::verifier(
                    &auth.secret,
                    auth.previous_secret.as_deref(),
                    Duration::from_secs(3600),
                    &auth.operator,
                )
                .await?,
            )),
            None => None,
        };
        let health = TaskHealth::default();
        let read_side = ReadSide::build(
            log,
            read_model,
            &settings.sse,
            &settings.projector_group,
            Arc::new(Metrics::default()),
            Arc::new(Audience::new(
                redis,
                false,
                tokens,
                settings.trust_forwarded_for,
            )),
            health.clone(),
        )
        .await?;
        let listener = shared::http::listen(settings.addr)
            .with_context(|| format!("binding {}", settings.addr))?;
        let router = routes::router(
            read_side.state().clone(),
            &settings.cors_origins,
            settings.metrics_public,
        );
        let metrics_listener = match settings.metrics_addr {
            Some(addr) => Some((
                shared::http::listen(addr)
                    .with_context(|| format!("binding METRICS_ADDR {addr}"))?,
                routes::metrics_router(read_side.state().clone()),
            )),
            None => None,
        };
        Ok(Self {
            listener,
            router,
            read_side,
            health,
            fail_task: settings.fail_task,
            drain: settings.drain,
            connection_options: ReadSide::connection_options(
                &settings.sse,
                settings.head_timeout,
                settings.max_connections,
            ),
            metrics_listener,
        })
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
    /// ends the run with an error): then every stream ends (clients reconnect elsewhere and resume),
    /// open connections get `SHUTDOWN_DRAIN_MS` to close, and the background tasks as long again to
    /// stop (the projector commits what it wrote).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = Supervisor::new(self.health, shutdown.clone(), self.fail_task);
        self.read_side.start(&mut tasks, &shutdown);
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
        tasks.await??;
        Ok(())
    }
}
