//! The few chat-server calls the harnesses make outside the measured load: signing in, creating and
//! seeding rooms, reading modes and metrics.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};

/// A chat-server (or publish-server, for `/metrics`) at `base`.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Session {
    token: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(256)
                .build()
                .context("building the HTTP client")?,
        })
    }

    /// Signs `name` in; returns the session token.
    pub async fn sign_in(&self, name: &str) -> anyhow::Result<String> {
        let session: Session = self
            .send(
                self.client
                    .post(self.url("/api/sessions"))
                    .json(&json!({ "name": name })),
            )
            .await?;
        Ok(session.token)
    }

    /// Creates a room; returns its id.
    pub async fn create_room(&self, token: &str, name: &str) -> anyhow::Result<String> {
        let room: Created = self
            .send(
                self.client
                    .post(self.url("/api/rooms"))
                    .bearer_auth(token)
                    .json(&json!({ "name": name })),
            )
            .await?;
        Ok(room.id)
    }

    /// Posts a message; returns its id once the broker acknowledged it.
    pub async fn post_message(
        &self,
        token: &str,
        room: &str,
        text: &str,
    ) -> anyhow::Result<String> {
        let message: Created = self
            .send(
                self.client
                    .post(self.url(&format!("/api/rooms/{room}/messages")))
                    .bearer_auth(token)
                    .json(&json!({ "text": text })),
            )
            .await?;
        Ok(message.id)
    }

    /// Adds (`add`) or removes `token`'s `emoji` on a message.
    pub async fn react(
        &self,
        token: &str,
        room: &str,
        message: &str,
        emoji: &str,
        add: bool,
    ) -> anyhow::Result<()> {
        let url = self.url(&format!(
            "/api/rooms/{room}/messages/{message}/reactions/{emoji}"
        ));
        let request = if add {
            self.client.put(url)
        } else {
            self.client.delete(url)
        };
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .context("sending a reaction")?;
        if !response.status().is_success() {
            bail!("a reaction answered {}", response.status());
        }
        Ok(())
    }

    /// How many messages the history API returns for `room` (a page of up to 200).
    pub async fn message_count(&self, room: &str) -> anyhow::Result<usize> {
        let page: Value = self
            .send(
                self.client
                    .get(self.url(&format!("/api/rooms/{room}/messages?limit=200"))),
            )
            .await?;
        Ok(page["messages"].as_array().map_or(0, Vec::len))
    }

    /// The room's mode: `normal` or `throttled`.
    pub async fn room_mode(&self, room: &str) -> anyhow::Result<String> {
        let room: Value = self
            .send(self.client.get(self.url(&format!("/api/rooms/{room}"))))
            .await?;
        Ok(room["mode"].as_str().unwrap_or("unknown").to_owned())
    }

    /// `/metrics` as Prometheus text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .context("GET /metrics")?;
        if !response.status().is_success() {
            bail!("GET /metrics answered {}", response.status());
        }
        response.text().await.context("reading /metrics")
    }

    /// Waits until `/readyz` answers 200, for up to `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ready = self
                .client
                .get(self.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{} was not ready within {timeout:?}", self.base);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = request.send().await.context("sending a request")?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("answered {status}: {body}");
        }
        response.json().await.context("decoding an answer")
    }
}
