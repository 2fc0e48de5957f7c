//! The HTTP edge against clients that misbehave on purpose.

use std::time::{Duration, Instant};

use e2e::{Stack, in_both_modes, stack::Mode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends a request head one byte every 200 ms, never finishing it, and returns how long the
/// server kept the connection open.
async fn trickle_until_dropped(base: &str) -> Duration {
    let addr = base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let head = b"GET /api/rooms HTTP/1.1\r\nhost: hotchat\r\nx-slow: ";
    let started = Instant::now();
    let mut answer = [0u8; 512];
    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
        assert!(
            started.elapsed() < HEAD_TIMEOUT * 5,
            "{base}: a trickling client is still connected after {:?}",
            started.elapsed()
        );
        if socket.write_all(&[*byte]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), socket.read(&mut answer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            // An error answer (e.g. 408) may come before the close: keep reading.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    started.elapsed()
}

async fn a_request_head_trickled_byte_by_byte_is_dropped_at_the_head_timeout(mode: Mode) {
    let mut stack = Stack::empty_in(mode).await;
    stack.head_timeout = HEAD_TIMEOUT;
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    let mut bases = vec![stack.chat(0).base.clone()];
    if stack.publishers[0] != bases[0] {
        bases.push(stack.publishers[0].clone());
    }
    for base in &bases {
        let (slow, _) = tokio::join!(trickle_until_dropped(base), async {
            // Meanwhile the server answers everyone else.
            tokio::time::sleep(HEAD_TIMEOUT / 2).await;
            let answer = reqwest::get(format!("{base}/healthz")).await.unwrap();
            assert_eq!(answer.status(), 200);
        });
        eprintln!("{base}: trickling client dropped after {slow:?}");
        assert!(
            slow >= HEAD_TIMEOUT - Duration::from_millis(100),
            "{base}: dropped after {slow:?}, before the head timeout"
        );
        assert!(
            slow < HEAD_TIMEOUT + Duration::from_millis(1500),
            "{base}: dropped only after {slow:?}"
        );
    }
}
in_both_modes!(a_request_head_trickled_byte_by_byte_is_dropped_at_the_head_timeout);
