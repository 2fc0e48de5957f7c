//! Pieces both hotchat servers agree on.
//!
//! The event envelope is the contract with every consumer of the topic (ours and other teams'), the
//! read model is the contract between the projector that writes it and the fetch API that reads it,
//! and the settings, telemetry and shutdown helpers keep the two binaries configured and stopped the
//! same way. Nothing here knows about HTTP routes or one server's internals.
//!
//! The event contract itself is the `hotchat-events` crate, re-exported here as [`event`] and
//! [`cursor`].

pub use hotchat_events::{cursor, event};

pub mod event_log;
pub mod health;
pub mod http;
pub mod kafka;
pub mod openapi;
pub mod presence;
pub mod private_files;
pub mod readmodel;
pub mod redis_client;
pub mod settings;
pub mod shutdown;
pub mod supervise;
pub mod telemetry;
pub mod tokens;
