//! The event envelope written to the `chat-events` topic.
//!
//! Every record's value is one JSON object:
//! `{"schema_version": 1, "event_id", "type", "room_id", "user", "at", "data"}` and its key is the room
//! id, so all events of one room land on one partition in the order they were acknowledged. The shape
//! is deliberately plain JSON so that another team's consumer can read the topic with any Kafka client.
//! `schema_version` grows only when a change would break such a reader; adding a new `type` does not.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The envelope version this build writes and the newest it can read.
pub const SCHEMA_VERSION: u32 = 1;

/// Who caused an event, as shown to other users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: Uuid,
    pub name: String,
}

/// One event as stored in the topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub schema_version: u32,
    /// Unique per event; consumers deduplicate on it.
    pub event_id: Uuid,
    pub room_id: Uuid,
    pub user: User,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub body: EventBody,
}

/// The `type` and its `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventBody {
    #[serde(rename = "room.created")]
    RoomCreated { name: String },
    #[serde(rename = "message.posted")]
    MessagePosted { message_id: Uuid, text: String },
    #[serde(rename = "reaction.added")]
    ReactionAdded { message_id: Uuid, emoji: String },
    #[serde(rename = "reaction.removed")]
    ReactionRemoved { message_id: Uuid, emoji: String },
    /// The hot-room scheduler switched the room's fetch API (written by the scheduler's leader).
    /// `fetch_interval_ms` is the least time a client should leave between history fetches in
    /// this mode (0: no limit); records written before it existed read as 0.
    ///
    /// `reason` says what made the room hot: its history fetches or its deliveries (messages ×
    /// viewers); absent when it turned normal, and in records written before it existed.
    #[serde(rename = "room.mode_changed")]
    RoomModeChanged {
        mode: RoomMode,
        #[serde(default)]
        fetch_interval_ms: u32,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "known_reason"
        )]
        reason: Option<HotReason>,
    },
    /// The author changed a message's text. `posted_at` is the message's own time, so that a reader
    /// can show the whole message without looking it up.
    #[serde(rename = "message.edited")]
    MessageEdited {
        message_id: Uuid,
        text: String,
        posted_at: DateTime<Utc>,
    },
    /// The author, the room's owner or a moderator removed a message (and with it its reactions).
    #[serde(rename = "message.deleted")]
    MessageDeleted { message_id: Uuid },
    /// The owner or a moderator changed the room's settings. Carries the whole room after the
    /// change, so that a reader (and the SSE `event: room`) needs no lookup.
    #[serde(rename = "room.updated")]
    RoomUpdated {
        name: String,
        owner: User,
        created_at: DateTime<Utc>,
        slow_mode_secs: u32,
    },
    /// The owner made a user a moderator of the room.
    #[serde(rename = "moderator.added")]
    ModeratorAdded { user_id: Uuid },
    #[serde(rename = "moderator.removed")]
    ModeratorRemoved { user_id: Uuid },
    /// The owner or a moderator banned a user from writing in the room until `until` (`None`: until
    /// lifted). A later ban of the same user replaces it.
    #[serde(rename = "user.banned")]
    UserBanned {
        user_id: Uuid,
        until: Option<DateTime<Utc>>,
        reason: String,
    },
    #[serde(rename = "user.unbanned")]
    UserUnbanned { user_id: Uuid },
}

/// A mode change's `reason` if this build knows it; a reason added by a later release reads as
/// none rather than making the whole event unreadable.
fn known_reason<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<HotReason>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(value.and_then(|value| serde_json::from_value(value).ok()))
}

/// What made a room hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HotReason {
    /// Its history fetches per second, cluster-wide (`HOT_FETCH_THRESHOLD`).
    Fetches,
    /// Its deliveries per second: events written × open streams, cluster-wide (`HOT_DELIVERY_THRESHOLD`).
    Deliveries,
}

impl HotReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HotReason::Fetches => "fetches",
            HotReason::Deliveries => "deliveries",
        }
    }
}

/// How a room's history API is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RoomMode {
    /// Every fetch reads the database.
    Normal,
    /// The room is hot: fetches are coalesced, cached and rate-limited per client.
    Throttled,
}

impl RoomMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomMode::Normal => "normal",
            RoomMode::Throttled => "throttled",
        }
    }
}

/// The author of events the service writes by itself (mode changes).
pub fn system_user() -> User {
    User {
        id: Uuid::nil(),
        name: "hotchat".to_owned(),
    }
}

