//! A hotchat deployment for one test: N chat-servers and M publish-servers on free ports, sharing a
//! topic of their own, a database of their own and one auth secret. Everything stops when it drops.

use std::{net::SocketAddr, time::Duration};

use chat_server::hot::HotSettings;
use shared::{kafka::KafkaSettings, shutdown::CancellationToken};

use crate::{api::Api, broker, database};

pub struct Stack {
    pub brokers: String,
    pub topic: String,
    pub database_url: String,
    pub secret: String,
    pub chats: Vec<Api>,
    /// Base URLs of the publish-servers.
    pub publishers: Vec<String>,
    /// How long a post waits for the broker before answering 503.
    pub produce_timeout: Duration,
    /// Hot-room settings for chat-servers added from now on (Redis, with a key prefix of its own).
    pub hot: HotSettings,
    /// Keep-alive period of publish-servers added from now on.
    pub keepalive: Duration,
    /// Stream limit of publish-servers added from now on.
    pub max_connections: usize,
    /// Events per partition kept for resuming, in publish-servers added from now on.
    pub resume_buffer: usize,
    /// Ring size per room (how far a client may fall behind), in publish-servers added from now on.
    pub room_buffer: usize,
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

    /// No servers yet: adjust the settings, then add them.
    pub async fn empty() -> Self {
        Self::empty_on(broker::shared_brokers()).await
    }

    pub async fn empty_on(brokers: String) -> Self {
        let redis_url = crate::required_env("HOTCHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0");
        Self {
            brokers,
            topic: format!("chat-events-{}", uuid::Uuid::now_v7().simple()),
            database_url: database::fresh().await,
            secret: format!("test-secret-{}", uuid::Uuid::new_v4().simple()),
            chats: Vec::new(),
            publishers: Vec::new(),
            produce_timeout: Duration::from_secs(5),
            hot: HotSettings {
                redis_url: Some(redis_url),
                key_prefix: format!("hotchat-test:{}", uuid::Uuid::now_v7().simple()),
                ..HotSettings::local()
            },
            keepalive: Duration::from_secs(10),
            max_connections: 1_000,
            resume_buffer: 10_000,
            room_buffer: 1024,
            publish_stops: Vec::new(),
            chat_stops: Vec::new(),
            stops: Vec::new(),
        }
    }

    /// A publish-server writing this stack's database in this stack's projector group.
    pub async fn add_default_publish_server(&mut self) -> String {
        let (url, group) = (self.database_url.clone(), self.projector_group());
        self.add_publish_server(&url, &group).await
    }

    pub fn kafka(&self) -> KafkaSettings {
        KafkaSettings {
            partitions: 3,
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
        let settings = chat_server::settings::Settings {
            addr: free_addr(),
            kafka: self.kafka(),
            database_url: self.database_url.clone(),
            auth: chat_server::settings::AuthSettings {
                secret: self.secret.clone(),
                token_ttl: Duration::from_secs(3600),
            },
            hot: self.hot.clone(),
            cors_origins: vec!["http://allowed.example".into()],
            web_dir: None,
            public_events_url: None,
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

    /// Starts a publish-server whose projector writes `database_url` as part of `group`.
    pub async fn add_publish_server(&mut self, database_url: &str, group: &str) -> String {
        let settings = publish_server::settings::Settings {
            addr: free_addr(),
            kafka: self.kafka(),
            database_url: database_url.to_owned(),
            projector_group: group.to_owned(),
            keepalive: self.keepalive,
            room_buffer: self.room_buffer,
            resume_buffer: self.resume_buffer,
            max_connections: self.max_connections,
            send_buffer: 65_536,
            drain: Duration::from_secs(3),
            cors_origins: vec!["http://allowed.example".into()],
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

    /// Every record in this stack's topic.
    pub async fn records(&self) -> Vec<broker::Record> {
        broker::read_topic(&self.brokers, &self.topic).await
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
