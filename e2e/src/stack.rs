//! A hotchat deployment for one test, in either mode.
//!
//! - [`Mode::Distributed`]: N chat-servers and M publish-servers on free ports, sharing a Kafka topic
//!   of their own, a PostgreSQL database of their own, Redis under a key prefix of their own and one
//!   auth secret.
//! - [`Mode::Embedded`]: one chat-server with no Kafka, PostgreSQL or Redis — the embedded log, a
//!   SQLite read model in a fresh data folder, in-process counters — serving the event streams
//!   itself (it is also the "publish-server").
//!
//! Everything stops when the stack drops.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use chat_server::{hot::HotSettings, limits::PostLimits};
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
    /// `MAX_CONNECTIONS` of servers added from now on.
    pub max_connections: usize,
    /// Hot-room settings for chat-servers added from now on (Redis, with a key prefix of its own).
    pub hot: HotSettings,
    /// Per-user write limits of chat-servers added from now on (high by default: tests post fast).
    pub post_limits: PostLimits,
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
            head_timeout: shared::serve::DEFAULT_HEAD_TIMEOUT,
            max_connections: shared::serve::DEFAULT_MAX_CONNECTIONS,
            hot: HotSettings {
                key_prefix: format!("hotchat-test:{id}"),
                ..HotSettings::local()
            },
            post_limits: PostLimits {
                rate: 10_000,
                burst: 10_000,
            },
            sse: SseSettings {
                max_connections: 1_000,
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
        let settings = chat_server::settings::Settings {
            addr: free_addr(),
            kafka: (!embedded).then(|| self.kafka()),
            database_url: (!embedded).then(|| self.database_url.clone()),
            data_dir: self.data_dir.clone(),
            auth: chat_server::settings::AuthSettings {
                secret: self.secret.clone(),
                token_ttl: Duration::from_secs(3600),
            },
            hot: self.hot.clone(),
            post_limits: self.post_limits,
            sse: self.sse.clone(),
            cors_origins: vec!["http://allowed.example".into()],
            web_dir: None,
            public_events_url: None,
            head_timeout: self.head_timeout,
            max_connections: self.max_connections,
        };
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
        let settings = publish_server::settings::Settings {
            addr: free_addr(),
            kafka: self.kafka(),
            database_url: Some(database_url.to_owned()),
            data_dir: self.data_dir.clone(),
            projector_group: group.to_owned(),
            sse: self.sse.clone(),
            drain: Duration::from_secs(3),
            cors_origins: vec!["http://allowed.example".into()],
            head_timeout: self.head_timeout,
            max_connections: self.max_connections,
        };
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
