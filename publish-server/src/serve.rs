//! Serving HTTP with a handle on every connection.
//!
//! `axum::serve` owns its connections, so nothing can close one whose client stopped reading: hyper
//! stops polling a response body while the socket is blocked, and a stalled SSE client would hold its
//! connection (and buffers) until TCP gives up. This accept loop gives every request a
//! [`ConnectionCut`] token; cancelling it drops the connection at once. It also hands the peer address
//! to `ConnectInfo` and shuts down gracefully: on `shutdown` each connection finishes its in-flight
//! request (SSE streams end themselves), and whatever is still open after `drain` is dropped.
//!
//! Requests that [`ConnectionOptions::take_over`] names are read here, not by hyper, so that a
//! long-lived stream can run on the bare socket ([`takeover`]).

mod takeover;

pub use takeover::{CanTakeOver, ChunkedStream, TakeOver, TakeOverMatcher};

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo, extract::Request};
use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

/// Cancelling it closes the connection that carried the request.
#[derive(Clone, Debug)]
pub struct ConnectionCut(pub CancellationToken);

/// How connections are set up.
#[derive(Clone, Copy, Default)]
pub struct ConnectionOptions {
    /// The socket's send buffer (`SO_SNDBUF`), in bytes. Left to the kernel, it grows to megabytes
    /// per connection (Linux autotuning); a small one makes a client that stops reading block its
    /// stream early, so it is noticed and cut off while it has cost little memory.
    pub send_buffer: Option<usize>,
    /// hyper's own write buffer limit per connection, in bytes (at least 8192).
    pub write_buffer: Option<usize>,
    /// Requests whose handler may take the connection over (see [`TakeOver`]); they are read by
    /// the accept loop when they come first on a connection.
    pub take_over: Option<TakeOverMatcher>,
    /// The longest a client may take to send a whole request head (default
    /// [`DEFAULT_HEAD_TIMEOUT`]): a client trickling one byte at a time is dropped after it, on
    /// the take-over path and on hyper's alike.
    pub head_timeout: Option<Duration>,
    /// Open connections at most, whatever they are doing, counted at accept: one over the cap is
    /// closed at once, before anything is read from it. Unset, or above what the process's
    /// open-file limit allows: that limit less room for everything else ([`connection_cap`]).
    pub max_connections: Option<usize>,
}

/// How long a request head may take when [`ConnectionOptions::head_timeout`] is unset.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

impl ConnectionOptions {
    fn head_timeout(&self) -> Duration {
        self.head_timeout.unwrap_or(DEFAULT_HEAD_TIMEOUT)
    }
}

/// The most connections `serve` accepts at once: `requested`, but never so many that accepting
/// them would take the file descriptors the process needs for anything else (the database pool,
/// the brokers, the embedded log's files). Raises the process's soft open-file limit to its hard
/// one first, as a server should. Says so when it lowers `requested`.
pub fn connection_cap(requested: Option<usize>) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; assuming 1024");
            1024
        }
    };
    let fits = fitting_connections(limit);
    match requested {
        None => fits,
        Some(requested) if requested > fits => {
            tracing::warn!(
                requested,
                max_connections = fits,
                open_file_limit = limit,
                "MAX_CONNECTIONS is more than the open-file limit leaves room for; lowered"
            );
            fits
        }
        Some(requested) => requested,
    }
}

/// Connections that fit in `open_file_limit` descriptors: a twentieth (at least 256) is kept for
/// the database pool, the brokers, log files and the listener.
fn fitting_connections(open_file_limit: u64) -> usize {
    let reserve = (open_file_limit / 20).max(256);
    usize::try_from(open_file_limit.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1)
}

