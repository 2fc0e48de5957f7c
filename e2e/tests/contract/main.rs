//! The public contract (PRODUCT.md), tested the way a client uses it: real servers on free ports,
//! a real broker, real PostgreSQL.

// A failed unwrap is a failed test, with its location: exactly what a test should do.
#![allow(clippy::unwrap_used)]

mod api_document;
mod cluster;
mod edge;
mod embedded;
mod faults;
mod fetch;
mod hostile;
mod hot;
mod hot_deliveries;
mod hot_push;
mod keying;
mod live_path;
mod moderation;
mod pipeline;
mod presence;
mod rebuild;
mod retries;
mod security;
mod sse;
mod tasks;
mod tokens;
mod validation;
mod write_side;
