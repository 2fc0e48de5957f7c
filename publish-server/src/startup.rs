//! Building and running the application.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use shared::{readmodel::ReadModel, shutdown::CancellationToken};
use tokio::net::TcpListener;

use crate::{
    fanout::Fanout, hub::Hub, metrics::Metrics, projector::Projector, routes, settings::Settings,
    state::AppState,
};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    fanout: Fanout,
    projector: Projector,
}

impl Application {
    /// Creates the topic if missing, connects the read model, positions the fan-out consumer at the
    /// end of every partition, joins the projector group and binds the listener (`PUBLISH_ADDR`).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let partitions = settings.kafka.ensure_topic().await?;
        let read_model = ReadModel::connect(&settings.database_url).await?;
        let metrics = Arc::new(Metrics::default());
        let fanout = Fanout::assign(&settings.kafka, partitions).await?;
        let projector = Projector::join(
            &settings.kafka,
            &settings.projector_group,
            read_model.clone(),
            metrics.clone(),
        )?;
        tracing::info!(topic = %settings.kafka.topic, partitions, group = %settings.projector_group, "consumers ready");
        let state = AppState {
            hub: Arc::new(Hub::new(settings.room_buffer, read_model.clone())),
            read_model,
            metrics,
            keepalive: settings.keepalive,
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
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled: then every stream ends, both consumers stop (the
    /// projector commits what it wrote) and in-flight requests finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let stop = self.state.shutdown.clone();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown.cancelled().await;
                stop.cancel();
            }
        });
        let fanout = tokio::spawn(self.fanout.run(
            self.state.hub.clone(),
            self.state.metrics.clone(),
            stop.clone(),
        ));
        let projector = tokio::spawn(self.projector.run(stop.clone()));
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .await
            .context("serving HTTP");
        stop.cancel();
        for (name, task) in [("fan-out", fanout), ("projector", projector)] {
            match tokio::time::timeout(Duration::from_secs(3), task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(task = name, error = %e, "task panicked"),
                Err(_) => tracing::warn!(task = name, "task did not stop within 3 s"),
            }
        }
        served
    }
}
