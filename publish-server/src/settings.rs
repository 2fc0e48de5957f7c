//! publish-server configuration, read from the environment (see the README's configuration table).

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use shared::{kafka::KafkaSettings, settings};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `PUBLISH_ADDR` (default `127.0.0.1:8081`).
    pub addr: SocketAddr,
    pub kafka: KafkaSettings,
    /// `DATABASE_URL`: the read model the projector writes.
    pub database_url: String,
    /// `PROJECTOR_GROUP` (default `hotchat-projector`): the consumer group the projectors share.
    /// A new group name replays the topic from the start (a rebuild).
    pub projector_group: String,
    /// `SSE_KEEPALIVE_SECS` (default 10): the longest an idle stream goes without a comment.
    pub keepalive: Duration,
    /// `SSE_ROOM_BUFFER` (default 1024): events a room keeps for subscribers; a client further behind
    /// than this is cut off with `event: reset`.
    pub room_buffer: usize,
    /// `SSE_RESUME_BUFFER` (default 10000): recent events kept per partition so that reconnecting
    /// clients resume without a gap; an older cursor gets `event: reset`.
    pub resume_buffer: usize,
    /// `SSE_MAX_CONNECTIONS` (default 20000): open event streams per instance; more get 503.
    pub max_connections: usize,
    /// `SSE_SEND_BUFFER_BYTES` (default 65536): socket send buffer per connection; a client that
    /// stops reading blocks after about this much and is then cut off once it is a room buffer behind.
    pub send_buffer: usize,
    /// `SHUTDOWN_DRAIN_MS` (default 3000): how long shutdown waits for connections to close.
    pub drain: Duration,
    /// `CORS_ORIGINS`: comma-separated origins allowed to open streams from a browser.
    pub cors_origins: Vec<String>,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            addr: settings::parse_or("PUBLISH_ADDR", SocketAddr::from(([127, 0, 0, 1], 8081)))?,
            kafka: KafkaSettings::from_env()?
                .context("publish-server needs KAFKA_BROKERS (e.g. 127.0.0.1:9092)")?,
            database_url: settings::var("DATABASE_URL").context(
                "DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/hotchat)",
            )?,
            projector_group: settings::var("PROJECTOR_GROUP")
                .unwrap_or_else(|| "hotchat-projector".to_owned()),
            keepalive: Duration::from_secs(settings::parse_or("SSE_KEEPALIVE_SECS", 10)?.max(1)),
            room_buffer: settings::parse_or("SSE_ROOM_BUFFER", 1024usize)?.max(16),
            resume_buffer: settings::parse_or("SSE_RESUME_BUFFER", 10_000usize)?,
            max_connections: settings::parse_or("SSE_MAX_CONNECTIONS", 20_000usize)?.max(1),
            send_buffer: settings::parse_or("SSE_SEND_BUFFER_BYTES", 65_536usize)?.max(4096),
            drain: settings::millis_or("SHUTDOWN_DRAIN_MS", Duration::from_secs(3))?,
            cors_origins: settings::list("CORS_ORIGINS"),
        })
    }
}
