//! Long-lived streams on a connection of their own, without hyper's per-connection buffers.
//!
//! hyper keeps a read and a write buffer (8 KiB or more each) for every HTTP/1 connection for as long
//! as it lives, which is most of what an idle event stream costs. So the accept loop reads the first
//! request itself when [`ConnectionOptions::take_over`](super::ConnectionOptions) says a path may be
//! a stream: it passes the request through the router as usual (same middleware, same handler) with
//! a [`CanTakeOver`] extension, and if the handler answers with a [`TakeOver`] extension, the loop
//! writes the response head and hands the bare socket to the handler's writer, which sends the body
//! as chunks, batching whatever is ready into one system call. Any other answer is written whole and
//! the connection closed; any other request goes to hyper untouched (see [`Rewind`]).

use std::{
    io::{self, IoSlice},
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    http::{Response, StatusCode},
    response::IntoResponse,
};
use bytes::{Buf, Bytes, BytesMut};
use futures::future::BoxFuture;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use request_head::Head;
use shared::http::ApiError;

/// Says which requests (method, path) may be answered by taking the connection over.
pub type TakeOverMatcher = request_head::Matcher;

/// A request extension: the accept loop holds this request's socket, so the handler may answer with
/// [`TakeOver`] instead of a body.
#[derive(Clone, Copy, Debug)]
pub struct CanTakeOver;

type Writer = Box<dyn FnOnce(ChunkedStream) -> BoxFuture<'static, ()> + Send>;

/// A response extension: after the head, the connection belongs to this writer.
#[derive(Clone)]
pub struct TakeOver(Arc<Mutex<Option<Writer>>>);

impl TakeOver {
    pub fn new<F, Fut>(writer: F) -> Self
    where
        F: FnOnce(ChunkedStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let writer: Writer = Box::new(move |stream| Box::pin(writer(stream)));
        Self(Arc::new(Mutex::new(Some(writer))))
    }

    fn take(&self) -> Option<Writer> {
        self.0.lock().ok()?.take()
    }
}

/// The socket of a taken-over response: the body goes out as `Transfer-Encoding: chunked`.
pub struct ChunkedStream {
    socket: TcpStream,
}

impl ChunkedStream {
    /// The socket of a response whose head is written.
    pub(crate) fn new(socket: TcpStream) -> Self {
        Self { socket }
    }

    /// Writes `parts` as one chunk: one system call when the socket has room, however many parts.
    pub async fn write_chunk(&self, parts: &[Bytes]) -> io::Result<()> {
        match self.try_write_chunk(parts)? {
            None => Ok(()),
            Some(rest) => self.write_rest(rest).await,
        }
    }