impl std::fmt::Debug for ConnectionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionOptions")
            .field("send_buffer", &self.send_buffer)
            .field("write_buffer", &self.write_buffer)
            .field("take_over", &self.take_over.is_some())
            .field("head_timeout", &self.head_timeout())
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Serves `router` on `listener` until `shutdown`, then waits up to `drain` for open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    drain: Duration,
    options: ConnectionOptions,
) {
    let connections = TaskTracker::new();
    // A permit per open connection, held by its task: a flood of idle sockets cannot take every
    // file descriptor of the process.
    let cap = connection_cap(options.max_connections);
    tracing::info!(max_connections = cap, "accepting connections");
    let open = Arc::new(Semaphore::new(cap));
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.reset();
                accepted
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, longer each time, instead of spinning.
                let wait = backoff.next(&e);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: MAX_CONNECTIONS are open");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        if let Some(bytes) = options.send_buffer {
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(bytes);
        }
        let cut = CancellationToken::new();
        let router = router.clone();
        let shutdown = shutdown.clone();
        let tracker = connections.clone();
        connections.spawn(async move {
            let io = match options.take_over {
                Some(matcher) => {
                    let sniffed = takeover::sniff(
                        stream,
                        peer,
                        router.clone(),
                        cut.clone(),
                        &shutdown,
                        matcher,
                        options.head_timeout(),
                    );
                    match sniffed.await {
                        takeover::Sniffed::Done => return,
                        takeover::Sniffed::TakenOver(stream) => {
                            tracker.spawn(async move {
                                let _permit = permit;
                                stream.run().await
                            });
                            return;
                        }
                        takeover::Sniffed::Hyper(io) => io,
                    }
                }
                None => takeover::Rewind::new(Bytes::new(), stream),
            };
            let _permit = permit;
            // Boxed: the first request's task then keeps no room for hyper's connection state.
            Box::pin(serve_connection(io, peer, router, cut, shutdown, options)).await;
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the drain period; dropping them"
        );
    }
}

/// How long the accept loop waits after a failed accept: 10 ms, doubling to a second while
/// accepts keep failing. Logged once per run of failures, not on every try.
#[derive(Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MOST: Duration = Duration::from_secs(1);

    fn next(&mut self, error: &std::io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(%error, "accept failed; backing off until it succeeds again");
        }
        self.failures = self.failures.saturating_add(1);
        Self::FIRST
            .saturating_mul(1 << self.failures.min(8).saturating_sub(1))
            .min(Self::MOST)
    }

    fn reset(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "accepting again");
            self.failures = 0;
        }
    }
}

/// Serves one connection with hyper until it ends, is cut, or shutdown drains it.
async fn serve_connection(
    io: takeover::Rewind,
    peer: SocketAddr,
    router: Router,
    cut: CancellationToken,
    shutdown: CancellationToken,
    options: ConnectionOptions,
) {
    let service = router.map_request({
        let cut = cut.clone();
        move |mut request: Request<hyper::body::Incoming>| {
            tag(&mut request, peer, &cut);
            request
        }
    });
    // HTTP/1.1 only. Browsers speak HTTP/2 only over TLS, which the operator's proxy ends; the
    // proxy talks HTTP/1.1 to us. Cleartext HTTP/2 (h2c) would be one more protocol whose idle
    // connections need deadlines of their own, for no client that uses it: a client that opens with
    // the HTTP/2 preface gets an error and is closed.
    let mut builder = http1::Builder::new();
    // hyper enforces its header-read timeout only when it has a timer; it also runs while a
    // keep-alive connection waits for its next request, so idle connections are closed after it.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.head_timeout());
    if let Some(bytes) = options.write_buffer {
        builder.max_buf_size(bytes.max(8192));
    }
    let connection = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        () = cut.cancelled() => {
            tracing::debug!(%peer, "connection cut");
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = connection.as_mut() => {}
                () = cut.cancelled() => {}
            }
        }
    }
}

/// What every request carries: the peer's address and the token that closes its connection.
fn tag<B>(request: &mut Request<B>, peer: SocketAddr, cut: &CancellationToken) {
    let extensions = request.extensions_mut();
    extensions.insert(ConnectInfo::<SocketAddr>(peer));
    extensions.insert(ConnectionCut(cut.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_room_for_other_files() {
        assert_eq!(fitting_connections(20_000), 19_000);
        assert_eq!(fitting_connections(1024), 768);
        assert_eq!(fitting_connections(100), 1);
    }

    #[test]
    fn accept_failures_back_off_to_a_second() {
        let mut backoff = AcceptBackoff::default();
        let error = std::io::Error::other("too many open files");
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next(&error)).collect();
        assert_eq!(waits[0], Duration::from_millis(10));
        assert_eq!(waits[1], Duration::from_millis(20));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert_eq!(waits[9], Duration::from_secs(1));
        backoff.reset();
        assert_eq!(backoff.next(&error), Duration::from_millis(10));
    }
}
