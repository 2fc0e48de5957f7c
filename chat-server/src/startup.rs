//! Building and running the application: connect, bind, serve until the shutdown token fires.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use moka::future::Cache;
use shared::{readmodel::ReadModel, shutdown::CancellationToken};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::{
    auth::TokenSigner,
    event_log::EventLog,
    hot::{
        FetchCounter, HotView,
        scheduler::Scheduler,
        store::{HotStore, LocalStore, RedisStore},
        throttle::Throttle,
    },
    metrics::Metrics,
    routes,
    settings::Settings,
    state::AppState,
};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    scheduler: Scheduler,
}

impl Application {
    /// Connects to the broker and the database, creates the topic if missing and binds the listener
    /// (`CHAT_ADDR`; port 0 picks a free port, see [`Application::local_addr`]). Redis is not needed
    /// to start: the hot-room loop connects (and reconnects) by itself.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let partitions = settings.kafka.ensure_topic().await?;
        tracing::info!(topic = %settings.kafka.topic, partitions, "event topic ready");
        let read_model = ReadModel::connect(&settings.database_url).await?;
        let log = Arc::new(EventLog::new(settings.kafka.clone())?);
        let metrics = Arc::new(Metrics::default());
        let hot = Arc::new(HotView::default());
        let counter = Arc::new(FetchCounter::default());
        let throttle = Arc::new(Throttle::new(&settings.hot));
        let store = match &settings.hot.redis_url {
            Some(url) => HotStore::Redis(
                RedisStore::new(url, &settings.hot.key_prefix).context("REDIS_URL is not valid")?,
            ),
            None => HotStore::Local(LocalStore::default()),
        };
        let state = AppState {
            log: log.clone(),
            read_model,
            rooms: Cache::new(100_000),
            signer: Arc::new(TokenSigner::new(
                settings.auth.secret.as_bytes(),
                settings.auth.token_ttl,
            )),
            metrics: metrics.clone(),
            hot: hot.clone(),
            counter: counter.clone(),
            throttle: throttle.clone(),
            trust_forwarded_for: settings.hot.trust_forwarded_for,
        };
        let scheduler = Scheduler {
            instance: Uuid::now_v7(),
            settings: settings.hot.clone(),
            store,
            counter,
            view: hot,
            throttle,
            log,
            metrics,
        };
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        let router = routes::router(state.clone(), &settings);
        Ok(Self {
            listener,
            router,
            state,
            scheduler,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests, hands the scheduler
    /// lock over and flushes the producer.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let scheduler = tokio::spawn(self.scheduler.run(shutdown.clone()));
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .context("serving HTTP");
        shutdown.cancel();
        if tokio::time::timeout(Duration::from_secs(2), scheduler)
            .await
            .is_err()
        {
            tracing::warn!("hot-room scheduler did not stop within 2 s");
        }
        self.state.log.flush(Duration::from_secs(3));
        served
    }
}
