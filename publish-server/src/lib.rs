//! hotchat's publish-server: the read side.
//!
//! Two independent readers of the event log run here ([`read_side`]). The **fan-out** reads every
//! partition in every instance (a tail, no shared group: each instance has its own browsers and must
//! see every event) and pushes pre-serialised SSE frames to the room's subscribers. The **projector**
//! shares the partitions with the other instances through one consumer group and writes the read
//! model, committing positions only after the write. chat-server runs the same read side in its own
//! process when its log is the embedded one.

pub mod audience;
pub mod fanout;
pub mod hub;
pub mod live;
pub mod metrics;
pub mod per_address;
pub mod projector;
pub mod read_side;
pub mod routes;
pub mod serve;
pub mod settings;
pub mod startup;
pub mod state;
