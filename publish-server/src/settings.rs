//! publish-server configuration: its command line and environment (see `publish-server --help` and
//! the README's configuration table), read once in `main` through [`shared::settings`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use shared::{
    kafka::KafkaSettings,
    settings::{
        self, DataDir, DatabaseSettings, HttpSettings, KafkaArgs, OperatorTokenSettings, at_least,
    },
    telemetry::LogSettings,
};

/// Everything publish-server reads from its command line and environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "publish-server",
    version,
    about = "hotchat's read side: SSE fan-out of every event, and the projector into the read model.",
    long_about = "hotchat's read side: SSE fan-out of every event, and the projector into the read \
                  model.\n\nEvery setting is an environment variable, or the flag of the same name; \
                  an empty variable counts as unset."
)]
pub struct Cli {
    /// Listen address.
    #[arg(
        long = "publish-addr",
        env = "PUBLISH_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub addr: SocketAddr,
    /// The consumer group the projectors share. A new name replays the topic from the start (a
    /// rebuild of the read model).
    #[arg(
        long = "projector-group",
        env = "PROJECTOR_GROUP",
        default_value = "hotchat-projector"
    )]
    pub projector_group: String,
    /// The key chat-servers sign session tokens with: a stream's token then makes its viewer a
    /// user in the room's audience (three tabs count once). Unset: viewers are client addresses.
    #[arg(long = "auth-secret", env = "AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// The key before the last rotation of `AUTH_SECRET`, still accepted.
    #[arg(
        long = "auth-secret-previous",
        env = "AUTH_SECRET_PREVIOUS",
        hide_env_values = true
    )]
    pub auth_secret_previous: Option<String>,
    #[command(flatten)]
    pub operator_tokens: OperatorTokenSettings,
    /// Redis, e.g. `redis://127.0.0.1:6379/0`: every publish-server's audience counts meet there
    /// (the same Redis and prefix as the chat-servers'). Unset: each counts its own viewers.
    #[arg(long = "redis-url", env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Namespace of every Redis key this service writes.
    #[arg(
        long = "redis-key-prefix",
        env = "REDIS_KEY_PREFIX",
        default_value = "hotchat"
    )]
    pub redis_key_prefix: String,
    /// Tell anonymous viewers apart by the first `X-Forwarded-For` address instead of the peer
    /// address (only behind your own reverse proxy, which must replace the header).
    #[arg(
        long = "trust-forwarded-for",
        env = "TRUST_FORWARDED_FOR",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub trust_forwarded_for: bool,
    #[command(flatten)]
    pub data_dir: DataDir,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub sse: SseSettings,
    #[command(flatten)]
    pub http: HttpSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `PUBLISH_ADDR` (default `127.0.0.1:8081`).
    pub addr: SocketAddr,
    pub kafka: KafkaSettings,
    /// `DATABASE_URL` and its pool: the read model the projector writes; no URL means the SQLite
    /// file in `data_dir` (only useful on the chat-server's machine).
    pub database: DatabaseSettings,
    /// `HOTCHAT_DATA_DIR` (default `data`).
    pub data_dir: PathBuf,
    /// `PROJECTOR_GROUP` (default `hotchat-projector`): the consumer group the projectors share.
    /// A new group name replays the topic from the start (a rebuild).
    pub projector_group: String,
    pub sse: SseSettings,
    /// `SHUTDOWN_DRAIN_MS` (default 3000): how long shutdown waits for connections to close, and
    /// then for the background tasks to stop.
    pub drain: Duration,
    /// `HOTCHAT_TEST_FAIL_TASK`: a critical task to make fail, for a test ([`shared::supervise`]).
    pub fail_task: Option<String>,
    /// `HTTP_HEAD_TIMEOUT_MS` (default 10000): the longest a client may take to send a request head.
    pub head_timeout: Duration,
    /// `METRICS_PUBLIC` (default true: publish-servers always run behind a proxy).
    pub metrics_public: bool,
    /// `METRICS_ADDR`: a listener of its own for `/metrics`.
    pub metrics_addr: Option<SocketAddr>,
    /// `MAX_CONNECTIONS`: open connections at most, counted at accept (unset: what the open-file
    /// limit leaves room for; see `serve::connection_cap`).
    pub max_connections: Option<usize>,
    /// `CORS_ORIGINS`: comma-separated origins allowed to open streams from a browser.
    pub cors_origins: Vec<String>,
    /// `AUTH_SECRET`, `AUTH_SECRET_PREVIOUS` and the operator's tokens: who a stream's viewer is.
    pub auth: Option<ViewerAuth>,
    /// `REDIS_URL` and `REDIS_KEY_PREFIX`: where audience counts meet.
    pub redis: Option<(String, String)>,
    /// `TRUST_FORWARDED_FOR` (default false): anonymous viewers by `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// `RUST_LOG`, `LOG_FORMAT`: for `main` to set up logging.
    pub log: LogSettings,
}

/// The tokens publish-server verifies to tell viewers apart.
#[derive(Debug, Clone)]
pub struct ViewerAuth {
    pub secret: String,
    pub previous_secret: Option<String>,
    pub operator: OperatorTokenSettings,
}

