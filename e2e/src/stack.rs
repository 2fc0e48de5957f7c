//! A hotchat deployment for one test, in either mode.
//!
//! - [`Mode::Distributed`]: N chat-servers and M publish-servers on free ports, sharing a Kafka topic
//!   of their own, a PostgreSQL database of their own, Redis under a key prefix of their own and one
//!   auth secret.
//! - [`Mode::Embedded`]: one chat-server with no Kafka, PostgreSQL or Redis — the embedded log, a
//!   SQLite read model in a fresh data folder, in-process counters — serving the event streams
//!   itself (it is also the "publish-server").
//!
//! Servers are configured through their real loader: the stack's settings are rendered into the
//! environment variables of the README and parsed by the same clap parser `main` uses.
//!
//! Everything stops when the stack drops.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use chat_server::{
    hot::HotSettings,
    limits::{PostLimits, ReactionLimits},
    rate_limit::{RoomLimits, SessionLimits},
};
use publish_server::settings::SseSettings;
use shared::{cursor::Cursor, kafka::KafkaSettings, shutdown::CancellationToken};

use crate::{api::Api, broker, database};

/// Which engines a stack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Distributed,
    Embedded,
}

pub struct Stack {
    pub mode: Mode,
    /// The broker (distributed mode).
    pub brokers: String,
    pub topic: String,
    /// The PostgreSQL database (distributed mode).
    pub database_url: String,
    /// The data folder of the embedded engines (embedded mode).
    pub data_dir: PathBuf,
    pub secret: String,
    pub chats: Vec<Api>,
    /// Base URLs serving the event streams: publish-servers, or the embedded chat-server.
    pub publishers: Vec<String>,
    /// How long a post waits for the broker before answering 503.
    pub produce_timeout: Duration,
    /// Replication factor of the topic (3 on a three-node cluster).
    pub replication_factor: i32,
    /// `HTTP_HEAD_TIMEOUT_MS` of servers added from now on.
    pub head_timeout: Duration,
    /// `MAX_CONNECTIONS` of servers added from now on (unset: what the open-file limit allows).
    pub max_connections: Option<usize>,
    /// Hot-room settings for chat-servers added from now on (Redis, with a key prefix of its own).
    pub hot: HotSettings,
    /// Per-user write limits of chat-servers added from now on (high by default: tests post fast).
    pub post_limits: PostLimits,
    /// Sign-in limits of chat-servers added from now on (high by default: every test signs in
    /// from 127.0.0.1).
    pub session_limits: SessionLimits,
    /// Room-creation limits of chat-servers added from now on (high by default: every test
    /// creates its rooms from 127.0.0.1).
    pub room_limits: RoomLimits,
    /// Reaction limits per user and message of chat-servers added from now on (high by default).
    pub reaction_limits: ReactionLimits,
    /// More variables for chat-servers added from now on (e.g. `AUTH_JWKS`).
    pub chat_vars: Vec<(&'static str, String)>,
    /// Event-stream settings of servers added from now on.
    pub sse: SseSettings,
    /// One per publish-server, in order: cancelling stops that instance.
    pub publish_stops: Vec<CancellationToken>,
    /// One per chat-server, in order: cancelling stops that instance.
    pub chat_stops: Vec<CancellationToken>,
    stops: Vec<CancellationToken>,
}

impl Stack {
    /// `chats` chat-servers and `publishers` publish-servers on the shared test broker.
    pub async fn start(chats: usize, publishers: usize) -> Self {
        Self::start_on(broker::shared_brokers(), chats, publishers).await
    }

    /// The same, on the broker at `brokers`.
    pub async fn start_on(brokers: String, chats: usize, publishers: usize) -> Self {
        let mut stack = Self::empty_on(brokers).await;
        for _ in 0..chats {
            stack.add_chat_server().await;
        }
        for _ in 0..publishers {
            stack.add_default_publish_server().await;
        }
        stack
    }

