//! hotchat's publish-server: the read side.
//!
//! Two independent consumers of the event topic run here. The **fan-out** consumer reads every
//! partition in every instance (manual assignment, no shared group: each instance has its own browsers
//! and must see every event) and pushes pre-serialised SSE frames to the room's subscribers. The
//! **projector** shares the partitions with the other instances through one consumer group and writes
//! the read model, committing offsets only after the write.

pub mod embedded;
pub mod fanout;
pub mod hub;
pub mod live;
pub mod metrics;
pub mod projector;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
