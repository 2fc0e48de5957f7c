//! hotchat's chat-server: the write side and the fetch API.
//!
//! Every change (a room, a message, a reaction) becomes an event appended to the topic; a 2xx is
//! answered only once the broker acknowledged it. Writes are decided on the write model this server
//! keeps from the log ([`write_model`]); history reads come from the read model the projector keeps.

pub mod audience;
pub mod auth;
pub mod commands;
pub mod error;
pub mod hot;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod moderation;
pub mod rate_limit;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod validate;
pub mod write_model;