    /// A running stack in `mode` with one chat-server and one place serving event streams.
    pub async fn single(mode: Mode) -> Self {
        let mut stack = Self::empty_in(mode).await;
        stack.add_chat_server().await;
        stack.add_default_publish_server().await;
        stack
    }

    /// No servers yet, distributed: adjust the settings, then add them.
    pub async fn empty() -> Self {
        Self::empty_on(broker::shared_brokers()).await
    }

    /// No servers yet, in `mode`.
    pub async fn empty_in(mode: Mode) -> Self {
        match mode {
            Mode::Distributed => Self::empty().await,
            Mode::Embedded => {
                let mut stack = Self::blank(String::new(), String::new());
                stack.mode = Mode::Embedded;
                stack.hot.redis_url = None;
                stack
            }
        }
    }

    pub async fn empty_on(brokers: String) -> Self {
        let redis_url = crate::required_env("HOTCHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0");
        let mut stack = Self::blank(brokers, database::fresh().await);
        stack.hot.redis_url = Some(redis_url);
        stack
    }

    fn blank(brokers: String, database_url: String) -> Self {
        crate::init_logs();
        let id = uuid::Uuid::now_v7().simple();
        Self {
            mode: Mode::Distributed,
            brokers,
            topic: format!("chat-events-{id}"),
            database_url,
            data_dir: std::env::temp_dir().join(format!("hotchat-test-{id}")),
            secret: format!("test-secret-{}", uuid::Uuid::new_v4().simple()),
            chats: Vec::new(),
            publishers: Vec::new(),
            produce_timeout: Duration::from_secs(5),
            replication_factor: 1,
            head_timeout: publish_server::serve::DEFAULT_HEAD_TIMEOUT,
            max_connections: None,
            hot: HotSettings {
                key_prefix: format!("hotchat-test:{id}"),
                // Rooms turn hot by their deliveries only in the tests that say so.
                delivery_threshold: 1_000_000_000,
                ..HotSettings::local()
            },
            post_limits: PostLimits {
                rate: 10_000,
                burst: 10_000,
            },
            session_limits: SessionLimits {
                rate: 1_000_000,
                burst: 100_000,
            },
            room_limits: RoomLimits {
                rate: 1_000_000,
                burst: 100_000,
            },
            reaction_limits: ReactionLimits {
                rate: 100_000,
                burst: 100_000,
            },
            chat_vars: Vec::new(),
            sse: SseSettings {
                max_connections: 1_000,
                // Every test's streams come from 127.0.0.1.
                max_streams_per_address: 100_000,
                ..SseSettings::default()
            },
            publish_stops: Vec::new(),
            chat_stops: Vec::new(),
            stops: Vec::new(),
        }
    }

    pub fn kafka(&self) -> KafkaSettings {
        KafkaSettings {
            partitions: 3,
            replication_factor: self.replication_factor,
            produce_timeout: self.produce_timeout,
            ..KafkaSettings::new(self.brokers.clone(), self.topic.clone())
        }
    }

    /// The `KAFKA_*` variables of [`Stack::kafka`].
    fn kafka_vars(&self) -> Vec<(&'static str, String)> {
        let kafka = self.kafka();
        vec![
            ("KAFKA_BROKERS", kafka.brokers),
            ("KAFKA_TOPIC", kafka.topic),
            ("KAFKA_PARTITIONS", kafka.partitions.to_string()),
            (
                "KAFKA_REPLICATION_FACTOR",
                kafka.replication_factor.to_string(),
            ),
            ("KAFKA_PRODUCE_TIMEOUT_MS", millis(kafka.produce_timeout)),
        ]
    }

