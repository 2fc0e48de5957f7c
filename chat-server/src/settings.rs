//! chat-server configuration: its command line and environment (see `chat-server --help` and the
//! README's configuration table), read once in `main` through [`shared::settings`].
//!
//! Unset engines are embedded: without `KAFKA_BROKERS` the event log is a file under the data folder
//! and chat-server serves the event streams itself; without `DATABASE_URL` the read model is a
//! SQLite file there; without `REDIS_URL` fetch counts and the hot set live in the process.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use publish_server::settings::SseSettings;
use shared::{
    kafka::KafkaSettings,
    settings::{self, DataDir, DatabaseSettings, HttpSettings, KafkaArgs, OperatorTokenSettings},
    telemetry::LogSettings,
};

use crate::{
    hot::HotSettings,
    limits::{PostLimits, ReactionLimits},
    rate_limit::{RoomLimits, SessionLimits},
};

/// Everything chat-server reads from its command line and environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chat-server",
    version,
    about = "hotchat's write side and fetch API: sessions, rooms, messages, reactions.",
    long_about = "hotchat's write side and fetch API: sessions, rooms, messages, reactions. \
                  Without KAFKA_BROKERS it also serves the event streams and the web app: one \
                  process, nothing else to run.\n\nEvery setting is an environment variable, or \
                  the flag of the same name; an empty variable counts as unset."
)]
pub struct Cli {
    /// Listen address.
    #[arg(
        long = "chat-addr",
        env = "CHAT_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,
    /// The key that signs session tokens, at least 16 characters; every chat-server must share it.
    /// Unset: generated into `auth_secret` in the data folder without Kafka, required with it.
    #[arg(long = "auth-secret", env = "AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// The key that signed session tokens before `AUTH_SECRET` was rotated: its tokens are still
    /// accepted, new ones are signed with `AUTH_SECRET`. Unset after the old tokens expired.
    #[arg(
        long = "auth-secret-previous",
        env = "AUTH_SECRET_PREVIOUS",
        hide_env_values = true
    )]
    pub auth_secret_previous: Option<String>,
    /// Seconds a session token stays valid.
    #[arg(
        long = "auth-token-ttl-secs",
        env = "AUTH_TOKEN_TTL_SECS",
        default_value = "86400",
        value_parser = settings::secs
    )]
    pub token_ttl: Duration,
    /// The built web app, served at `/`. Unset: `web/dist` if it is there (under the working
    /// directory, else in this source tree).
    #[arg(long = "web-dir", env = "WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Where browsers reach the publish-servers' SSE API, e.g. `https://events.example.com`
    /// (`GET /api/config` tells the web app). Unset: the same origin as this server.
    #[arg(long = "public-events-url", env = "PUBLIC_EVENTS_URL")]
    pub public_events_url: Option<String>,
    #[command(flatten)]
    pub operator_tokens: OperatorTokenSettings,
    #[command(flatten)]
    pub data_dir: DataDir,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub hot: HotSettings,
    #[command(flatten)]
    pub post_limits: PostLimits,
    #[command(flatten)]
    pub reaction_limits: ReactionLimits,
    #[command(flatten)]
    pub session_limits: SessionLimits,
    #[command(flatten)]
    pub room_limits: RoomLimits,
    #[command(flatten)]
    pub sse: SseSettings,
    #[command(flatten)]
    pub http: HttpSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `CHAT_ADDR` (default `127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// `KAFKA_BROKERS` and friends; `None` runs the embedded event log.
    pub kafka: Option<KafkaSettings>,
    /// `DATABASE_URL` and its pool: the read model; no URL means the SQLite file in `data_dir`.
    pub database: DatabaseSettings,
    /// `HOTCHAT_DATA_DIR` (default `data`): files of the embedded engines.
    pub data_dir: PathBuf,
    pub auth: AuthSettings,
    pub hot: HotSettings,
    /// Per-user write limits.
    pub post_limits: PostLimits,
    /// `REACTION_RATE`, `REACTION_BURST`: reaction changes per user and message.
    pub reaction_limits: ReactionLimits,
    /// `SESSION_RATE`, `SESSION_BURST`: sign-ins per client address.
    pub session_limits: SessionLimits,
    /// `ROOM_RATE`, `ROOM_BURST`: rooms created per client address.
    pub room_limits: RoomLimits,
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
    /// `METRICS_PUBLIC`: `/metrics` on `CHAT_ADDR` too (default: only with Kafka).
    pub metrics_public: bool,
    /// `METRICS_ADDR`: a listener of its own for `/metrics`.
    pub metrics_addr: Option<SocketAddr>,
    /// `MAX_CONNECTIONS`: open connections at most, counted at accept (unset: what the open-file
    /// limit leaves room for; see `serve::connection_cap`).
    pub max_connections: Option<usize>,
    /// `SHUTDOWN_DRAIN_MS` (default 3000): how long shutdown waits for connections to close, and
    /// then for the background tasks to stop.
    pub drain: Duration,
    /// `HOTCHAT_TEST_FAIL_TASK`: a critical task to make fail, for a test ([`shared::supervise`]).
    pub fail_task: Option<String>,
    /// `RUST_LOG`, `LOG_FORMAT`: for `main` to set up logging.
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `AUTH_SECRET`: the key that signs session tokens, shared by every chat-server.
    pub secret: String,
    /// `AUTH_SECRET_PREVIOUS`: the secret before the last rotation, still accepted.
    pub previous_secret: Option<String>,
    /// `AUTH_TOKEN_TTL_SECS` (default 86400): how long a session token stays valid.
    pub token_ttl: Duration,
    /// `AUTH_JWKS`, `AUTH_JWKS_REFRESH_SECS`, `AUTH_ISSUER`, `AUTH_AUDIENCE`.
    pub operator: OperatorTokenSettings,
}

/// The shortest `AUTH_SECRET` accepted: shorter keys are guessable.
pub const MIN_SECRET_LEN: usize = 16;

impl Settings {
    /// The settings of this process (its command line and environment), as `main` reads them.
    /// Prints the help or the error and exits when there is nothing to run.
    pub fn load() -> anyhow::Result<Self> {
        Self::new(settings::parse_env())
    }

    /// The settings `vars` give (environment variables by name), read by the same parser as
    /// [`Settings::load`] but without looking at this process's environment (for tests).
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> anyhow::Result<Self> {
        let cli = settings::parse_with_vars(["chat-server"], vars)?;
        Self::new(cli)
    }

    /// Checks what was given and fills in what depends on other settings: without Kafka and
    /// `AUTH_SECRET`, the secret is the one generated into the data folder.
    pub fn new(cli: Cli) -> anyhow::Result<Self> {
        let kafka = cli.kafka.settings();
        // Without Kafka this process's port is the public one: metrics only when asked for.
        let metrics_public = cli.http.metrics_public.unwrap_or(kafka.is_some());
        let data_dir = cli.data_dir.path;
        let secret = match (cli.auth_secret, &kafka) {
            (Some(secret), _) => secret,
            (None, None) => embedded_secret(&data_dir)?,
            (None, Some(_)) => {
                bail!("AUTH_SECRET is required with KAFKA_BROKERS: every chat-server must share it")
            }
        };
        if secret.len() < MIN_SECRET_LEN {
            bail!("AUTH_SECRET must be at least {MIN_SECRET_LEN} characters");
        }
        if cli
            .auth_secret_previous
            .as_ref()
            .is_some_and(|previous| previous.len() < MIN_SECRET_LEN)
        {
            bail!("AUTH_SECRET_PREVIOUS must be at least {MIN_SECRET_LEN} characters");
        }
        Ok(Self {
            addr: cli.addr,
            kafka,
            database: cli.database,
            data_dir,
            auth: AuthSettings {
                secret,
                previous_secret: cli.auth_secret_previous,
                token_ttl: cli.token_ttl,
                operator: cli.operator_tokens,
            },
            hot: cli.hot,
            post_limits: cli.post_limits,
            reaction_limits: cli.reaction_limits,
            session_limits: cli.session_limits,
            room_limits: cli.room_limits,
            sse: cli.sse,
            cors_origins: cli.http.cors_origins(),
            web_dir: cli.web_dir.or_else(default_web_dir),
            public_events_url: cli
                .public_events_url
                .map(|url| url.trim_end_matches('/').to_owned()),
            head_timeout: cli.http.head_timeout,
            metrics_public,
            metrics_addr: cli.http.metrics_addr,
            max_connections: cli.http.max_connections,
            drain: cli.http.drain,
            fail_task: cli.http.fail_task.clone(),
            log: cli.log,
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
    shared::private_files::dir(data_dir).with_context(|| {
        format!(
            "creating the data folder {} (owner only)",
            data_dir.display()
        )
    })?;
    if let Ok(secret) = std::fs::read_to_string(&path) {
        let secret = secret.trim().to_owned();
        if secret.len() >= MIN_SECRET_LEN {
            shared::private_files::file(&path)
                .with_context(|| format!("narrowing {} to its owner", path.display()))?;
            return Ok(secret);
        }
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    shared::private_files::file(path)?;
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh data folder, so the generated secret of one test is not another's.
    fn data_dir() -> String {
        std::env::temp_dir()
            .join(format!("hotchat-settings-{}", uuid::Uuid::now_v7()))
            .display()
            .to_string()
    }

    #[test]
    fn without_kafka_the_secret_is_generated_once_and_kept() {
        let dir = data_dir();
        let first = Settings::from_vars([("HOTCHAT_DATA_DIR", dir.clone())]).unwrap();
        let again = Settings::from_vars([("HOTCHAT_DATA_DIR", dir.clone())]).unwrap();
        assert!(first.kafka.is_none());
        assert!(first.auth.secret.len() >= MIN_SECRET_LEN);
        assert_eq!(first.auth.secret, again.auth.secret);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn auth_secret_is_required_with_kafka_brokers() {
        let error = Settings::from_vars([
            ("HOTCHAT_DATA_DIR", data_dir()),
            ("KAFKA_BROKERS", "127.0.0.1:9092".to_owned()),
            ("AUTH_SECRET", " ".to_owned()),
        ])
        .unwrap_err();
        assert!(
            error.to_string().contains("AUTH_SECRET is required"),
            "{error}"
        );
    }

    #[test]
    fn a_short_previous_secret_is_rejected() {
        let error = Settings::from_vars([
            ("HOTCHAT_DATA_DIR", data_dir()),
            ("AUTH_SECRET", "0123456789abcdef".to_owned()),
            ("AUTH_SECRET_PREVIOUS", "too-short".to_owned()),
        ])
        .unwrap_err();
        assert!(
            error.to_string().contains("AUTH_SECRET_PREVIOUS"),
            "{error}"
        );
    }

    #[test]
    fn a_short_auth_secret_is_rejected() {
        let error = Settings::from_vars([
            ("HOTCHAT_DATA_DIR", data_dir()),
            ("AUTH_SECRET", "too-short".to_owned()),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("at least 16"), "{error}");
    }

    #[test]
    fn every_setting_is_read_from_its_variable() {
        let settings = Settings::from_vars([
            ("HOTCHAT_DATA_DIR", "/tmp/hotchat-settings-unused"),
            ("CHAT_ADDR", "127.0.0.1:9999"),
            ("KAFKA_BROKERS", "broker:9092"),
            ("KAFKA_TOPIC", "events"),
            ("AUTH_SECRET", "0123456789abcdef"),
            ("AUTH_TOKEN_TTL_SECS", "60"),
            ("DATABASE_URL", "postgres://db/hotchat"),
            ("DATABASE_MAX_CONNECTIONS", "7"),
            ("REDIS_URL", "redis://redis:6379/0"),
            ("HOT_FETCH_THRESHOLD", "5"),
            ("HOT_CLIENT_RATE", "0"),
            ("USER_POST_RATE", "2"),
            ("SESSION_RATE", "0"),
            ("SESSION_BURST", "4"),
            ("AUTH_SECRET_PREVIOUS", "fedcba9876543210"),
            ("AUTH_JWKS", "https://id.example/jwks.json"),
            ("AUTH_JWKS_REFRESH_SECS", "5"),
            ("AUTH_ISSUER", "https://id.example"),
            ("AUTH_AUDIENCE", "hotchat"),
            ("SSE_ROOM_BUFFER", "1"),
            ("SHUTDOWN_DRAIN_MS", "250"),
            ("HTTP_HEAD_TIMEOUT_MS", "1500"),
            ("CORS_ORIGINS", "https://a.example,https://b.example"),
            ("PUBLIC_EVENTS_URL", "https://events.example/"),
            ("WEB_DIR", "/srv/web"),
            ("LOG_FORMAT", "JSON"),
        ])
        .unwrap();
        assert_eq!(settings.addr, SocketAddr::from(([127, 0, 0, 1], 9999)));
        let kafka = settings.kafka.unwrap();
        assert_eq!(
            (kafka.brokers.as_str(), kafka.topic.as_str()),
            ("broker:9092", "events")
        );
        assert_eq!(settings.auth.token_ttl, Duration::from_secs(60));
        assert_eq!(
            settings.database.url.as_deref(),
            Some("postgres://db/hotchat")
        );
        assert_eq!(settings.database.max_connections, Some(7));
        assert_eq!(
            settings.hot.redis_url.as_deref(),
            Some("redis://redis:6379/0")
        );
        assert_eq!(settings.hot.threshold, 5);
        assert_eq!(settings.hot.client_rate, 1, "raised to its floor");
        assert_eq!(settings.post_limits.rate, 2);
        assert_eq!(
            (settings.session_limits.rate, settings.session_limits.burst),
            (1, 4),
            "the rate is raised to its floor"
        );
        assert_eq!(
            settings.auth.previous_secret.as_deref(),
            Some("fedcba9876543210")
        );
        let operator = &settings.auth.operator;
        assert_eq!(
            operator.jwks.as_deref(),
            Some("https://id.example/jwks.json")
        );
        assert_eq!(operator.jwks_refresh, Duration::from_secs(5));
        assert_eq!(operator.issuer.as_deref(), Some("https://id.example"));
        assert_eq!(operator.audience.as_deref(), Some("hotchat"));
        assert_eq!(settings.sse.room_buffer, 16, "raised to its floor");
        assert_eq!(settings.drain, Duration::from_millis(250));
        assert_eq!(settings.head_timeout, Duration::from_millis(1500));
        assert_eq!(
            settings.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(
            settings.public_events_url.as_deref(),
            Some("https://events.example")
        );
        assert_eq!(settings.web_dir, Some(PathBuf::from("/srv/web")));
        assert_eq!(settings.log.format, shared::telemetry::LogFormat::Json);
    }

    #[test]
    fn a_value_that_does_not_parse_stops_the_server() {
        let error = Settings::from_vars([
            ("HOTCHAT_DATA_DIR", data_dir()),
            ("SHUTDOWN_DRAIN_MS", "3s".to_owned()),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("--shutdown-drain-ms"), "{error}");
    }

    #[test]
    fn hot_and_limit_defaults_are_the_documented_ones() {
        let hot = HotSettings::local();
        assert_eq!(hot.redis_url, None);
        assert_eq!(hot.key_prefix, "hotchat");
        assert_eq!(hot.threshold, 200);
        assert_eq!(hot.cooldown, Duration::from_secs(10));
        assert_eq!(hot.cache_ttl, Duration::from_secs(1));
        assert_eq!((hot.client_rate, hot.client_burst), (5, 10));
        assert!(!hot.trust_forwarded_for);
        let limits = PostLimits::default();
        assert_eq!((limits.rate, limits.burst), (10, 30));
        let sessions = SessionLimits::default();
        assert_eq!((sessions.rate, sessions.burst), (30, 10));
        let operator = OperatorTokenSettings::default();
        assert_eq!(operator.jwks, None);
        assert_eq!(operator.jwks_refresh, Duration::from_secs(60));
    }
}
