//! Where a test's crowd of readers runs: a thread of its own at a lower priority.
//!
//! A test that measures one room's latency beside a crowd in another (a hot or viral room's
//! hundreds of readers) must not measure its own readers: on the test's runtime, the one room's
//! reader would wait behind the crowd's. As the load test's viral readers (`nice -n 15`), the
//! crowd's tasks run on their own worker, below everyone else, so that the servers and the reader
//! being measured get the cores first.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// The crowd's niceness, as the load test's viral readers'.
const NICENESS: i32 = 15;

/// The crowd's runtime, started on first use and kept for the life of the test process.
pub fn handle() -> Handle {
    static CROWD: OnceLock<Runtime> = OnceLock::new();
    CROWD
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("crowd")
                .on_thread_start(|| {
                    let thread = rustix::thread::gettid();
                    rustix::process::setpriority_process(Some(thread), NICENESS)
                        .expect("lowering the crowd's priority");
                })
                .enable_all()
                .build()
                .expect("the crowd's runtime")
        })
        .handle()
        .clone()
}