    /// The variables both servers read: the data folder, the HTTP edge and the event streams.
    fn server_vars(&self) -> Vec<(&'static str, String)> {
        let sse = &self.sse;
        vec![
            ("HOTCHAT_DATA_DIR", self.data_dir.display().to_string()),
            ("CORS_ORIGINS", "http://allowed.example".to_owned()),
            ("HTTP_HEAD_TIMEOUT_MS", millis(self.head_timeout)),
            // Empty is unset.
            (
                "MAX_CONNECTIONS",
                self.max_connections
                    .map_or_else(String::new, |n| n.to_string()),
            ),
            ("SHUTDOWN_DRAIN_MS", "3000".to_owned()),
            // Tests read `/metrics` from the base URL, the embedded mode's too.
            ("METRICS_PUBLIC", "true".to_owned()),
            ("SSE_KEEPALIVE_SECS", secs(sse.keepalive)),
            ("SSE_ROOM_BUFFER", sse.room_buffer.to_string()),
            ("SSE_RESUME_BUFFER", sse.resume_buffer.to_string()),
            ("SSE_MAX_CONNECTIONS", sse.max_connections.to_string()),
            (
                "SSE_MAX_STREAMS_PER_ADDRESS",
                sse.max_streams_per_address.to_string(),
            ),
            ("SSE_SEND_BUFFER_BYTES", sse.send_buffer.to_string()),
            ("SSE_STALL_SECS", secs(sse.stall)),
            ("HOT_SSE_BATCH_MS", millis(sse.batch)),
        ]
    }

    /// The projector group every publish-server of this stack shares by default.
    pub fn projector_group(&self) -> String {
        format!("projector-{}", self.topic)
    }

    pub fn chat(&self, i: usize) -> &Api {
        &self.chats[i]
    }

    /// The SSE URL of `room` on publish-server `i`.
    pub fn events_url(&self, i: usize, room: &str) -> String {
        format!("{}/api/rooms/{room}/events", self.publishers[i])
    }

    pub async fn add_chat_server(&mut self) -> &Api {
        let embedded = self.mode == Mode::Embedded;
        assert!(
            !embedded || self.chats.is_empty(),
            "the embedded mode runs one chat-server"
        );
        let mut vars = self.server_vars();
        vars.extend([
            ("CHAT_ADDR", free_addr().to_string()),
            ("AUTH_SECRET", self.secret.clone()),
            ("AUTH_TOKEN_TTL_SECS", "3600".to_owned()),
        ]);
        if !embedded {
            vars.extend(self.kafka_vars());
            vars.push(("DATABASE_URL", self.database_url.clone()));
        }
        vars.extend(hot_vars(&self.hot));
        vars.extend([
            ("USER_POST_RATE", self.post_limits.rate.to_string()),
            ("USER_POST_BURST", self.post_limits.burst.to_string()),
            ("SESSION_RATE", self.session_limits.rate.to_string()),
            ("SESSION_BURST", self.session_limits.burst.to_string()),
            ("ROOM_RATE", self.room_limits.rate.to_string()),
            ("ROOM_BURST", self.room_limits.burst.to_string()),
            ("REACTION_RATE", self.reaction_limits.rate.to_string()),
            ("REACTION_BURST", self.reaction_limits.burst.to_string()),
        ]);
        vars.extend(self.chat_vars.iter().cloned());
        let mut settings =
            chat_server::settings::Settings::from_vars(vars).expect("chat-server settings");
        // The API alone: unknown paths answer the API's 404, not the web app's index.html.
        settings.web_dir = None;
        let app = chat_server::startup::Application::build(settings)
            .await
            .expect("chat-server starts");
        let base = format!("http://{}", app.local_addr());
        let stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        self.chat_stops.push(stop.clone());
        self.stops.push(stop);
        self.chats.push(Api::new(base));
        self.chats.last().expect("just pushed")
    }

    /// Starts a publish-server writing this stack's database in this stack's projector group; in the
    /// embedded mode the chat-server is the one serving streams.
    pub async fn add_default_publish_server(&mut self) -> String {
        if self.mode == Mode::Embedded {
            let base = self.chats[0].base.clone();
            self.publishers.push(base.clone());
            return base;
        }
        let (url, group) = (self.database_url.clone(), self.projector_group());
        self.add_publish_server(&url, &group).await
    }

