//! Critical background tasks, watched: the fan-out, the projector, the hot-room scheduler.
//!
//! A server is only as alive as its background tasks: a fan-out that panicked on a poisoned lock
//! would leave every stream open and silent while `/readyz` still said 200. So each critical task
//! runs under one [`Supervisor`]. The first to end before shutdown, or to panic, makes the server
//! unready at once ([`TaskHealth`], which `/readyz` reads); a quarter of `SHUTDOWN_DRAIN_MS` later,
//! long enough for a balancer polling readiness to see it, the server shuts down as on SIGTERM. The
//! run then ends with [`TaskFailed`], the process exits non-zero, and an orchestrator restarts it.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::task::{Id, JoinSet};

use crate::shutdown::CancellationToken;

/// How long after start a task named by `HOTCHAT_TEST_FAIL_TASK` panics.
const TEST_FAILURE_AFTER: Duration = Duration::from_secs(1);

/// Whether every critical task still runs; shared with the readiness check.
#[derive(Debug, Clone, Default)]
pub struct TaskHealth(Arc<AtomicBool>);

impl TaskHealth {
    /// True once a critical task has ended or panicked.
    pub fn failed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn fail(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A critical task that ended before shutdown.
#[derive(Debug, thiserror::Error)]
#[error("the {task} task {how} before shutdown")]
pub struct TaskFailed {
    pub task: &'static str,
    pub how: &'static str,
}

pub struct Supervisor {
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    health: TaskHealth,
    shutdown: CancellationToken,
    /// A task to make fail on purpose (`HOTCHAT_TEST_FAIL_TASK`), for the test that watches the
    /// supervisor act.
    fail: Option<String>,
}

impl Supervisor {
    /// Tasks that run until `shutdown`; a failure is told to `health` and cancels `shutdown`.
    pub fn new(health: TaskHealth, shutdown: CancellationToken, fail: Option<String>) -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            health,
            shutdown,
            fail,
        }
    }

    /// Runs `task`, which must not end before shutdown.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = if self.fail.as_deref() == Some(name) {
            self.tasks.spawn(async move {
                tokio::select! {
                    () = task => {}
                    () = tokio::time::sleep(TEST_FAILURE_AFTER) => {
                        panic!("{name} made to fail (HOTCHAT_TEST_FAIL_TASK)")
                    }
                }
            })
        } else {
            self.tasks.spawn(task)
        };
        self.names.insert(handle.id(), name);
    }

    /// Watches the tasks until shutdown (or until one fails, which starts it a quarter of `drain`
    /// later), then gives them `drain` to end.
    pub async fn run(mut self, drain: Duration) -> Result<(), TaskFailed> {
        let failed = tokio::select! {
            // Shutdown first: tasks end because of it, and that is no failure.
            biased;
            () = self.shutdown.cancelled() => None,
            Some(ended) = self.tasks.join_next_with_id() => {
                let (id, how) = match ended {
                    Ok((id, ())) => (id, "ended"),
                    Err(e) if e.is_panic() => (e.id(), "panicked"),
                    Err(e) => (e.id(), "was cancelled"),
                };
                let task = self.names.get(&id).copied().unwrap_or("unnamed");
                tracing::error!(task, how, "a critical task stopped: not ready, shutting down");
                self.health.fail();
                // Unready first, for a moment: a balancer polling readiness stops sending here
                // before the listener closes.
                tokio::select! {
                    () = self.shutdown.cancelled() => {}
                    () = tokio::time::sleep(drain / 4) => {}
                }
                self.shutdown.cancel();
                Some(TaskFailed { task, how })
            }
        };
        let drained = tokio::time::timeout(drain, async {
            while let Some(ended) = self.tasks.join_next_with_id().await {
                if let Err(e) = ended
                    && e.is_panic()
                {
                    let task = self.names.get(&e.id()).copied().unwrap_or("unnamed");
                    tracing::error!(task, "a task panicked while stopping");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                tasks = self.tasks.len(),
                "tasks still running after the drain; abandoned"
            );
            self.tasks.abort_all();
        }
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_early_fails_the_server_and_starts_its_shutdown() {
        let (health, shutdown) = (TaskHealth::default(), CancellationToken::new());
        let mut tasks = Supervisor::new(health.clone(), shutdown.clone(), None);
        let steady = shutdown.clone();
        tasks.spawn("steady", async move { steady.cancelled().await });
        tasks.spawn("fragile", async {});
        let failed = tasks.run(Duration::from_secs(1)).await.unwrap_err();
        assert_eq!((failed.task, failed.how), ("fragile", "ended"));
        assert!(health.failed());
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn a_panic_is_named() {
        let (health, shutdown) = (TaskHealth::default(), CancellationToken::new());
        let mut tasks = Supervisor::new(health.clone(), shutdown.clone(), Some("doomed".into()));
        let forever = shutdown.clone();
        tasks.spawn("doomed", async move { forever.cancelled().await });
        let failed = tasks.run(Duration::from_secs(1)).await.unwrap_err();
        assert_eq!((failed.task, failed.how), ("doomed", "panicked"));
        assert!(health.failed());
    }

    #[tokio::test]
    async fn a_shutdown_is_not_a_failure_and_waits_for_the_tasks() {
        let (health, shutdown) = (TaskHealth::default(), CancellationToken::new());
        let mut tasks = Supervisor::new(health.clone(), shutdown.clone(), None);
        let stopped = Arc::new(AtomicBool::new(false));
        let (stop, done) = (shutdown.clone(), stopped.clone());
        tasks.spawn("tidy", async move {
            stop.cancelled().await;
            tokio::task::yield_now().await;
            done.store(true, Ordering::Relaxed);
        });
        shutdown.cancel();
        tasks.run(Duration::from_secs(1)).await.unwrap();
        assert!(
            stopped.load(Ordering::Relaxed),
            "the task finished its stop"
        );
        assert!(!health.failed());
    }
}
