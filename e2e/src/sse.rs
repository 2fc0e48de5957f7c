//! A real SSE client over a real socket: reads the byte stream and splits it into events.

use std::{pin::Pin, time::Duration};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

pub struct SseClient {
    stream: ByteStream,
    buffer: String,
    /// Keep-alive comments seen so far.
    pub comments: usize,
    /// The `retry:` hint, if the server sent one.
    pub retry: Option<u64>,
    /// True once the server ended the stream (or the connection broke).
    pub ended: bool,
}

impl SseClient {
    /// Like [`SseClient::connect`], but `None` instead of a panic when the server does not answer
    /// with a stream (for clients that retry, as browsers do).
    pub async fn try_connect(url: &str, last_event_id: Option<&str>) -> Option<Self> {
        let mut request = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.ok()?;
        response
            .status()
            .is_success()
            .then(|| Self::from_response(response))
    }

    /// Sends `request` and, if it answers 200, reads its body as a stream; the response headers
    /// come back beside it.
    pub async fn open(
        request: reqwest::RequestBuilder,
    ) -> (
        reqwest::StatusCode,
        reqwest::header::HeaderMap,
        Option<Self>,
    ) {
        let response = request.send().await.expect("SSE request");
        let (status, headers) = (response.status(), response.headers().clone());
        let client = status.is_success().then(|| Self::from_response(response));
        (status, headers, client)
    }

    fn from_response(response: reqwest::Response) -> Self {
        Self {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            comments: 0,
            retry: None,
            ended: false,
        }
    }

    /// Opens `url` (optionally resuming with `Last-Event-ID`) and checks it is an event stream.
    pub async fn connect(url: &str, last_event_id: Option<&str>) -> Self {
        let mut request = reqwest::Client::new()
            .get(url)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("SSE request");
        assert_eq!(response.status(), 200, "SSE status for {url}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content type {content_type}"
        );
        Self::from_response(response)
    }

    /// The next event within `timeout`; `None` if none came or the stream ended.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
            }
            if !self.fill(deadline).await {
                return None;
            }
        }
    }

    /// Reads one chunk into the buffer; false on timeout or when the stream ended (`ended`).
    async fn fill(&mut self, deadline: tokio::time::Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.stream.next()).await {
            Err(_) => false,
            Ok(Some(Ok(chunk))) => {
                self.buffer
                    .push_str(std::str::from_utf8(&chunk).expect("UTF-8 stream"));
                true
            }
            Ok(Some(Err(_)) | None) => {
                self.ended = true;
                false
            }
        }
    }

    /// Reads until a `:` comment (keep-alive) arrives; returns the events that came before it, or
    /// `None` if no comment came within `timeout`.
    pub async fn until_comment(&mut self, timeout: Duration) -> Option<Vec<SseEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let before = self.comments;
        let mut events = Vec::new();
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    events.push(event);
                }
                if self.comments > before {
                    return Some(events);
                }
            }
            if !self.fill(deadline).await {
                return None;
            }
        }
    }

    /// The next event of type `kind`, skipping others; panics if none comes within `timeout`.
    pub async fn next_of(&mut self, kind: &str, timeout: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(event) if event.event == kind => return event,
                Some(_) => continue,
                None => panic!("no `{kind}` event within {timeout:?}"),
            }
        }
    }

    /// Collects `n` events of type `kind` (others skipped), panicking if they do not come in time.
    pub async fn collect(&mut self, kind: &str, n: usize, timeout: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(event) if event.event == kind => events.push(event),
                Some(_) => {}
                None => panic!(
                    "got {} of {n} `{kind}` events within {timeout:?}",
                    events.len()
                ),
            }
        }
        events
    }

    fn parse(&mut self, block: &str) -> Option<SseEvent> {
        let (mut id, mut event, mut data) = (None, None, Vec::new());
        for line in block.lines() {
            if line.starts_with(':') {
                self.comments += 1;
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push(v.to_owned());
            } else if let Some(v) = line.strip_prefix("retry: ") {
                self.retry = v.parse().ok();
            }
        }
        if event.is_none() && data.is_empty() {
            return None;
        }
        Some(SseEvent {
            id,
            event: event.unwrap_or_else(|| "message".to_owned()),
            data: data.join("\n"),
        })
    }
}