    /// Starts a publish-server whose projector writes `database_url` as part of `group`.
    pub async fn add_publish_server(&mut self, database_url: &str, group: &str) -> String {
        let mut vars = self.server_vars();
        vars.extend(self.kafka_vars());
        vars.extend([
            ("PUBLISH_ADDR", free_addr().to_string()),
            ("DATABASE_URL", database_url.to_owned()),
            ("PROJECTOR_GROUP", group.to_owned()),
            // Viewers are told apart by their tokens; audience counts meet in the stack's Redis.
            ("AUTH_SECRET", self.secret.clone()),
            ("REDIS_KEY_PREFIX", self.hot.key_prefix.clone()),
        ]);
        vars.extend(self.hot.redis_url.clone().map(|url| ("REDIS_URL", url)));
        let settings =
            publish_server::settings::Settings::from_vars(vars).expect("publish-server settings");
        let app = publish_server::startup::Application::build(settings)
            .await
            .expect("publish-server starts");
        let base = format!("http://{}", app.local_addr());
        let stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        self.publish_stops.push(stop.clone());
        self.stops.push(stop);
        self.publishers.push(base.clone());
        base
    }

    /// Every record in this stack's event log (the topic, or the embedded log's file).
    pub async fn records(&self) -> Vec<broker::Record> {
        match self.mode {
            Mode::Distributed => broker::read_topic(&self.brokers, &self.topic).await,
            Mode::Embedded => self.local_records().await,
        }
    }

    async fn local_records(&self) -> Vec<broker::Record> {
        use sqlx::{Connection, Row};
        let file = self.data_dir.join("events.db");
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", file.display()))
                .await
                .expect("open the embedded event log");
        let rows = sqlx::query("SELECT offset, key, value FROM events ORDER BY offset")
            .fetch_all(&mut conn)
            .await
            .expect("read the embedded event log");
        rows.into_iter()
            .map(|row| {
                let key: String = row.get(1);
                broker::Record {
                    cursor: Cursor {
                        partition: 0,
                        offset: row.get(0),
                    },
                    key: Some(key.into_bytes()),
                    value: Some(row.get(2)),
                }
            })
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for stop in &self.stops {
            stop.cancel();
        }
    }
}

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The variables of [`HotSettings`].
fn hot_vars(hot: &HotSettings) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("REDIS_KEY_PREFIX", hot.key_prefix.clone()),
        ("HOT_FETCH_THRESHOLD", hot.threshold.to_string()),
        ("HOT_DELIVERY_THRESHOLD", hot.delivery_threshold.to_string()),
        ("HOT_COOLDOWN_SECS", secs(hot.cooldown)),
        ("HOT_CACHE_TTL_MS", millis(hot.cache_ttl)),
        ("HOT_CLIENT_RATE", hot.client_rate.to_string()),
        ("HOT_CLIENT_BURST", hot.client_burst.to_string()),
        ("TRUST_FORWARDED_FOR", hot.trust_forwarded_for.to_string()),
    ];
    vars.extend(hot.redis_url.clone().map(|url| ("REDIS_URL", url)));
    vars
}

/// A `*_MS` variable's value.
fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

/// A `*_SECS` variable's value: whole seconds only, so a test cannot ask for what the variable
/// cannot say.
fn secs(duration: Duration) -> String {
    assert_eq!(
        duration.subsec_nanos(),
        0,
        "{duration:?} is not whole seconds"
    );
    duration.as_secs().to_string()
}

/// Runs the contract test `$name(mode: Mode)` once per mode, as `$name::distributed` and
/// `$name::embedded`.
#[macro_export]
macro_rules! in_both_modes {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn distributed() {
                super::$name($crate::stack::Mode::Distributed).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$name($crate::stack::Mode::Embedded).await
            }
        }
    };
}
