//! Building and running the application: connect, bind, serve until the shutdown token fires.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use shared::{readmodel::ReadModel, shutdown::CancellationToken};
use tokio::net::TcpListener;

use crate::{
    auth::TokenSigner, event_log::EventLog, metrics::Metrics, routes, settings::Settings,
    state::AppState,
};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
}

impl Application {
    /// Connects to the broker and the database, creates the topic if missing and binds the listener
    /// (`CHAT_ADDR`; port 0 picks a free port, see [`Application::local_addr`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let partitions = settings.kafka.ensure_topic().await?;
        tracing::info!(topic = %settings.kafka.topic, partitions, "event topic ready");
        let read_model = ReadModel::connect(&settings.database_url).await?;
        let state = AppState {
            log: Arc::new(EventLog::new(settings.kafka.clone())?),
            read_model,
            signer: Arc::new(TokenSigner::new(
                settings.auth.secret.as_bytes(),
                settings.auth.token_ttl,
            )),
            metrics: Arc::new(Metrics::default()),
        };
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        let router = routes::router(state.clone(), &settings.cors_origins);
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests and flushes the producer.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("serving HTTP")?;
        self.state.log.flush(Duration::from_secs(3));
        Ok(())
    }
}
