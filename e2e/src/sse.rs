//! A real SSE client over a real socket.
//!
//! Events are parsed by the `eventsource-stream` crate, not by code of ours, so the oracle does not
//! share the server's assumptions about the wire format (optional space after the colon, CR, LF or
//! CRLF line ends, multi-line data, a UTF-8 character split across chunks). Its events read as a
//! browser's `EventSource` reads them: the type defaults to `message`, and `id` is the stream's last
//! event id, which persists until the server sends another.
//!
//! The crate, like a browser, hides two things the contract also promises: keep-alive comments,
//! which only proxies see, and the `retry:` hint, which it drops when it comes in a block without
//! data (jpopesculian/eventsource-stream#6) — as ours does, first thing. [`Wire`] reads just those
//! two off the same bytes, line by line as the specification's "event stream interpretation" says.

use std::{collections::VecDeque, convert::Infallible, pin::Pin, time::Duration};

use bytes::Bytes;
use eventsource_stream::{EventStream, Eventsource};
use futures::{FutureExt, Stream, StreamExt, channel::mpsc};
use serde_json::Value;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The last event id when this event was dispatched (a browser's `lastEventId`); `None` while
    /// the server has sent none on this connection.
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
type Chunk = Result<Bytes, Infallible>;

pub struct SseClient {
    /// The response body as it arrives from the socket.
    body: ByteStream,
    /// Hands each chunk of `body` to `parser`; dropped when the body ends.
    feed: Option<mpsc::UnboundedSender<Chunk>>,
    parser: EventStream<mpsc::UnboundedReceiver<Chunk>>,
    /// Events parsed but not yet returned.
    ready: VecDeque<SseEvent>,
    wire: Wire,
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
        let (feed, chunks) = mpsc::unbounded();
        Self {
            body: Box::pin(response.bytes_stream()),
            feed: Some(feed),
            parser: chunks.eventsource(),
            ready: VecDeque::new(),
            wire: Wire::default(),
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
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if !self.fill(deadline).await {
                return None;
            }
        }
    }

    /// Reads one chunk and parses it; false on timeout or when the stream ended (`ended`).
    async fn fill(&mut self, deadline: tokio::time::Instant) -> bool {
        if self.ended {
            return false;
        }
        let chunk = match tokio::time::timeout_at(deadline, self.body.next()).await {
            Err(_) => return false,
            Ok(Some(Ok(chunk))) => Some(chunk),
            Ok(Some(Err(_)) | None) => None,
        };
        match chunk {
            Some(chunk) => {
                let (comments, retry) = self.wire.read(&chunk);
                self.comments += comments;
                self.retry = retry.or(self.retry);
                if let Some(feed) = &self.feed {
                    feed.unbounded_send(Ok(chunk))
                        .expect("the parser holds the receiver");
                }
            }
            None => {
                // Closing the feed ends the parser's input, as the end of the body would.
                self.feed = None;
                self.ended = true;
            }
        }
        // The chunk is already queued, so the parser needs no waiting: take every event it
        // completes, until it asks for more input.
        while let Some(Some(parsed)) = self.parser.next().now_or_never() {
            let event = parsed.expect("the server sent a well-formed UTF-8 event stream");
            self.ready.push_back(SseEvent {
                id: (!event.id.is_empty()).then_some(event.id),
                event: event.event,
                data: event.data,
            });
        }
        !self.ended || !self.ready.is_empty()
    }

    /// Reads until a `:` comment (keep-alive) arrives; returns the events that came before it, or
    /// `None` if no comment came within `timeout`.
    pub async fn until_comment(&mut self, timeout: Duration) -> Option<Vec<SseEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let before = self.comments;
        let mut events = Vec::new();
        loop {
            events.extend(self.ready.drain(..));
            if self.comments > before {
                return Some(events);
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
}

/// Reads comments and `retry` fields off the raw stream, which `eventsource-stream` does not report.
///
/// Per the specification: lines end at CRLF, LF or CR; a line starting with a colon is a comment;
/// otherwise the field name runs to the first colon and one space after it is dropped from the
/// value; `retry` counts only when its value is all ASCII digits.
#[derive(Debug, Default)]
struct Wire {
    line: Vec<u8>,
    /// The previous chunk ended with CR: a LF at the start of this one ends no new line.
    after_cr: bool,
    /// A line has ended: a byte order mark can no longer come.
    past_first_line: bool,
}

impl Wire {
    /// The comments that `chunk` completes, and the last `retry` value it completes, if any.
    fn read(&mut self, chunk: &[u8]) -> (usize, Option<u64>) {
        let (mut comments, mut retry) = (0, None);
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    let mut line = std::mem::take(&mut self.line);
                    if !std::mem::replace(&mut self.past_first_line, true) {
                        line = line
                            .strip_prefix("\u{feff}".as_bytes())
                            .unwrap_or(&line)
                            .to_vec();
                    }
                    if line.starts_with(b":") {
                        comments += 1;
                    } else if let Some(value) = line.strip_prefix(b"retry:") {
                        let value = value.strip_prefix(b" ").unwrap_or(value);
                        let digits = !value.is_empty() && value.iter().all(u8::is_ascii_digit);
                        if let Some(ms) = digits
                            .then(|| std::str::from_utf8(value).ok()?.parse().ok())
                            .flatten()
                        {
                            retry = Some(ms);
                        }
                    }
                }
                _ => self.line.push(byte),
            }
        }
        (comments, retry)
    }
}

/// Opens `room`'s stream on a socket with a tiny receive buffer (resuming after `last_event_id` if
/// given), reads the response head and nothing more: a client that stopped reading.
pub async fn unread_stream(
    base: &str,
    room: &str,
    last_event_id: Option<&str>,
) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr: std::net::SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .expect("a base URL of host:port");
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a receive buffer");
    let mut stream = socket.connect(addr).await.expect("connect");
    let resume = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /api/rooms/{room}/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         {resume}\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = vec![0u8; 512];
    let n = stream.read(&mut head).await.expect("read the head");
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    stream
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_in_pieces(stream: &[u8], piece: usize) -> (usize, Option<u64>) {
        let mut wire = Wire::default();
        stream.chunks(piece).fold((0, None), |(c, r), chunk| {
            let (comments, retry) = wire.read(chunk);
            (c + comments, retry.or(r))
        })
    }

    #[test]
    fn the_wire_sees_comments_and_retry_however_the_stream_is_written_and_split() {
        for stream in [
            &b"retry: 2000\n\n: keep-alive\n\nevent: message\ndata: {}\n\n:\n\n"[..],
            b"\xEF\xBB\xBFretry:2000\r\n\r\n:\r\n\r\n:x\r\rdata:a\r\n\r\n",
            b"retry:1\nretry:x\nretry: 2000\r:\n\n:\r\n\r\n",
        ] {
            for piece in 1..=stream.len() {
                assert_eq!(
                    read_in_pieces(stream, piece),
                    (2, Some(2000)),
                    "{:?} in pieces of {piece}",
                    String::from_utf8_lossy(stream)
                );
            }
        }
    }

    #[test]
    fn the_wire_ignores_fields_that_only_look_like_retry() {
        for stream in [
            &b"retry: 20 00\n\n"[..],
            b"retry:  2000\n\n",
            b"retry: +2000\n\n",
            b"retryx: 2000\n\n",
            b"data: retry: 2000\n\n",
            b" retry: 2000\n\n",
            b"retry: 2000",
        ] {
            assert_eq!(read_in_pieces(stream, 3), (0, None), "{stream:?}");
        }
    }
}
