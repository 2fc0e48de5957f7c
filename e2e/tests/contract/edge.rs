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

/// True when the server closes `socket` within `within` (it reads end of file or an error).
async fn closed_by_server(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, socket.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn connections_over_max_connections_are_closed_at_once_and_served_again_below_it(mode: Mode) {
    const CAP: usize = 4;
    let mut stack = Stack::empty_in(mode).await;
    stack.max_connections = Some(CAP);
    stack.add_chat_server().await;
    let base = stack.chat(0).base.clone();
    let addr = base.trim_start_matches("http://").to_owned();
    // A real client, connected before the flood, keeps its (keep-alive) connection.
    let mut real = TcpStream::connect(&addr).await.unwrap();
    health_check_on(&mut real).await;
    let mut silent = Vec::new();
    for _ in 1..CAP {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    for socket in &mut silent {
        assert!(
            !closed_by_server(socket, Duration::from_millis(100)).await,
            "a connection within the cap stays open"
        );
    }
    for _ in 0..3 {
        let mut over = TcpStream::connect(&addr).await.unwrap();
        assert!(
            closed_by_server(&mut over, Duration::from_secs(2)).await,
            "a connection over the cap is closed at once"
        );
    }
    health_check_on(&mut real).await;
    drop(silent.pop());
    e2e::eventually(
        Duration::from_secs(5),
        "a request to be served again",
        || {
            let url = format!("{base}/healthz");
            async move { reqwest::get(url).await.ok().filter(|r| r.status() == 200) }
        },
    )
    .await;
}
in_both_modes!(connections_over_max_connections_are_closed_at_once_and_served_again_below_it);

/// Asks `/healthz` on `socket` and checks the answer, leaving the connection open (keep-alive).
async fn health_check_on(socket: &mut TcpStream) {
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: hotchat\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = socket.read(&mut answer).await.unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
}

async fn an_idle_keep_alive_connection_is_closed_after_the_head_timeout(mode: Mode) {
    let mut stack = Stack::empty_in(mode).await;
    stack.head_timeout = HEAD_TIMEOUT;
    stack.add_chat_server().await;
    let addr = stack.chat(0).base.trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    // The answer to a first request, then silence on the kept-alive connection.
    health_check_on(&mut socket).await;
    let idle = Instant::now();
    assert!(
        closed_by_server(&mut socket, HEAD_TIMEOUT * 4).await,
        "an idle keep-alive connection stayed open"
    );
    let waited = idle.elapsed();
    eprintln!("idle keep-alive connection closed after {waited:?}");
    assert!(
        waited >= HEAD_TIMEOUT - Duration::from_millis(100),
        "closed after {waited:?}"
    );
}
in_both_modes!(an_idle_keep_alive_connection_is_closed_after_the_head_timeout);

async fn a_stream_on_a_reused_connection_outlives_the_head_timeout(mode: Mode) {
    let mut stack = Stack::empty_in(mode).await;
    stack.head_timeout = HEAD_TIMEOUT;
    stack.sse.keepalive = Duration::from_secs(1);
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    let alice = stack.chat(0).sign_in("alice").await;
    let room = stack.chat(0).create_room(&alice, "long").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let addr = stack.publishers[0].trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    health_check_on(&mut socket).await;
    let mut buf = vec![0u8; 4096];
    // The same connection now carries a stream (hyper serves it: it is not the first request).
    let request = format!("GET /api/rooms/{room}/events HTTP/1.1\r\nhost: hotchat\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    while started.elapsed() < HEAD_TIMEOUT * 3 {
        let n = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf))
            .await
            .expect("keep-alive comments arrive")
            .unwrap();
        assert!(n > 0, "the stream was closed after {:?}", started.elapsed());
    }
}
in_both_modes!(a_stream_on_a_reused_connection_outlives_the_head_timeout);

/// Writes `request` on a fresh connection and returns what the server sent within 1 s (or until it
/// closed the connection).
async fn exchange(addr: &str, request: &[u8]) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    // A server may close before reading everything: what it answered is what counts.
    let _ = socket.write_all(request).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

async fn hostile_requests_are_answered_or_dropped_and_the_server_keeps_serving(mode: Mode) {
    let stack = Stack::single(mode).await;
    let alice = stack.chat(0).sign_in("alice").await;
    let room = stack.chat(0).create_room(&alice, "edge").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The stream server: the publish-server, or the embedded chat-server, both reading first
    // requests themselves (the take-over path).
    let base = stack.publishers[0].clone();
    let addr = base.trim_start_matches("http://").to_owned();
    let events = format!("/api/rooms/{room}/events");

    // A head of 1 MiB: refused (431 or a closed connection), never accepted.
    let huge = format!(
        "GET {events} HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = exchange(&addr, huge.as_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "1 MiB head: {}",
        &answer[..answer.len().min(200)]
    );
    // TLS bytes and garbage: a 400 or a closed connection.
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"\x00\xffnot http\r\n\r\n",
    ] {
        let answer = exchange(&addr, garbage).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "garbage: {answer}"
        );
    }
    // An encoded CR/LF in the path: a JSON 404, no header injected.
    let answer = exchange(
        &addr,
        b"GET /api/rooms/%0d%0aX-Injected:%20yes/events HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "CR/LF path: {answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("\r\nx-injected"),
        "{answer}"
    );
    // A body on a stream request, and a request pipelined behind one: the stream is served (by
    // hyper, which reads those bytes as HTTP says).
    for extra in [
        "content-length: 5\r\n\r\nhello",
        "\r\nGET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
    ] {
        let request = format!("GET {events} HTTP/1.1\r\nhost: x\r\n{extra}");
        let answer = exchange(&addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{extra:?}: {answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: text/event-stream"),
            "{extra:?}: {answer}"
        );
    }
    // The same, on a request that is answered at once (an unknown room): what follows its head is
    // read as HTTP says, so the pipelined request is answered too, on the same connection.
    for extra in ["", "content-length: 5\r\n\r\nhello"] {
        let request = format!(
            "GET /api/rooms/not-a-room/events HTTP/1.1\r\nhost: x\r\n{}{}GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            if extra.is_empty() { "\r\n" } else { "" },
            extra
        );
        let answer = exchange(&addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{extra:?}: {answer}");
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            2,
            "{extra:?}: the pipelined request went unanswered: {answer}"
        );
        assert!(answer.contains("HTTP/1.1 200"), "{extra:?}: {answer}");
    }
    // And everyone else is still served.
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}
in_both_modes!(hostile_requests_are_answered_or_dropped_and_the_server_keeps_serving);
