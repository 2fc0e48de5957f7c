//! Building and running the application.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use shared::{
    readmodel::ReadModel,
    serve::{ConnectionOptions, serve},
    shutdown::CancellationToken,
};
use tokio::{net::TcpListener, sync::Semaphore};

use crate::{
    fanout::{self, Fanout, KafkaWatermarks, LogEnd},
    hub::Hub,
    metrics::Metrics,
    projector::Projector,
    routes,
    settings::Settings,
    state::AppState,
};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    fanout: Fanout,
    projector: Projector,
    drain: Duration,
    connection_options: ConnectionOptions,
}

impl Application {
    /// Creates the topic if missing, connects the read model, positions the fan-out consumer near
    /// the end of every partition, joins the projector group and binds the listener
    /// (`PUBLISH_ADDR`; port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let partitions = settings.kafka.ensure_topic().await?;
        let read_model = ReadModel::open(&settings.database, &settings.data_dir).await?;
        let metrics = Arc::new(Metrics::default());
        let sse = &settings.sse;
        let hub = Arc::new(Hub::new(
            sse.room_buffer,
            sse.resume_buffer,
            read_model.clone(),
        ));
        let watermarks = KafkaWatermarks::new(&settings.kafka)?;
        let fanout = Fanout::assign(
            &settings.kafka,
            &watermarks,
            partitions,
            sse.resume_buffer,
            &hub,
        )
        .await?;
        let log_end = Arc::new(LogEnd::Kafka(watermarks));
        let projector = Projector::join(
            &settings.kafka,
            &settings.projector_group,
            read_model.clone(),
            metrics.clone(),
        )?;
        tracing::info!(topic = %settings.kafka.topic, partitions, group = %settings.projector_group, "consumers ready");
        let state = AppState {
            hub,
            read_model,
            metrics,
            log_end,
            connections: Arc::new(Semaphore::new(sse.max_connections)),
            keepalive: sse.keepalive,
            shutdown: CancellationToken::new(),
        };
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        let router = routes::router(state.clone(), &settings.cors_origins);
        Ok(Self {
            listener,
            router,
            state,
            fanout,
            projector,
            drain: settings.drain,
            connection_options: ConnectionOptions {
                send_buffer: Some(sse.send_buffer),
                write_buffer: Some(sse.send_buffer),
                take_over: Some(routes::is_event_stream),
                head_timeout: Some(settings.head_timeout),
                max_connections: Some(settings.max_connections),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled: then every stream ends (clients reconnect elsewhere and
    /// resume), both consumers stop (the projector commits what it wrote) and open connections get
    /// `SHUTDOWN_DRAIN_MS` to close.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let stop = self.state.shutdown.clone();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown.cancelled().await;
                stop.cancel();
            }
        });
        let state = self.state;
        let progress = self.projector.progress.clone();
        let fanout = tokio::spawn(self.fanout.run(
            state.hub.clone(),
            state.metrics.clone(),
            stop.clone(),
        ));
        let projector = tokio::spawn(self.projector.run(stop.clone()));
        tokio::spawn(fanout::report_lag(
            state.log_end.clone(),
            state.hub.clone(),
            progress,
            state.metrics.clone(),
            stop.clone(),
        ));
        serve(
            self.listener,
            self.router,
            stop.clone(),
            self.drain,
            self.connection_options,
        )
        .await;
        for (name, task) in [("fan-out", fanout), ("projector", projector)] {
            match tokio::time::timeout(Duration::from_secs(3), task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(task = name, error = %e, "task panicked"),
                Err(_) => tracing::warn!(task = name, "task did not stop within 3 s"),
            }
        }
        Ok(())
    }
}
