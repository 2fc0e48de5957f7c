//! Helpers for the contract tests: real servers on free ports against a real broker and PostgreSQL.
//!
//! `scripts/test` starts the broker and exports where the services are. A test that cannot reach
//! one fails with a message naming the variable to set; nothing is skipped silently.

pub mod api;
pub mod broker;
pub mod crowd;
pub mod database;
pub mod process;
pub mod proxy;
pub mod redis_server;
pub mod sse;
pub mod stack;

pub use api::Api;
pub use sse::{SseClient, SseEvent};
pub use stack::Stack;

use std::time::Duration;

/// Logs of the servers under test, when `RUST_LOG` is set (e.g. `RUST_LOG=info,rdkafka=debug`);
/// nextest shows them for failing tests.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The value of a required test variable, or a panic that says how to provide it.
pub fn required_env(name: &str, example: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!(
            "{name} is not set: run the tests with scripts/test, which starts the test services, \
             or set {name} (e.g. {example})"
        )
    })
}
