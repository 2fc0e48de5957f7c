//! hotchat's event contract, for every consumer of the topic (ours and other teams').
//!
//! [`event`] is the envelope each record's value is, as JSON, with its schema version and the room
//! as the record's key; [`cursor`] is the position (`"<partition>-<offset>"`) that SSE ids and
//! `Last-Event-ID` carry. Nothing here talks to a broker, a database or HTTP: a consumer brings its
//! own Kafka client and hands each record's key and value to [`event::Envelope::decode`].
//!
//! ```
//! use hotchat_events::event::{Envelope, EventBody, User};
//! use uuid::Uuid;
//!
//! // What a chat-server appends when someone posts...
//! let room = Uuid::now_v7();
//! let author = User { id: Uuid::now_v7(), name: "Olivia".to_owned() };
//! let body = EventBody::MessagePosted { message_id: Uuid::now_v7(), text: "Doors open".to_owned() };
//! let posted = Envelope::new(room, author, body);
//! let (key, value) = (posted.key(), posted.encode());
//!
//! // ...and what a consumer reads back from the record.
//! let read = Envelope::decode(Some(key.as_bytes()), Some(&value)).expect("a hotchat event");
//! assert_eq!(read.kind(), "message.posted");
//! assert_eq!(read.room_id, room);
//! ```

pub mod cursor;
pub mod event;
