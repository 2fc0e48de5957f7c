//! What one anonymous client could do to take a server down, or to turn it against its users:
//! resumes it never reads, connections in a protocol nobody asked for, more connections than the
//! process has files for, framing the web app or injecting script into it, reading tokens from the
//! logs.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use e2e::{Api, SseClient, Stack, eventually, in_both_modes, process::ServerProcess, stack::Mode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const WAIT: Duration = Duration::from_secs(30);

/// The place that serves event streams, in a process of its own (so that its memory is its own),
/// and the chat API that writes to it.
struct Served {
    server: ServerProcess,
    chat: Api,
    dir: PathBuf,
    _stack: Option<Stack>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve(mode: Mode, env: &[(&str, String)]) -> Served {
    let dir = std::env::temp_dir().join(format!("hotchat-hostile-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    match mode {
        Mode::Distributed => {
            let stack = Stack::start(1, 0).await;
            let server = ServerProcess::publish_server(&stack, env).await;
            Served {
                chat: stack.chat(0).clone(),
                server,
                dir,
                _stack: Some(stack),
            }
        }
        Mode::Embedded => {
            let server =
                ServerProcess::embedded_chat_server_with(&dir, env, &dir.join("server.log")).await;
            Served {
                chat: Api::new(server.base.clone()),
                server,
                dir,
                _stack: None,
            }
        }
    }
}

/// Reads `socket` until the server closes it; the bytes read, or `None` if it is still open at
/// `deadline`.
async fn read_to_close(socket: &mut TcpStream, deadline: tokio::time::Instant) -> Option<usize> {
    let mut sink = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut sink)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(total),
            Ok(Ok(n)) => total += n,
        }
    }
}

