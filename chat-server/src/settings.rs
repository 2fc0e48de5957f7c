//! chat-server configuration, read from the environment (see the README's configuration table).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use shared::{kafka::KafkaSettings, settings};

use crate::hot::HotSettings;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `CHAT_ADDR` (default `127.0.0.1:8080`).
    pub addr: SocketAddr,
    pub kafka: KafkaSettings,
    /// `DATABASE_URL`: the read model.
    pub database_url: String,
    pub auth: AuthSettings,
    pub hot: HotSettings,
    /// `CORS_ORIGINS`: comma-separated origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// `WEB_DIR` (default `web/dist` when it exists): the built web app, served at `/`.
    pub web_dir: Option<PathBuf>,
    /// `PUBLIC_EVENTS_URL`: where browsers reach the publish-servers' SSE API, e.g.
    /// `https://events.example.com`. Unset means the same origin as the chat-server (a proxy routes
    /// `/api/rooms/*/events`, or the embedded mode serves it itself).
    pub public_events_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `AUTH_SECRET`: the key that signs session tokens, shared by every chat-server.
    pub secret: String,
    /// `AUTH_TOKEN_TTL_SECS` (default 86400): how long a session token stays valid.
    pub token_ttl: Duration,
}

/// The shortest `AUTH_SECRET` accepted: shorter keys are guessable.
pub const MIN_SECRET_LEN: usize = 16;

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let kafka = KafkaSettings::from_env()?.context(
            "KAFKA_BROKERS is not set: this build runs the distributed mode only \
             (set KAFKA_BROKERS, DATABASE_URL and AUTH_SECRET; see the README)",
        )?;
        let database_url = settings::var("DATABASE_URL")
            .context("DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/hotchat)")?;
        let secret = settings::var("AUTH_SECRET").context(
            "AUTH_SECRET is required in the distributed mode: every chat-server must share it",
        )?;
        if secret.len() < MIN_SECRET_LEN {
            bail!("AUTH_SECRET must be at least {MIN_SECRET_LEN} characters");
        }
        Ok(Self {
            addr: settings::parse_or("CHAT_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            kafka,
            database_url,
            auth: AuthSettings {
                secret,
                token_ttl: Duration::from_secs(settings::parse_or("AUTH_TOKEN_TTL_SECS", 86_400)?),
            },
            hot: HotSettings::from_env()?,
            cors_origins: settings::list("CORS_ORIGINS"),
            web_dir: settings::var("WEB_DIR").map(PathBuf::from).or_else(|| {
                Some(PathBuf::from("web/dist")).filter(|d| d.join("index.html").is_file())
            }),
            public_events_url: settings::var("PUBLIC_EVENTS_URL")
                .map(|url| url.trim_end_matches('/').to_owned()),
        })
    }
}