/// Why a record could not be read as an event. Consumers skip such records and count them.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record has no value")]
    Empty,
    #[error("record is not a hotchat event: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("event schema version {0} is newer than this build understands ({SCHEMA_VERSION})")]
    UnsupportedVersion(u32),
    #[error("record key {key:?} does not match the event's room {room_id}")]
    KeyMismatch { key: String, room_id: Uuid },
}

impl Envelope {
    /// A new event happening now, with a fresh id.
    pub fn new(room_id: Uuid, user: User, body: EventBody) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            room_id,
            user,
            // Millisecond precision: what every database and JavaScript keep without rounding.
            at: Utc::now().trunc_subsecs(3),
            body,
        }
    }

    /// The record key: the room id, so one room's events stay on one partition, in order.
    pub fn key(&self) -> String {
        partition_key(self.room_id)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serialises")
    }

    /// Reads a record's value, checking the version and, when given, that the key is the room id.
    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self, DecodeError> {
        let value = value.filter(|v| !v.is_empty()).ok_or(DecodeError::Empty)?;
        let envelope: Envelope = serde_json::from_slice(value)?;
        if envelope.schema_version > SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion(envelope.schema_version));
        }
        if let Some(key) = key
            && key != envelope.key().as_bytes()
        {
            return Err(DecodeError::KeyMismatch {
                key: String::from_utf8_lossy(key).into_owned(),
                room_id: envelope.room_id,
            });
        }
        Ok(envelope)
    }

    /// The `type` field, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self.body {
            EventBody::RoomCreated { .. } => "room.created",
            EventBody::MessagePosted { .. } => "message.posted",
            EventBody::ReactionAdded { .. } => "reaction.added",
            EventBody::ReactionRemoved { .. } => "reaction.removed",
            EventBody::RoomModeChanged { .. } => "room.mode_changed",
            EventBody::MessageEdited { .. } => "message.edited",
            EventBody::MessageDeleted { .. } => "message.deleted",
            EventBody::RoomUpdated { .. } => "room.updated",
            EventBody::ModeratorAdded { .. } => "moderator.added",
            EventBody::ModeratorRemoved { .. } => "moderator.removed",
            EventBody::UserBanned { .. } => "user.banned",
            EventBody::UserUnbanned { .. } => "user.unbanned",
        }
    }
}

