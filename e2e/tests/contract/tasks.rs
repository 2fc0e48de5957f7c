//! A server is only as alive as its critical background tasks (issue "Crates that show the
//! architecture", supervised tasks): when one stops (here made to panic by the test-only
//! `HOTCHAT_TEST_FAIL_TASK`), `/readyz` turns 503 naming `tasks` at once, and the process shuts
//! down and exits non-zero, so an orchestrator restarts it, rather than serving silent streams.

use std::time::Duration;

use e2e::{Stack, process::ServerProcess};
use serde_json::Value;

const DRAIN_MS: u64 = 2_000;

/// Polls `/readyz` until it is not 200; returns that answer's status and body.
async fn readiness_lost(base: &str) -> (u16, Value) {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = http.get(format!("{base}/readyz")).send().await;
        if let Ok(answer) = answer
            && answer.status() != 200
        {
            let status = answer.status().as_u16();
            return (status, answer.json().await.unwrap_or(Value::Null));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still answered 200 (or nothing) 10 s after the task was made to fail"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stops_when_its_task_does(mut server: ServerProcess, task: &str) {
    let (status, body) = readiness_lost(&server.base).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["checks"]["tasks"], "unavailable", "{body}");
    let exit = server
        .wait_exit(Duration::from_millis(3 * DRAIN_MS))
        .await
        .unwrap_or_else(|| panic!("the server still ran after its {task} task stopped"));
    assert!(
        !exit.success(),
        "it exited {exit} after its {task} task stopped"
    );
}

#[tokio::test]
async fn a_publish_server_whose_fan_out_stops_says_so_and_exits() {
    let stack = Stack::empty().await;
    let server = ServerProcess::publish_server(
        &stack,
        &[
            ("HOTCHAT_TEST_FAIL_TASK", "fan-out".to_owned()),
            ("SHUTDOWN_DRAIN_MS", DRAIN_MS.to_string()),
        ],
    )
    .await;
    stops_when_its_task_does(server, "fan-out").await;
}

#[tokio::test]
async fn an_embedded_chat_server_whose_scheduler_stops_says_so_and_exits() {
    let dir = std::env::temp_dir().join(format!("hotchat-tasks-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = ServerProcess::embedded_chat_server_with(
        &dir,
        &[
            ("HOTCHAT_TEST_FAIL_TASK", "hot-room scheduler".to_owned()),
            ("SHUTDOWN_DRAIN_MS", DRAIN_MS.to_string()),
        ],
        &dir.join("server.log"),
    )
    .await;
    stops_when_its_task_does(server, "hot-room scheduler").await;
}
