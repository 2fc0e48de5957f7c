//! A small client for the chat-server API, as a browser or another team's service would use it.

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub user: Value,
}

#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub http: Client,
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            http: Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn sign_in(&self, name: &str) -> Session {
        let response = self
            .http
            .post(self.url("/api/sessions"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("POST /api/sessions");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("session JSON");
        Session {
            token: body["token"].as_str().expect("token").to_owned(),
            user: body["user"].clone(),
        }
    }

    /// Creates a room and returns its JSON.
    pub async fn create_room(&self, session: &Session, name: &str) -> Value {
        let response = self
            .http
            .post(self.url("/api/rooms"))
            .bearer_auth(&session.token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("POST /api/rooms");
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "creating room {name}"
        );
        response.json().await.expect("room JSON")
    }

    /// Posts a message, asserting 201, and returns it.
    pub async fn post(&self, session: &Session, room: &str, text: &str) -> Value {
        let response = self.try_post(session, room, text).await;
        assert_eq!(response.status(), StatusCode::CREATED, "posting {text:?}");
        response.json().await.expect("message JSON")
    }

    /// Posts with an `Idempotency-Key` (any bytes, to try bad ones too).
    pub async fn try_post_with_key(
        &self,
        session: &Session,
        room: &str,
        text: &str,
        key: &[u8],
    ) -> Response {
        self.http
            .post(self.url(&format!("/api/rooms/{room}/messages")))
            .bearer_auth(&session.token)
            .header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(key).expect("a header value"),
            )
            .json(&json!({ "text": text }))
            .send()
            .await
            .expect("POST messages")
    }

    /// Creates a room with an `Idempotency-Key`.
    pub async fn try_create_room_with_key(
        &self,
        session: &Session,
        name: &str,
        key: &str,
    ) -> Response {
        self.http
            .post(self.url("/api/rooms"))
            .bearer_auth(&session.token)
            .header("idempotency-key", key)
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("POST /api/rooms")
    }

    pub async fn try_post(&self, session: &Session, room: &str, text: &str) -> Response {
        self.http
            .post(self.url(&format!("/api/rooms/{room}/messages")))
            .bearer_auth(&session.token)
            .json(&json!({ "text": text }))
            .send()
            .await
            .expect("POST messages")
    }

    /// `GET /api/rooms/{room}/messages?{query}`.
    pub async fn fetch(&self, room: &str, query: &str) -> Response {
        self.http
            .get(self.url(&format!("/api/rooms/{room}/messages?{query}")))
            .send()
            .await
            .expect("GET messages")
    }

    /// The newest page of messages (up to 200), asserting 200.
    pub async fn messages(&self, room: &str) -> Vec<Value> {
        let response = self.fetch(room, "limit=200").await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("messages JSON");
        body["messages"].as_array().expect("messages array").clone()
    }

    /// The value of one metric line from `/metrics`, e.g.
    /// `hotchat_fetch_db_queries_total{mode="throttled"}`; 0 when the series does not exist yet.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.trim().parse().expect("a number"))
            .unwrap_or(0.0)
    }

    /// The room's mode as `GET /api/rooms/{room}` reports it.
    pub async fn mode(&self, room: &str) -> String {
        let room: Value = self
            .http
            .get(self.url(&format!("/api/rooms/{room}")))
            .send()
            .await
            .expect("GET room")
            .json()
            .await
            .expect("room JSON");
        room["mode"].as_str().expect("mode").to_owned()
    }

    /// Any API call: `method` on `path`, as `session` if given, with a JSON `body` if given. Returns
    /// the status and the JSON answer (`null` when the body is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method.clone(), self.url(path));
        if let Some(session) = session {
            request = request.bearer_auth(&session.token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let bytes = response.bytes().await.expect("an answer body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// PUT (add) or DELETE (remove) a reaction; returns the status.
    pub async fn react(
        &self,
        session: &Session,
        room: &str,
        message: &str,
        emoji: &str,
        add: bool,
    ) -> StatusCode {
        let url = self.url(&format!(
            "/api/rooms/{room}/messages/{message}/reactions/{emoji}"
        ));
        let request = if add {
            self.http.put(url)
        } else {
            self.http.delete(url)
        };
        request
            .bearer_auth(&session.token)
            .send()
            .await
            .expect("reaction request")
            .status()
    }
}