/// The Kafka record key for a room.
pub fn partition_key(room_id: Uuid) -> String {
    room_id.hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn alice() -> User {
        User {
            id: Uuid::nil(),
            name: "alice".into(),
        }
    }

    #[test]
    fn envelope_serialises_type_and_data_at_the_top_level() {
        let room = Uuid::now_v7();
        let message_id = Uuid::now_v7();
        let event = Envelope::new(
            room,
            alice(),
            EventBody::MessagePosted {
                message_id,
                text: "hi".into(),
            },
        );
        let json: serde_json::Value = serde_json::from_slice(&event.encode()).unwrap();
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["type"], "message.posted");
        assert_eq!(json["room_id"], room.to_string());
        assert_eq!(json["user"]["name"], "alice");
        assert_eq!(json["data"]["text"], "hi");
        assert_eq!(json["data"]["message_id"], message_id.to_string());
    }

    fn any_uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    /// Any instant from year 1 to year 9999, to the nanosecond (encode must not round it).
    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        const YEAR_1: i64 = -62_135_596_800;
        const YEAR_9999_END: i64 = 253_402_300_799;
        (YEAR_1..=YEAR_9999_END, 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
            DateTime::from_timestamp(secs, nanos).expect("within chrono's range")
        })
    }

    fn any_body() -> impl Strategy<Value = EventBody> {
        // Any Unicode text: quotes, backslashes, control characters and astral planes included.
        let text = any::<String>;
        prop_oneof![
            text().prop_map(|name| EventBody::RoomCreated { name }),
            (any_uuid(), text())
                .prop_map(|(message_id, text)| EventBody::MessagePosted { message_id, text }),
            (any_uuid(), text())
                .prop_map(|(message_id, emoji)| EventBody::ReactionAdded { message_id, emoji }),
            (any_uuid(), text())
                .prop_map(|(message_id, emoji)| EventBody::ReactionRemoved { message_id, emoji }),
            (
                prop_oneof![Just(RoomMode::Normal), Just(RoomMode::Throttled)],
                any::<u32>(),
                prop_oneof![
                    Just(None),
                    Just(Some(HotReason::Fetches)),
                    Just(Some(HotReason::Deliveries))
                ]
            )
                .prop_map(|(mode, fetch_interval_ms, reason)| {
                    EventBody::RoomModeChanged {
                        mode,
                        fetch_interval_ms,
                        reason,
                    }
                }),
            (any_uuid(), text(), any_instant()).prop_map(|(message_id, text, posted_at)| {
                EventBody::MessageEdited {
                    message_id,
                    text,
                    posted_at,
                }
            }),
            any_uuid().prop_map(|message_id| EventBody::MessageDeleted { message_id }),
            (text(), any_uuid(), text(), any_instant(), any::<u32>()).prop_map(
                |(name, owner_id, owner_name, created_at, slow_mode_secs)| EventBody::RoomUpdated {
                    name,
                    owner: User {
                        id: owner_id,
                        name: owner_name
                    },
                    created_at,
                    slow_mode_secs,
                }
            ),
            any_uuid().prop_map(|user_id| EventBody::ModeratorAdded { user_id }),
            any_uuid().prop_map(|user_id| EventBody::ModeratorRemoved { user_id }),
            (any_uuid(), proptest::option::of(any_instant()), text()).prop_map(
                |(user_id, until, reason)| EventBody::UserBanned {
                    user_id,
                    until,
                    reason
                }
            ),
            any_uuid().prop_map(|user_id| EventBody::UserUnbanned { user_id }),
        ]
    }

    prop_compose! {
        fn any_envelope()(
            schema_version in 0..=SCHEMA_VERSION,
            event_id in any_uuid(),
            room_id in any_uuid(),
            user_id in any_uuid(),
            name in any::<String>(),
            at in any_instant(),
            body in any_body(),
        ) -> Envelope {
            Envelope { schema_version, event_id, room_id, user: User { id: user_id, name }, at, body }
        }
    }

    /// The fields of `data` that each known `type` requires.
    const TYPES: [(&str, &[&str]); 12] = [
        ("room.created", &["name"]),
        ("message.posted", &["message_id", "text"]),
        ("reaction.added", &["message_id", "emoji"]),
        ("reaction.removed", &["message_id", "emoji"]),
        ("room.mode_changed", &["mode"]),
        ("message.edited", &["message_id", "text", "posted_at"]),
        ("message.deleted", &["message_id"]),
        (
            "room.updated",
            &["name", "owner", "created_at", "slow_mode_secs"],
        ),
        ("moderator.added", &["user_id"]),
        ("moderator.removed", &["user_id"]),
        // `until` may be absent: an absent Option reads as None (a ban until lifted).
        ("user.banned", &["user_id", "reason"]),
        ("user.unbanned", &["user_id"]),
    ];

    /// A `data` value and the well-typed fields it has: any subset of the fields any type uses,
    /// or something that has none of them right.
    fn any_data() -> impl Strategy<Value = (serde_json::Value, Vec<&'static str>)> {
        let fields = proptest::sample::subsequence(
            vec![
                "name",
                "message_id",
                "text",
                "emoji",
                "mode",
                "posted_at",
                "slow_mode_secs",
                "user_id",
                "reason",
                "owner",
                "created_at",
            ],
            0..=11,
        );
        prop_oneof![
            4 => fields.prop_map(|fields| {
                let object = fields
                    .iter()
                    .map(|&field| {
                        let value = match field {
                            "message_id" | "user_id" => serde_json::json!(Uuid::now_v7()),
                            "mode" => serde_json::json!("throttled"),
                            "posted_at" | "created_at" => {
                                serde_json::json!("2026-11-22T00:00:00.123Z")
                            }
                            "owner" => serde_json::json!({"id": Uuid::now_v7(), "name": "o"}),
                            "slow_mode_secs" => serde_json::json!(30),
                            _ => serde_json::json!("some text"),
                        };
                        (field.to_owned(), value)
                    })
                    .collect::<serde_json::Map<_, _>>();
                (serde_json::Value::Object(object), fields)
            }),
            1 => prop_oneof![
                Just(serde_json::json!(null)),
                Just(serde_json::json!("text")),
                Just(serde_json::json!([1, 2])),
                Just(serde_json::json!({"mode": "hot"})),
                Just(serde_json::json!({"name": 5})),
                Just(serde_json::json!({"message_id": "not-a-uuid", "text": "t", "emoji": "e"})),
            ]
            .prop_map(|data| (data, Vec::new())),
        ]
    }

    proptest! {
        #[test]
        fn decode_returns_exactly_what_encode_wrote(
            event in any_envelope(),
            with_key in any::<bool>(),
        ) {
            let key = event.key();
            let key = with_key.then_some(key.as_bytes());
            let decoded = Envelope::decode(key, Some(&event.encode()));
            prop_assert_eq!(decoded.map_err(|e| e.to_string()), Ok(event));
        }

        #[test]
        fn decode_rejects_a_record_keyed_by_anything_but_its_room_id(
            event in any_envelope(),
            other in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                any_uuid().prop_map(|other| other.hyphenated().to_string().into_bytes()),
            ],
            spelling in 0..4usize,
        ) {
            // Also the room id itself, spelled other than as the partition key.
            let key = match spelling {
                0 | 1 => other,
                2 => event.room_id.hyphenated().to_string().to_uppercase().into_bytes(),
                _ => event.room_id.simple().to_string().into_bytes(),
            };
            prop_assume!(key != event.key().as_bytes());
            match Envelope::decode(Some(&key), Some(&event.encode())) {
                Err(DecodeError::KeyMismatch { key: got, room_id }) => {
                    prop_assert_eq!(got, String::from_utf8_lossy(&key));
                    prop_assert_eq!(room_id, event.room_id);
                }
                other => prop_assert!(false, "key {:?} gave {:?}", key, other),
            }
        }

        #[test]
        fn decode_rejects_every_newer_schema_version(
            mut event in any_envelope(),
            version in prop_oneof![Just(SCHEMA_VERSION + 1), (SCHEMA_VERSION + 1)..=u32::MAX],
        ) {
            event.schema_version = version;
            let decoded = Envelope::decode(Some(event.key().as_bytes()), Some(&event.encode()));
            prop_assert!(
                matches!(decoded, Err(DecodeError::UnsupportedVersion(v)) if v == version),
                "{:?}",
                decoded
            );
        }

        #[test]
        fn a_truncated_record_never_decodes(
            event in any_envelope(),
            cut in any::<proptest::sample::Index>(),
        ) {
            let encoded = event.encode();
            let cut = 1 + cut.index(encoded.len() - 1);
            let decoded = Envelope::decode(None, Some(&encoded[..cut]));
            prop_assert!(matches!(decoded, Err(DecodeError::Malformed(_))), "{:?}", decoded);
        }

        /// What another producer might write: a record decodes exactly when its version is one
        /// this build reads, its `type` is known and its `data` has that type's fields. Fields
        /// this build does not know, in `data` or beside it, are ignored: adding one is not a
        /// breaking change.
        #[test]
        fn decode_accepts_exactly_the_records_this_build_understands(
            version in 0u32..4,
            kind in prop_oneof![
                4 => proptest::sample::select(TYPES.map(|(kind, _)| kind.to_owned()).to_vec()),
                1 => "[a-z._]{0,20}",
            ],
            (data, fields) in any_data(),
            extra in any::<bool>(),
        ) {
            let mut record = serde_json::json!({
                "schema_version": version,
                "event_id": Uuid::now_v7(),
                "room_id": Uuid::now_v7(),
                "user": {"id": Uuid::now_v7(), "name": "n"},
                "at": "2026-11-22T00:00:00.123Z",
                "type": kind,
                "data": data,
            });
            if extra {
                record["added_in_a_later_release"] = serde_json::json!({"x": 1});
            }
            let readable = TYPES
                .iter()
                .find(|(known, _)| *known == kind)
                .is_some_and(|(_, required)| required.iter().all(|f| fields.contains(f)));
            match Envelope::decode(None, Some(record.to_string().as_bytes())) {
                Ok(event) => {
                    prop_assert!(readable && version <= SCHEMA_VERSION, "{} decoded", record);
                    prop_assert_eq!(event.kind(), kind.as_str());
                    prop_assert_eq!(event.schema_version, version);
                }
                Err(DecodeError::UnsupportedVersion(v)) => {
                    prop_assert!(readable && version > SCHEMA_VERSION, "{}: version {}", record, v);
                }
                Err(DecodeError::Malformed(_)) => prop_assert!(!readable, "{} malformed", record),
                Err(other) => prop_assert!(false, "{}: {}", record, other),
            }
        }
    }

    #[test]
    fn decode_rejects_foreign_and_future_records() {
        assert!(matches!(
            Envelope::decode(None, None),
            Err(DecodeError::Empty)
        ));
        assert!(matches!(
            Envelope::decode(None, Some(b"{\"hello\": 1}")),
            Err(DecodeError::Malformed(_))
        ));
        let mut event = Envelope::new(
            Uuid::now_v7(),
            alice(),
            EventBody::RoomCreated { name: "r".into() },
        );
        event.schema_version = SCHEMA_VERSION + 1;
        assert!(matches!(
            Envelope::decode(None, Some(&event.encode())),
            Err(DecodeError::UnsupportedVersion(_))
        ));
        event.schema_version = SCHEMA_VERSION;
        assert!(matches!(
            Envelope::decode(Some(b"another-room"), Some(&event.encode())),
            Err(DecodeError::KeyMismatch { .. })
        ));
    }
}