    /// Writes as much of the chunk of `parts` as the socket takes now, without waiting: `None`
    /// when all of it went out, else what is left (see [`ChunkedStream::write_rest`]).
    pub fn try_write_chunk(&self, parts: &[Bytes]) -> io::Result<Option<Vec<Bytes>>> {
        let len: usize = parts.iter().map(Bytes::len).sum();
        if len == 0 {
            return Ok(None);
        }
        let mut size_buffer = [0u8; 18];
        let size = chunk_size(len, &mut size_buffer);
        let total = size.len() + len + 2;
        // The usual write (a few frames) needs no allocation: its slices fit on the stack.
        let attempt = if parts.len() <= INLINE_PARTS {
            let mut slices = [IoSlice::new(&[]); INLINE_PARTS + 2];
            slices[0] = IoSlice::new(size);
            for (slice, part) in slices[1..].iter_mut().zip(parts) {
                *slice = IoSlice::new(part);
            }
            slices[parts.len() + 1] = IoSlice::new(b"\r\n");
            self.socket.try_write_vectored(&slices[..parts.len() + 2])
        } else {
            let mut slices = Vec::with_capacity(parts.len() + 2);
            slices.push(IoSlice::new(size));
            slices.extend(parts.iter().map(|p| IoSlice::new(p)));
            slices.push(IoSlice::new(b"\r\n"));
            self.socket.try_write_vectored(&slices)
        };
        let written = match attempt {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        if written == total {
            return Ok(None);
        }
        // The client is behind: keep the rest — the shared frames themselves, not a copy, so a
        // thousand clients behind cost no more memory than one.
        let mut rest: Vec<Bytes> = Vec::with_capacity(parts.len() + 2);
        rest.push(Bytes::copy_from_slice(size));
        rest.extend(parts.iter().cloned());
        rest.push(Bytes::from_static(b"\r\n"));
        consume(&mut rest, written);
        Ok(Some(rest))
    }

    /// Writes `rest` (what [`ChunkedStream::try_write_chunk`] left), waiting for room as needed.
    pub async fn write_rest(&self, mut rest: Vec<Bytes>) -> io::Result<()> {
        while !rest.is_empty() {
            self.socket.writable().await?;
            let slices: Vec<IoSlice<'_>> = rest.iter().map(|b| IoSlice::new(b)).collect();
            let result = self.socket.try_write_vectored(&slices);
            drop(slices);
            match result {
                Ok(n) => consume(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Ready when the client has closed the connection (or it failed). Bytes the client sends
    /// meanwhile are read and dropped. Only the task that polls last is woken.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 64];
        loop {
            match self.socket.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
            }
            match self.socket.try_read(&mut scratch) {
                Ok(0) => return Poll::Ready(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Poll::Ready(()),
            }
        }
    }

    /// Ends the body with the last chunk.
    pub async fn finish(mut self) -> io::Result<()> {
        self.socket.write_all(b"0\r\n\r\n").await?;
        self.socket.shutdown().await
    }
}

/// Parts of a chunk written from slices on the stack.
const INLINE_PARTS: usize = 8;

/// The line that starts a chunk of `len` bytes (`<hex>\r\n`), written into `buffer`.
fn chunk_size(len: usize, buffer: &mut [u8; 18]) -> &[u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut start = buffer.len() - 2;
    buffer[start..].copy_from_slice(b"\r\n");
    let mut rest = len;
    loop {
        start -= 1;
        buffer[start] = DIGITS[rest & 15];
        rest >>= 4;
        if rest == 0 {
            return &buffer[start..];
        }
    }
}

/// Drops the first `n` bytes of `parts`.
fn consume(parts: &mut Vec<Bytes>, mut n: usize) {
    let whole = parts.iter().take_while(|p| {
        let gone = p.len() <= n;
        if gone {
            n -= p.len();
        }
        gone
    });
    let whole = whole.count();
    parts.drain(..whole);
    if let Some(first) = parts.first_mut() {
        first.advance(n);
    }
}

/// Largest request head read here; a bigger one goes to hyper, which refuses it properly.
const MAX_HEAD: usize = 16 * 1024;
/// Largest ordinary answer to a request read here.
const MAX_BODY: usize = 1024 * 1024;

/// What became of a connection whose first request was read here.
pub(super) enum Sniffed {
    /// Answered (or dropped): nothing more to do.
    Done,
    /// Taken over: the response head is written, and the writer writes the rest until the stream
    /// ends or the connection is cut ([`TakenOver::run`]). The caller runs it as a task of its
    /// own, so that a long-lived stream does not keep the room the first request's reading and
    /// routing took.
    TakenOver(TakenOver),
    /// Not ours: hyper serves it, starting with the bytes already read.
    Hyper(Rewind),
}

/// A taken-over connection's writer, ready to run.
pub(super) struct TakenOver {
    writer: BoxFuture<'static, ()>,
    cut: CancellationToken,
    peer: SocketAddr,
}

impl TakenOver {
    pub(super) async fn run(self) {
        tokio::select! {
            () = self.writer => {}
            () = self.cut.cancelled() => tracing::debug!(peer = %self.peer, "connection cut"),
        }
    }
}

/// Reads the first request on `stream`; serves it here if `matcher` says so, else returns it for
/// hyper.
pub(super) async fn sniff(
    mut stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    cut: CancellationToken,
    shutdown: &CancellationToken,
    matcher: TakeOverMatcher,
    head_timeout: Duration,
) -> Sniffed {
    let mut buf = BytesMut::with_capacity(2048);
    // One deadline for the whole head, not one per read: a byte every few seconds must not keep a
    // connection open for ever.
    let deadline = tokio::time::Instant::now() + head_timeout;
    let request = loop {
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)) => read,
            () = cut.cancelled() => return Sniffed::Done,
            // Shutting down: a connection that has not asked for anything yet is simply closed.
            () = shutdown.cancelled() => return Sniffed::Done,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Sniffed::Done,
            Ok(Ok(_)) => {}
        }
        match request_head::parse(&buf, matcher) {
            Head::Partial if buf.len() < MAX_HEAD => continue,
            Head::Ours(request) => break request.map(|()| Body::empty()),
            Head::Partial | Head::NotOurs => {
                return Sniffed::Hyper(Rewind::new(buf.freeze(), stream));
            }
        }
    };
    drop(buf);
    let mut request = request;
    super::tag(&mut request, peer, &cut);
    request.extensions_mut().insert(CanTakeOver);
    // Boxed so that the connection's task does not keep room for the router's future.
    let Ok(response) = Box::pin(router.oneshot(request)).await;
    let (parts, body) = response.into_parts();
    let head_only = Response::from_parts(parts, ());
    match head_only
        .extensions()
        .get::<TakeOver>()
        .and_then(TakeOver::take)
    {
        Some(writer) => {
            let head = encode_head(&head_only, "transfer-encoding: chunked");
            drop(head_only);
            if stream.write_all(&head).await.is_err() {
                return Sniffed::Done;
            }
            drop(head);
            return Sniffed::TakenOver(TakenOver {
                writer: writer(ChunkedStream::new(stream)),
                cut,
                peer,
            });
        }
        None => {
            let (head_only, body) = match axum::body::to_bytes(body, MAX_BODY).await {
                Ok(body) => (head_only, body),
                Err(e) => {
                    tracing::error!(%peer, error = %e, "an answer too big to buffer was replaced by a 500");
                    let (parts, body) = ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "the answer could not be sent",
                    )
                    .into_response()
                    .into_parts();
                    let body = axum::body::to_bytes(body, MAX_BODY)
                        .await
                        .unwrap_or_default();
                    (Response::from_parts(parts, ()), body)
                }
            };
            let mut out = encode_head(&head_only, &format!("content-length: {}", body.len()));
            out.extend_from_slice(&body);
            if stream.write_all(&out).await.is_ok() {
                let _ = stream.shutdown().await;
            }
        }
    }
    Sniffed::Done
}