in_both_modes!(resuming_streams_that_never_read_pin_no_backlog_and_are_cut_off_in_a_quiet_room);
async fn resuming_streams_that_never_read_pin_no_backlog_and_are_cut_off_in_a_quiet_room(
    mode: Mode,
) {
    let stall = Duration::from_secs(3);
    let env = [
        ("SSE_STALL_SECS", stall.as_secs().to_string()),
        // Posted by one user, as fast as it goes (the embedded process's own limits).
        ("USER_POST_RATE", "100000".to_owned()),
        ("USER_POST_BURST", "100000".to_owned()),
    ];
    let served = serve(mode, &env).await;
    let chat = &served.chat;
    let alice = chat.sign_in("alice").await;
    let room = chat.create_room(&alice, "quiet").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = format!("{}/api/rooms/{room}/events", served.server.base);
    let mut first = SseClient::connect(&events, None).await;
    chat.post(&alice, &room, "before").await;
    let cursor = first.next_of("message", WAIT).await.id.unwrap();
    drop(first);
    // 250 texts of 4,000 four-byte characters (the longest allowed): a 4 MB backlog, as 200
    // messages of 20 KB.
    let big = "😀".repeat(4000);
    for i in 0..250 {
        let status = chat.try_post(&alice, &room, &big).await.status();
        assert_eq!(status, 201, "posting big message {i}");
    }
    chat.post(&alice, &room, "last").await;
    eventually(WAIT, "every message to be read by the server", || async {
        let newest = chat.fetch(&room, "limit=1").await;
        let body: serde_json::Value = newest.json().await.ok()?;
        (body["messages"][0]["text"] == "last").then_some(())
    })
    .await;
    let backlog_bytes = 250 * big.len();

    let rss_before = served.server.rss_kib();
    let opened = tokio::time::Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..10 {
        stalled.push(e2e::sse::unread_stream(&served.server.base, &room, Some(&cursor)).await);
    }
    // The room stays quiet. Until they are cut off, what the server holds for them is measured.
    let mut rss_most = served.server.rss_kib();
    let cut_by = opened + stall + Duration::from_secs(3);
    let api = Api::new(served.server.base.clone());
    while api.metric("hotchat_sse_clients_cut_off_total").await < 10.0 {
        assert!(
            tokio::time::Instant::now() < cut_by,
            "10 resuming clients that never read are not cut off within SSE_STALL_SECS ({stall:?}) \
             and a sweep"
        );
        rss_most = rss_most.max(served.server.rss_kib());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for mut socket in stalled {
        let read = read_to_close(&mut socket, tokio::time::Instant::now() + WAIT)
            .await
            .expect("a cut-off client's connection is closed");
        assert!(
            read < backlog_bytes,
            "the client got its whole backlog ({read} bytes): it was not stalled"
        );
    }
    let growth_kib = rss_most.saturating_sub(rss_before);
    eprintln!(
        "{mode:?}: 10 stalled resumes of a {backlog_bytes}-byte backlog: RSS {rss_before} KiB, at \
         most {rss_most} KiB, cut off after {:?}",
        opened.elapsed()
    );
    // Each copying its backlog would be 10 x 4 MB; sharing the frames, the socket buffers and a
    // few pointers each.
    assert!(
        growth_kib < 32 * 1024,
        "10 stalled resumes grew the server by {growth_kib} KiB"
    );
}

in_both_modes!(a_connection_that_opens_http2_or_idles_is_closed_within_the_head_deadline);
async fn a_connection_that_opens_http2_or_idles_is_closed_within_the_head_deadline(mode: Mode) {
    let mut stack = Stack::empty_in(mode).await;
    stack.head_timeout = Duration::from_secs(1);
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    let servers = [stack.chat(0).base.clone(), stack.publishers[0].clone()];
    for base in servers {
        let addr = base.trim_start_matches("http://").to_owned();
        // The HTTP/2 connection preface and an empty SETTINGS frame, then nothing.
        let mut h2c = TcpStream::connect(&addr).await.unwrap();
        h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .unwrap();
        // A keep-alive HTTP/1.1 connection that asks once, then sits idle.
        let mut idle = TcpStream::connect(&addr).await.unwrap();
        idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        assert!(
            read_to_close(&mut h2c, deadline).await.is_some(),
            "{base}: an h2c connection is still open after {:?}",
            started.elapsed()
        );
        let answered = read_to_close(&mut idle, deadline).await;
        assert!(
            answered.is_some_and(|n| n > 0),
            "{base}: an idle keep-alive connection is still open after {:?} ({answered:?})",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_above_the_open_file_limit_is_lowered_and_said_at_start_up() {
    let dir = std::env::temp_dir().join(format!("hotchat-fd-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("server.log");
    let server = ServerProcess::embedded_chat_server_with(
        &dir,
        &[("MAX_CONNECTIONS", "100000000".to_owned())],
        &log,
    )
    .await;
    let said = eventually(WAIT, "the lowered limit in the log", || async {
        let text = std::fs::read_to_string(&log).ok()?;
        text.lines()
            .find(|line| line.contains("MAX_CONNECTIONS is more than the open-file limit"))
            .map(str::to_owned)
    })
    .await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files: u64 = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .expect("the process's open-file limit");
    let lowered: u64 = said
        .split_whitespace()
        .find_map(|field| field.strip_prefix("max_connections="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the lowered value in {said:?}"));
    assert!(
        lowered < open_files,
        "MAX_CONNECTIONS lowered to {lowered}, not below the open-file limit {open_files}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The headers every answer must carry, whatever it is.
fn assert_security_headers(response: &reqwest::Response, what: &str) {
    let headers = response.headers();
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(
            headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{what}: {name}"
        );
    }
}

in_both_modes!(every_answer_of_both_servers_carries_the_browser_security_headers);
async fn every_answer_of_both_servers_carries_the_browser_security_headers(mode: Mode) {
    let stack = Stack::single(mode).await;
    let chat = stack.chat(0);
    let alice = chat.sign_in("alice").await;
    let room = chat.create_room(&alice, "headers").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let publisher = &stack.publishers[0];
    let answers = [
        ("GET", chat.url("/api/rooms")),
        ("GET", chat.url(&format!("/api/rooms/{room}/messages"))),
        ("GET", chat.url("/api/no-such-route")),
        ("POST", chat.url("/api/sessions")),
        ("GET", chat.url("/healthz")),
        ("GET", format!("{publisher}/api/openapi.json")),
        ("GET", format!("{publisher}/readyz")),
        (
            "GET",
            format!("{publisher}/api/rooms/{}/events", uuid::Uuid::nil()),
        ),
    ];
    for (method, url) in answers {
        let response = http
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_security_headers(&response, &format!("{method} {url}"));
    }
    // A stream, on the connection take-over path (the first request of a fresh connection).
    let events = stack.events_url(0, &room);
    let stream = reqwest::Client::new()
        .get(&events)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_security_headers(&stream, &events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_is_served_under_a_strict_csp_that_lets_it_reach_its_streams() {
    let dir = std::env::temp_dir().join(format!("hotchat-csp-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = ServerProcess::embedded_chat_server_with(
        &dir,
        &[(
            "PUBLIC_EVENTS_URL",
            "https://events.example.com:8443/".to_owned(),
        )],
        &dir.join("server.log"),
    )
    .await;
    let index = reqwest::get(format!("{}/", server.base)).await.unwrap();
    assert_eq!(index.status(), 200);
    assert_security_headers(&index, "the web app");
    let csp = index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self' https://events.example.com:8443;",
    ] {
        assert!(csp.contains(directive), "{directive:?} is not in {csp:?}");
    }
    let html = index.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("<style"),
        "inline script or style in index.html: {html}"
    );
    let script = html
        .split('"')
        .find(|part| part.starts_with("/assets/") && part.ends_with(".js"))
        .expect("the app's script")
        .to_owned();
    let js = reqwest::get(format!("{}{script}", server.base))
        .await
        .unwrap();
    assert_security_headers(&js, &script);
    assert!(
        !js.text().await.unwrap().contains("sourceMappingURL"),
        "the served build points at a source map"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_token_is_in_no_log_line_even_at_debug() {
    let dir = std::env::temp_dir().join(format!("hotchat-log-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("server.log");
    let server =
        ServerProcess::embedded_chat_server_with(&dir, &[("RUST_LOG", "debug".to_owned())], &log)
            .await;
    let chat = Api::new(server.base.clone());
    let alice = chat.sign_in("alice").await;
    let room = chat.create_room(&alice, "logged").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = format!(
        "{}/api/rooms/{room}/events?token={}",
        server.base, alice.token
    );
    let mut stream = SseClient::connect(&events, None).await;
    chat.post(&alice, &room, "hello").await;
    stream.next_of("message", WAIT).await;
    drop(stream);
    // The same request again on a reused connection (hyper's path, not the take-over).
    let http = reqwest::Client::new();
    http.get(chat.url("/healthz")).send().await.unwrap();
    let reused = http.get(&events).send().await.unwrap();
    assert_eq!(reused.status(), 200);
    drop(reused);
    let path = format!("/api/rooms/{room}/events");
    let text = eventually(WAIT, "both stream requests in the debug log", || async {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.matches(&path).count() >= 2).then_some(text)
    })
    .await;
    let secret_part = alice.token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(&alice.token) && !text.contains(secret_part),
        "the token is in the log:\n{}",
        text.lines()
            .filter(|line| line.contains(secret_part))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_data_folder_and_its_files_are_its_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("hotchat-modes-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = ServerProcess::embedded_chat_server(&dir).await;
    let chat = Api::new(server.base.clone());
    let alice = chat.sign_in("alice").await;
    let room = chat.create_room(&alice, "private").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    chat.post(&alice, &room, "only for us").await;
    let data = dir.join("data");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    let files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "auth_secret",
        "events.db",
        "events.db-wal",
        "hotchat.db",
        "hotchat.db-wal",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

in_both_modes!(metrics_are_on_the_public_port_only_behind_a_proxy_and_on_metrics_addr_when_set);
async fn metrics_are_on_the_public_port_only_behind_a_proxy_and_on_metrics_addr_when_set(
    mode: Mode,
) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [
        // Empty is unset: the default of the mode.
        ("METRICS_PUBLIC", String::new()),
        ("METRICS_ADDR", format!("127.0.0.1:{port}")),
    ];
    let served = serve(mode, &env).await;
    let public = reqwest::get(format!("{}/metrics", served.server.base))
        .await
        .unwrap();
    match mode {
        // The embedded chat-server's port is the one browsers use.
        Mode::Embedded => {
            assert_eq!(public.status(), 404, "/metrics on the embedded public port");
            let body: serde_json::Value = public.json().await.unwrap();
            assert_eq!(body["error"]["code"], "not_found");
            let doc: serde_json::Value =
                reqwest::get(format!("{}/api/openapi.json", served.server.base))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
            assert!(
                doc["paths"].get("/metrics").is_none(),
                "documented but not served"
            );
        }
        // Behind the proxy, which does not route it: kept where scrapers find it.
        Mode::Distributed => assert_eq!(public.status(), 200, "/metrics on publish-server"),
    }
    let side = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(side.status(), 200, "/metrics on METRICS_ADDR");
    assert!(
        side.text().await.unwrap().contains("hotchat_sse_clients"),
        "the server's own metrics on METRICS_ADDR"
    );
    let other = reqwest::get(format!("http://127.0.0.1:{port}/api/rooms"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "METRICS_ADDR serves /metrics alone");
}

/// Asserts a 429 with `code` and a `Retry-After`.
fn assert_429(response: &reqwest::Response, what: &str) {
    assert_eq!(response.status(), 429, "{what}");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no Retry-After"));
    assert!(retry_after >= 1, "{what}: Retry-After {retry_after}");
}

in_both_modes!(one_address_gets_at_most_its_share_of_event_streams);
async fn one_address_gets_at_most_its_share_of_event_streams(mode: Mode) {
    let mut stack = Stack::empty_in(mode).await;
    stack.sse.max_streams_per_address = 3;
    stack.sse.keepalive = Duration::from_secs(1);
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    let chat = stack.chat(0);
    let alice = chat.sign_in("alice").await;
    let room = chat.create_room(&alice, "fair").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = stack.events_url(0, &room);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(SseClient::connect(&events, None).await);
    }
    let refused = reqwest::get(&events).await.unwrap();
    assert_429(&refused, "a fourth stream from one address");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");

    // The streams that are open go on.
    chat.post(&alice, &room, "still here").await;
    for stream in &mut open {
        assert_eq!(
            stream.next_of("message", WAIT).await.json()["text"],
            "still here"
        );
    }
    // A stream that ends gives its place back.
    open.pop();
    eventually(WAIT, "a place freed by a closed stream", || async {
        let response = reqwest::get(&events).await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
}

in_both_modes!(one_address_creating_rooms_fast_is_refused_whoever_signs_in);
async fn one_address_creating_rooms_fast_is_refused_whoever_signs_in(mode: Mode) {
    let mut stack = Stack::empty_in(mode).await;
    stack.room_limits = chat_server::rate_limit::RoomLimits { rate: 1, burst: 3 };
    stack.add_chat_server().await;
    let chat = stack.chat(0);
    let alice = chat.sign_in("alice").await;
    let bob = chat.sign_in("bob").await;
    for i in 0..3 {
        chat.create_room(&alice, &format!("room {i}")).await;
    }
    for who in [&alice, &bob] {
        let response = chat
            .http
            .post(chat.url("/api/rooms"))
            .bearer_auth(&who.token)
            .json(&serde_json::json!({"name": "one too many"}))
            .send()
            .await
            .unwrap();
        assert_429(&response, "a fourth room from one address");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    }
    let listed: serde_json::Value = reqwest::get(chat.url("/api/rooms"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["rooms"].as_array().unwrap().len(), 3, "{listed}");
}

in_both_modes!(toggling_a_reaction_fast_is_refused_per_user_and_message);
async fn toggling_a_reaction_fast_is_refused_per_user_and_message(mode: Mode) {
    let mut stack = Stack::empty_in(mode).await;
    stack.reaction_limits = chat_server::limits::ReactionLimits { rate: 2, burst: 2 };
    stack.add_chat_server().await;
    let chat = stack.chat(0);
    let alice = chat.sign_in("alice").await;
    let bob = chat.sign_in("bob").await;
    let room = chat.create_room(&alice, "reactions").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = chat.post(&alice, &room, "one").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = chat.post(&alice, &room, "two").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = chat.url(&format!("/api/rooms/{room}/messages/{first}/reactions/👍"));
    assert_eq!(chat.react(&alice, &room, &first, "👍", true).await, 202);
    assert_eq!(chat.react(&alice, &room, &first, "👍", false).await, 202);
    let refused = chat
        .http
        .put(&url)
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_429(&refused, "a third toggle within a second");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(
        chat.react(&alice, &room, &second, "👍", true).await,
        202,
        "another message"
    );
    assert_eq!(
        chat.react(&bob, &room, &first, "👍", true).await,
        202,
        "another user"
    );
}

/// `GET /api/rooms` with `query`: the status and body.
async fn rooms_page(chat: &Api, query: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(chat.url(&format!("/api/rooms?{query}")))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

in_both_modes!(the_room_list_comes_in_bounded_pages_that_inserts_do_not_shift);
async fn the_room_list_comes_in_bounded_pages_that_inserts_do_not_shift(mode: Mode) {
    let stack = Stack::single(mode).await;
    let chat = stack.chat(0);
    let alice = chat.sign_in("alice").await;
    let mut created = Vec::new();
    for i in 0..7 {
        let room = chat.create_room(&alice, &format!("room {i}")).await;
        created.push(room["id"].as_str().unwrap().to_owned());
    }
    let (status, all) = rooms_page(chat, "").await;
    assert_eq!(status, 200);
    assert_eq!(all["rooms"].as_array().unwrap().len(), 7, "{all}");
    assert!(
        all["next_cursor"].is_null(),
        "one page holds them all: {all}"
    );

    // Pages of 3, with a room created between the first and the second page.
    let mut seen = Vec::new();
    let mut query = "limit=3".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = rooms_page(chat, &query).await;
        assert_eq!(status, 200, "{page}");
        let rooms = page["rooms"].as_array().unwrap();
        assert!(rooms.len() <= 3, "{page}");
        seen.extend(rooms.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        pages += 1;
        if pages == 1 {
            let late = chat.create_room(&alice, "late").await;
            created.push(late["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=3&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "the pages do not end");
    }
    assert_eq!(
        seen, created,
        "every room once, in creation order, the late one last"
    );
    assert_eq!(pages, 3);

    for bad in [
        "limit=0",
        "limit=101",
        "limit=many",
        "cursor=made-up",
        "limit=3&cursor=1.2",
    ] {
        let (status, body) = rooms_page(chat, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let code = body["error"]["code"].as_str().unwrap();
        assert!(
            code == "invalid_limit" || code == "invalid_cursor",
            "{bad}: {body}"
        );
    }
}
