//! hyper's reading of a request head: the reference the take-over parser is checked against (by
//! `tests/equivalence.rs` and by the fuzz target, which includes this file).

use std::{convert::Infallible, sync::OnceLock, time::Duration};

use http::{Request, Response};
use hyper::{body::Body, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{io::AsyncWriteExt, runtime::Runtime, sync::mpsc};

/// What hyper made of the first request on a connection that sent `bytes` and then closed.
pub struct HyperRead {
    pub request: Request<()>,
    /// Whether hyper saw a body (or may still: a chunked or sized one).
    pub has_body: bool,
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// The first request hyper's HTTP/1 server reads from `bytes`, or `None` if it refuses them.
pub fn hyper_reads(bytes: &[u8]) -> Option<HyperRead> {
    runtime().block_on(async {
        let (mut client, server) = tokio::io::duplex(bytes.len() + 1024);
        let (seen, mut first) = mpsc::unbounded_channel();
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let has_body = !request.body().is_end_stream();
            let (parts, _) = request.into_parts();
            let _ = seen.send(HyperRead {
                request: Request::from_parts(parts, ()),
                has_body,
            });
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(server), service);
        // The client sends the bytes, closes its half and reads whatever comes back (hyper must be
        // able to write its answer to go on); all in this task, so nothing outlives the call.
        let client = async move {
            if client.write_all(bytes).await.is_ok() && client.shutdown().await.is_ok() {
                let _ = tokio::io::copy(&mut client, &mut tokio::io::sink()).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(connection, client)
        })
        .await;
        first.try_recv().ok()
    })
}
