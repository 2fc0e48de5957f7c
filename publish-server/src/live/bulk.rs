//! Where big rooms' passes run: worker threads of their own at a lower scheduling priority.
//!
//! A viral room's pass writes to hundreds of sockets; a cold room's frame is one write. When the
//! cores are short (the moment a room goes viral), the kernel should run the cold room's write
//! first and give the viral room whatever is left, not share the cores evenly between them. Tokio
//! has no task priorities, so the big rooms' passes get threads of their own (one per core) at
//! [`NICENESS`], and the kernel does the rest: while nothing else wants the cores they run at full
//! speed, and the fan-out, small rooms' writes and requests preempt them whenever they wake.
//! A reader that fell behind catches up here too ([`run`]): its backlog is its own, not a reason to
//! hold up anyone else's live frames.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio_util::task::AbortOnDropHandle;

/// How much lower the bulk threads' priority is than the server's own (Unix niceness: 10 gives a
/// thread about a tenth of the CPU a thread of niceness 0 gets when both want it).
const NICENESS: i32 = 10;

/// The bulk runtime, started on first use and kept for the life of the process.
pub fn handle() -> Option<Handle> {
    static BULK: OnceLock<Option<Runtime>> = OnceLock::new();
    BULK.get_or_init(start)
        .as_ref()
        .map(|runtime| runtime.handle().clone())
}

/// Runs `task` on the bulk threads and waits for it (here, if they could not be started).
/// Dropped before it ends, it stops the task.
pub async fn run<T: Send + 'static>(task: impl Future<Output = T> + Send + 'static) -> T {
    let Some(bulk) = handle() else {
        return task.await;
    };
    match AbortOnDropHandle::new(bulk.spawn(task)).await {
        Ok(output) => output,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels it, and this one is never shut down.
            Err(e) => panic!("a bulk task was cancelled: {e}"),
        },
    }
}

fn start() -> Option<Runtime> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let built = Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("hotchat-bulk")
        .on_thread_start(lower_priority)
        .enable_all()
        .build();
    match built {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            // Big rooms' passes then run on the server's own workers, as small rooms' do.
            tracing::warn!(error = %e, "cannot start the bulk writers' threads");
            None
        }
    }
}

/// Lowers the calling thread's priority (on Linux a thread's niceness is its own).
fn lower_priority() {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), NICENESS) {
        tracing::warn!(error = %e, "cannot lower a bulk writer thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_threads_run_at_the_lower_priority_and_the_callers_is_unchanged() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let runtime = handle().expect("the bulk runtime starts");
        let theirs = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    runtime.block_on(async {
                        tokio::spawn(async {
                            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                        })
                        .await
                    })
                })
                .join()
                .unwrap()
        });
        assert_eq!(theirs.unwrap().unwrap(), (before + NICENESS).min(19));
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }

    #[tokio::test]
    async fn a_bulk_task_runs_at_the_lower_priority_and_stops_when_its_waiter_is_dropped() {
        let priority =
            run(async { rustix::process::getpriority_process(Some(rustix::thread::gettid())) })
                .await
                .unwrap();
        let here = rustix::process::getpriority_process(None).unwrap();
        assert_eq!(priority, (here + NICENESS).min(19));

        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let waiter = run(async move {
            let _tell_when_dropped = dropped_tx;
            std::future::pending::<()>().await;
        });
        // Polled once, so that it is spawned, then dropped.
        assert!(futures::poll!(Box::pin(waiter)).is_pending());
        tokio::time::timeout(std::time::Duration::from_secs(5), dropped_rx)
            .await
            .expect("the task was stopped")
            .expect_err("and dropped, not finished");
    }
}
