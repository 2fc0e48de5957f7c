//! Building and running the application: connect, bind, serve until the shutdown token fires.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use moka::future::Cache;
use publish_server::embedded::Embedded;
use shared::{
    local_log::LocalLog,
    readmodel::ReadModel,
    serve::{ConnectionOptions, serve},
    shutdown::CancellationToken,
};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::{
    auth::TokenSigner,
    event_log::{EventLog, KafkaLog},
    hot::{
        FetchCounter, HotView,
        scheduler::Scheduler,
        store::{HotStore, LocalStore, RedisStore},
        throttle::Throttle,
    },
    limits::PostLimiter,
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
    /// The embedded read side, when there is no Kafka.
    embedded: Option<Embedded>,
    connection_options: ConnectionOptions,
    /// `SHUTDOWN_DRAIN_MS`: how long shutdown waits for open connections.
    drain: Duration,
}

impl Application {
    /// Opens the event log (Kafka, creating the topic if missing, or the embedded log), the read
    /// model and, without Kafka, the embedded read side; then binds the listener (`CHAT_ADDR`; port 0
    /// picks a free port, see [`Application::local_addr`]). Redis is not needed to start: the
    /// hot-room loop connects (and reconnects) by itself.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (log, local) = match &settings.kafka {
            Some(kafka) => {
                let partitions = kafka.ensure_topic().await?;
                tracing::info!(topic = %kafka.topic, partitions, "event topic ready");
                (EventLog::Kafka(KafkaLog::new(kafka.clone())?), None)
            }
            None => {
                let file = settings.data_dir.join("events.db");
                let local = Arc::new(LocalLog::open(&file).await?);
                tracing::info!(file = %file.display(), records = local.end(), "embedded event log (KAFKA_BROKERS is unset)");
                (EventLog::Local(local.clone()), Some(local))
            }
        };
        let read_model = ReadModel::open(&settings.database, &settings.data_dir).await?;
        let mut metrics = Metrics::default();
        let embedded = match local {
            Some(local) => {
                let sse_metrics = Arc::new(metrics.register_sse());
                Some(
                    Embedded::prepare(local, read_model.clone(), &settings.sse, sse_metrics)
                        .await?,
                )
            }
            None => None,
        };
        let metrics = Arc::new(metrics);
        let log = Arc::new(log);
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
            post_limiter: Arc::new(PostLimiter::new(settings.post_limits)),
            trust_forwarded_for: settings.hot.trust_forwarded_for,
        };
        let scheduler = Scheduler {
            instance: Uuid::now_v7(),
            settings: settings.hot.clone(),
            store,
            counter,
            view: hot,
            log,
            metrics,
        };
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        let router = routes::router(
            state.clone(),
            &settings,
            embedded.as_ref().map(Embedded::router),
        );
        let connection_options = match embedded {
            // Event streams are served here: small socket buffers so stalled clients are noticed.
            Some(_) => ConnectionOptions {
                send_buffer: Some(settings.sse.send_buffer),
                write_buffer: Some(settings.sse.send_buffer),
                take_over: Some(publish_server::routes::is_event_stream),
                head_timeout: Some(settings.head_timeout),
                max_connections: Some(settings.max_connections),
            },
            None => ConnectionOptions {
                head_timeout: Some(settings.head_timeout),
                max_connections: Some(settings.max_connections),
                ..ConnectionOptions::default()
            },
        };
        Ok(Self {
            listener,
            router,
            state,
            scheduler,
            embedded,
            connection_options,
            drain: settings.drain,
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
        let embedded = self.embedded.map(|e| tokio::spawn(e.run(shutdown.clone())));
        tokio::spawn(housekeeping(self.state.clone(), shutdown.clone()));
        serve(
            self.listener,
            self.router,
            shutdown.clone(),
            self.drain,
            self.connection_options,
        )
        .await;
        shutdown.cancel();
        if tokio::time::timeout(Duration::from_secs(2), scheduler)
            .await
            .is_err()
        {
            tracing::warn!("hot-room scheduler did not stop within 2 s");
        }
        if let Some(embedded) = embedded
            && tokio::time::timeout(Duration::from_secs(2), embedded)
                .await
                .is_err()
        {
            tracing::warn!("embedded read side did not stop within 2 s");
        }
        self.state.log.flush(Duration::from_secs(3));
        Ok(())
    }
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
            }
        }
    }
}
