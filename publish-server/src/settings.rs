//! publish-server configuration, read from the environment (see the README's configuration table).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use shared::{
    kafka::KafkaSettings,
    serve::{DEFAULT_HEAD_TIMEOUT, DEFAULT_MAX_CONNECTIONS},
    settings,
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `PUBLISH_ADDR` (default `127.0.0.1:8081`).
    pub addr: SocketAddr,
    pub kafka: KafkaSettings,
    /// `DATABASE_URL`: the read model the projector writes; unset means the SQLite file in
    /// `data_dir` (only useful on the chat-server's machine).
    pub database_url: Option<String>,
    /// `HOTCHAT_DATA_DIR` (default `./data`).
    pub data_dir: PathBuf,
    /// `PROJECTOR_GROUP` (default `hotchat-projector`): the consumer group the projectors share.
    /// A new group name replays the topic from the start (a rebuild).
    pub projector_group: String,
    pub sse: SseSettings,
    /// `SHUTDOWN_DRAIN_MS` (default 3000): how long shutdown waits for connections to close.
    pub drain: Duration,
    /// `HTTP_HEAD_TIMEOUT_MS` (default 10000): the longest a client may take to send a request head.
    pub head_timeout: Duration,
    /// `MAX_CONNECTIONS` (default 50000): open connections at most, counted at accept; keep it below
    /// the process's file-descriptor limit.
    pub max_connections: usize,
    /// `CORS_ORIGINS`: comma-separated origins allowed to open streams from a browser.
    pub cors_origins: Vec<String>,
}

/// How event streams are served (also by chat-server in the embedded mode).
#[derive(Debug, Clone)]
pub struct SseSettings {
    /// `SSE_KEEPALIVE_SECS` (default 10): the longest an idle stream goes without a comment.
    pub keepalive: Duration,
    /// `SSE_ROOM_BUFFER` (default 1024): events a room keeps for subscribers; a client further behind
    /// than this is cut off.
    pub room_buffer: usize,
    /// `SSE_RESUME_BUFFER` (default 10000): recent events kept per partition so that reconnecting
    /// clients resume without a gap; an older cursor gets `event: reset`.
    pub resume_buffer: usize,
    /// `SSE_MAX_CONNECTIONS` (default 20000): open event streams per instance; more get 503.
    pub max_connections: usize,
    /// `SSE_SEND_BUFFER_BYTES` (default 65536): socket send buffer per connection; a client that
    /// stops reading blocks after about this much and is then cut off once it is a room buffer behind.
    pub send_buffer: usize,
}

impl Default for SseSettings {
    fn default() -> Self {
        Self {
            keepalive: Duration::from_secs(10),
            room_buffer: 1024,
            resume_buffer: 10_000,
            max_connections: 20_000,
            send_buffer: 65_536,
        }
    }
}

impl SseSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        let defaults = Self::default();
        Ok(Self {
            keepalive: Duration::from_secs(
                settings::parse_or("SSE_KEEPALIVE_SECS", defaults.keepalive.as_secs())?.max(1),
            ),
            room_buffer: settings::parse_or("SSE_ROOM_BUFFER", defaults.room_buffer)?.max(16),
            resume_buffer: settings::parse_or("SSE_RESUME_BUFFER", defaults.resume_buffer)?,
            max_connections: settings::parse_or("SSE_MAX_CONNECTIONS", defaults.max_connections)?
                .max(1),
            send_buffer: settings::parse_or("SSE_SEND_BUFFER_BYTES", defaults.send_buffer)?
                .max(4096),
        })
    }
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            addr: settings::parse_or("PUBLISH_ADDR", SocketAddr::from(([127, 0, 0, 1], 8081)))?,
            kafka: KafkaSettings::from_env()?.context(
                "publish-server needs KAFKA_BROKERS (e.g. 127.0.0.1:9092); without Kafka, \
                 chat-server serves the event streams itself",
            )?,
            database_url: settings::var("DATABASE_URL"),
            data_dir: settings::data_dir(),
            projector_group: settings::var("PROJECTOR_GROUP")
                .unwrap_or_else(|| "hotchat-projector".to_owned()),
            sse: SseSettings::from_env()?,
            drain: settings::millis_or("SHUTDOWN_DRAIN_MS", Duration::from_secs(3))?,
            head_timeout: settings::millis_or("HTTP_HEAD_TIMEOUT_MS", DEFAULT_HEAD_TIMEOUT)?,
            max_connections: settings::parse_or("MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)?,
            cors_origins: settings::list("CORS_ORIGINS"),
        })
    }
}