/// The status line and headers of `response`, plus `framing`, closing the connection after it.
fn encode_head(response: &Response<()>, framing: &str) -> Vec<u8> {
    let status = response.status();
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in response.headers() {
        if name == axum::http::header::CONTENT_LENGTH
            || name == axum::http::header::TRANSFER_ENCODING
            || name == axum::http::header::CONNECTION
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(framing.as_bytes());
    head.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    head
}

/// A socket with bytes already read from it put back in front.
pub struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl Rewind {
    pub fn new(prefix: Bytes, inner: TcpStream) -> Self {
        Self { prefix, inner }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Free the buffer the head was read into.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_starts_with_its_size_in_hex() {
        let mut buffer = [0u8; 18];
        assert_eq!(chunk_size(0, &mut buffer), b"0\r\n");
        assert_eq!(chunk_size(300, &mut buffer), b"12c\r\n");
        assert_eq!(
            chunk_size(usize::MAX, &mut buffer),
            format!("{:x}\r\n", usize::MAX).as_bytes()
        );
    }

    #[tokio::test]
    async fn an_answer_too_big_to_buffer_is_a_500_with_the_error_body() {
        let router = Router::new().route(
            "/big/events",
            axum::routing::get(|| async { vec![b'x'; MAX_BODY + 1] }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            let never = CancellationToken::new();
            let matcher: TakeOverMatcher = |_, path| path.ends_with("/events");
            let sniffed = sniff(
                stream,
                peer,
                router,
                CancellationToken::new(),
                &never,
                matcher,
                Duration::from_secs(5),
            );
            assert!(matches!(sniffed.await, Sniffed::Done), "answered here");
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /big/events HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        server.await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(
            answer.ends_with(
                r#"{"error":{"code":"internal","message":"the answer could not be sent"}}"#
            ),
            "{answer}"
        );
    }

    #[test]
    fn consuming_drops_whole_parts_and_advances_the_next() {
        let mut parts = vec![
            Bytes::from_static(b"3\r\n"),
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"\r\n"),
        ];
        consume(&mut parts, 5);
        assert_eq!(
            parts,
            [Bytes::from_static(b"c"), Bytes::from_static(b"\r\n")]
        );
        consume(&mut parts, 1);
        assert_eq!(parts, [Bytes::from_static(b"\r\n")]);
        consume(&mut parts, 2);
        assert!(parts.is_empty());
    }

    #[test]
    fn a_head_keeps_the_handlers_headers_and_replaces_framing() {
        let response = Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .header("content-length", "5")
            .body(())
            .expect("valid response");
        let head = String::from_utf8(encode_head(&response, "transfer-encoding: chunked"))
            .expect("ascii head");
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
    }
}