/// How event streams are served (also by chat-server in the embedded mode).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Event streams (SSE)")]
pub struct SseSettings {
    /// Seconds an idle stream goes at most without a keep-alive comment (at least 1).
    #[arg(
        long = "sse-keepalive-secs",
        env = "SSE_KEEPALIVE_SECS",
        default_value = "10",
        value_parser = keepalive
    )]
    pub keepalive: Duration,
    /// Events a room keeps for its subscribers (at least 16); a client further behind than this is
    /// cut off.
    #[arg(
        long = "sse-room-buffer",
        env = "SSE_ROOM_BUFFER",
        default_value = "1024",
        value_parser = at_least(16usize)
    )]
    pub room_buffer: usize,
    /// Recent events kept per partition so that reconnecting clients resume without a gap; an
    /// older cursor gets `event: reset`.
    #[arg(
        long = "sse-resume-buffer",
        env = "SSE_RESUME_BUFFER",
        default_value_t = 10_000
    )]
    pub resume_buffer: usize,
    /// Open event streams per instance (at least 1); more get 503.
    #[arg(
        id = "sse_max_connections",
        long = "sse-max-connections",
        env = "SSE_MAX_CONNECTIONS",
        default_value = "20000",
        value_parser = at_least(1usize)
    )]
    pub max_connections: usize,
    /// Open event streams per client address per instance (the peer, or the first
    /// `X-Forwarded-For` address with `TRUST_FORWARDED_FOR`; at least 1); more get 429.
    #[arg(
        long = "sse-max-streams-per-address",
        env = "SSE_MAX_STREAMS_PER_ADDRESS",
        default_value = "100",
        value_parser = at_least(1usize)
    )]
    pub max_streams_per_address: usize,
    /// Seconds a stream may go without taking what waits for it (a resume's backlog, or what a full
    /// socket left) before it is cut off, whether or not new events arrive (at least 1).
    #[arg(
        long = "sse-stall-secs",
        env = "SSE_STALL_SECS",
        default_value = "30",
        value_parser = keepalive
    )]
    pub stall: Duration,
    /// Socket send buffer per connection, in bytes (at least 4096): a client that stops reading
    /// blocks after about this much and is then cut off once it is a room buffer behind.
    #[arg(
        long = "sse-send-buffer-bytes",
        env = "SSE_SEND_BUFFER_BYTES",
        default_value = "65536",
        value_parser = at_least(4096usize)
    )]
    pub send_buffer: usize,
    /// Milliseconds a throttled room's frames wait to go out together, as one write per connection
    /// with its reactions folded into counts (0: never batched). Cold rooms are never delayed.
    #[arg(
        long = "hot-sse-batch-ms",
        env = "HOT_SSE_BATCH_MS",
        default_value = "100",
        value_parser = settings::millis
    )]
    pub batch: Duration,
}

impl Default for SseSettings {
    fn default() -> Self {
        settings::defaults()
    }
}

/// `SSE_KEEPALIVE_SECS`, `SSE_STALL_SECS`: whole seconds, at least one.
fn keepalive(value: &str) -> Result<Duration, std::num::ParseIntError> {
    settings::secs(value).map(|secs| secs.max(Duration::from_secs(1)))
}

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
        let cli = settings::parse_with_vars(["publish-server"], vars)?;
        Self::new(cli)
    }

    /// Checks what was given and fills in what depends on other settings.
    pub fn new(cli: Cli) -> anyhow::Result<Self> {
        Ok(Self {
            addr: cli.addr,
            kafka: cli.kafka.settings().context(
                "publish-server needs KAFKA_BROKERS (e.g. 127.0.0.1:9092); without Kafka, \
                 chat-server serves the event streams itself",
            )?,
            database: cli.database,
            data_dir: cli.data_dir.path,
            projector_group: cli.projector_group,
            sse: cli.sse,
            drain: cli.http.drain,
            fail_task: cli.http.fail_task.clone(),
            head_timeout: cli.http.head_timeout,
            metrics_public: cli.http.metrics_public.unwrap_or(true),
            metrics_addr: cli.http.metrics_addr,
            max_connections: cli.http.max_connections,
            cors_origins: cli.http.cors_origins(),
            auth: cli.auth_secret.map(|secret| ViewerAuth {
                secret,
                previous_secret: cli.auth_secret_previous,
                operator: cli.operator_tokens,
            }),
            redis: cli.redis_url.map(|url| (url, cli.redis_key_prefix)),
            trust_forwarded_for: cli.trust_forwarded_for,
            log: cli.log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_defaults_are_the_documented_ones() {
        let sse = SseSettings::default();
        assert_eq!(sse.keepalive, Duration::from_secs(10));
        assert_eq!(sse.room_buffer, 1024);
        assert_eq!(sse.resume_buffer, 10_000);
        assert_eq!(sse.max_connections, 20_000);
        assert_eq!(sse.send_buffer, 65_536);
        assert_eq!(sse.stall, Duration::from_secs(30));
    }

    #[test]
    fn publish_server_needs_kafka_brokers() {
        let error = Settings::from_vars([("KAFKA_BROKERS", "")]).unwrap_err();
        assert!(error.to_string().contains("KAFKA_BROKERS"), "{error}");
    }

    #[test]
    fn sse_settings_below_their_floor_are_raised_to_it() {
        let settings = Settings::from_vars([
            ("KAFKA_BROKERS", "127.0.0.1:9092"),
            ("SSE_KEEPALIVE_SECS", "0"),
            ("SSE_ROOM_BUFFER", "1"),
            ("SSE_MAX_CONNECTIONS", "0"),
            ("SSE_SEND_BUFFER_BYTES", "10"),
        ])
        .unwrap();
        assert_eq!(settings.sse.keepalive, Duration::from_secs(1));
        assert_eq!(settings.sse.room_buffer, 16);
        assert_eq!(settings.sse.max_connections, 1);
        assert_eq!(settings.sse.send_buffer, 4096);
    }

    #[test]
    fn the_drain_is_read_from_shutdown_drain_ms() {
        let settings = Settings::from_vars([
            ("KAFKA_BROKERS", "127.0.0.1:9092"),
            ("SHUTDOWN_DRAIN_MS", "250"),
        ])
        .unwrap();
        assert_eq!(settings.drain, Duration::from_millis(250));
    }
}
