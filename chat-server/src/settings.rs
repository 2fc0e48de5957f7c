//! chat-server configuration, read from the environment (see the README's configuration table).
//!
//! Unset engines are embedded: without `KAFKA_BROKERS` the event log is a file under the data folder
//! and chat-server serves the event streams itself; without `DATABASE_URL` the read model is a
//! SQLite file there; without `REDIS_URL` fetch counts and the hot set live in the process.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use publish_server::settings::SseSettings;
use shared::{kafka::KafkaSettings, settings};

use crate::{hot::HotSettings, limits::PostLimits};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `CHAT_ADDR` (default `127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// `KAFKA_BROKERS` and friends; `None` runs the embedded event log.
    pub kafka: Option<KafkaSettings>,
    /// `DATABASE_URL`: the read model; `None` is the SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// `HOTCHAT_DATA_DIR` (default `./data`): files of the embedded engines.
    pub data_dir: PathBuf,
    pub auth: AuthSettings,
    pub hot: HotSettings,
    /// Per-user write limits.
    pub post_limits: PostLimits,
    /// Event streams served by this process in the embedded mode.
    pub sse: SseSettings,
    /// `CORS_ORIGINS`: comma-separated origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// `WEB_DIR` (default `web/dist`): the built web app, served at `/`.
    pub web_dir: Option<PathBuf>,
    /// `PUBLIC_EVENTS_URL`: where browsers reach the publish-servers' SSE API, e.g.
    /// `https://events.example.com`. Unset means the same origin as the chat-server (a proxy routes
    /// `/api/rooms/*/events`, or the embedded mode serves it itself).
    pub public_events_url: Option<String>,
    /// `HTTP_HEAD_TIMEOUT_MS` (default 10000): the longest a client may take to send a request head.
    pub head_timeout: Duration,
    /// `MAX_CONNECTIONS` (default 50000): open connections at most, counted at accept; keep it below
    /// the process's file-descriptor limit.
    pub max_connections: usize,
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
        let kafka = KafkaSettings::from_env()?;
        let data_dir = settings::data_dir();
        let secret = match (settings::var("AUTH_SECRET"), &kafka) {
            (Some(secret), _) => secret,
            (None, None) => embedded_secret(&data_dir)?,
            (None, Some(_)) => {
                bail!("AUTH_SECRET is required with KAFKA_BROKERS: every chat-server must share it")
            }
        };
        if secret.len() < MIN_SECRET_LEN {
            bail!("AUTH_SECRET must be at least {MIN_SECRET_LEN} characters");
        }
        Ok(Self {
            addr: settings::parse_or("CHAT_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            kafka,
            database_url: settings::var("DATABASE_URL"),
            data_dir,
            auth: AuthSettings {
                secret,
                token_ttl: Duration::from_secs(settings::parse_or("AUTH_TOKEN_TTL_SECS", 86_400)?),
            },
            hot: HotSettings::from_env()?,
            post_limits: PostLimits::from_env()?,
            sse: SseSettings::from_env()?,
            cors_origins: settings::list("CORS_ORIGINS"),
            web_dir: settings::var("WEB_DIR")
                .map(PathBuf::from)
                .or_else(default_web_dir),
            public_events_url: settings::var("PUBLIC_EVENTS_URL")
                .map(|url| url.trim_end_matches('/').to_owned()),
            head_timeout: settings::millis_or(
                "HTTP_HEAD_TIMEOUT_MS",
                shared::serve::DEFAULT_HEAD_TIMEOUT,
            )?,
            max_connections: settings::parse_or(
                "MAX_CONNECTIONS",
                shared::serve::DEFAULT_MAX_CONNECTIONS,
            )?,
        })
    }
}

/// `web/dist` under the working directory, else the one in this source tree (so `cargo run` works
/// from any folder of a checkout).
fn default_web_dir() -> Option<PathBuf> {
    let here = PathBuf::from("web/dist");
    let source = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/dist"));
    [here, source]
        .into_iter()
        .find(|dir| dir.join("index.html").is_file())
}

/// The embedded mode's signing key: generated once and kept in `data_dir/auth_secret`, so sessions
/// survive a restart.
fn embedded_secret(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("auth_secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        let secret = secret.trim().to_owned();
        if secret.len() >= MIN_SECRET_LEN {
            return Ok(secret);
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data folder {}", data_dir.display()))?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}
