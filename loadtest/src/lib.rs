//! hotchat's load tests: where the service saturates, and what hot-room throttling buys.
//!
//! - [`fetch`] runs goose plans ([`scenarios`], stepped by [`plan`]) against chat-servers with
//!   throttling off and on, plus writers and a mix, and finds each plan's saturation point with the
//!   rule in [`saturation`].
//! - [`fanout`] is the SSE benchmark goose cannot do (it does not time streaming bodies): raw
//!   subscribers ([`sse`]) over several rooms, stamped messages, post→SSE latency, and the
//!   publish-server's CPU and memory per connection ([`procstat`], [`prom`]); [`isolation`] runs
//!   its phases with and without a viral room beside other rooms (its readers niced in a process
//!   of their own, [`viral`]), and [`idle`] opens idle connections by the hundred thousand
//!   (`--full`).
//! - [`embedded`] measures the embedded mode (one chat-server, SQLite log and read model, its own
//!   event streams) with the same harnesses: CPU per post paced and at saturation, post→SSE latency.
//! - [`resume`] storms publish-servers with clients reconnecting at once with cursors: the time
//!   until all have their backlog and the server's CPU per resume, before and after a change.
//! - [`report`] and [`chart`] turn the results into `report.json`, `report.md` and `chart.png`.
//!
//! `loadtest/run` starts a local stack and runs the binaries in `src/bin` in order.

pub mod api;
pub mod chart;
pub mod embedded;
pub mod fanout;
pub mod fetch;
pub mod floor;
pub mod hot_push;
pub mod idle;
pub mod isolation;
pub mod plan;
pub mod procstat;
pub mod prom;
pub mod report;
pub mod resume;
pub mod saturation;
pub mod scenarios;
pub mod seed;
pub mod sse;
pub mod stats;
pub mod viral;
