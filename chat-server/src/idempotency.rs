//! Retry-safe writes: the `Idempotency-Key` header on `POST /api/rooms/{room}/messages` and
//! `POST /api/rooms`.
//!
//! A client that got no answer (a dropped connection, a 503 after the broker had in fact taken the
//! record) sends the same request again with the same key, to any chat-server. Two things make the
//! retry safe:
//! - **The event is the same event.** The ids of a keyed write (the event's, and the message's or
//!   room's) are derived from the user, the key and the request's content (UUIDv8 of a SHA-256), and the first
//!   attempt's whole envelope is kept for 24 hours under the user and key ([`KeyStore`]: Redis,
//!   shared by every chat-server; in-process in the embedded mode). A retry appends that same
//!   envelope again if the first attempt's outcome is unknown, and nothing at all if it was
//!   acknowledged. Consumers deduplicate by event id (the projector's `applied_events`, the
//!   fan-out's recent ids), so a record appended twice shows up once: live, in history and after a
//!   rebuild. The answer is built from the kept envelope: same id, same `at`, 201.
//! - **The same key with another body is refused** (422 `idempotency_key_reused`), by comparing a
//!   fingerprint of the request's content.
//!
//! Degraded mode: if the key store cannot be reached within
//! [`shared::redis_client::WRITE_DEADLINE`] (50 ms) the write goes on with the derived ids, so a
//! retry still shows up only once (as long as consumers recognise the repeated event id: the
//! projector always, the fan-out within its window of recent ids), but a reused key with another
//! body is not detected and a retry's `at` is its own.

use std::{sync::Arc, time::Duration};

use axum::http::HeaderMap;
use moka::future::Cache;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::{
    event::Envelope,
    http::IDEMPOTENCY_KEY,
    redis_client::{RedisClient, StoreError, within_write_deadline},
};
use uuid::Uuid;

use crate::error::{ApiError, Refused};

/// How long a key is remembered.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 64;
/// Keys the embedded mode remembers at most (the oldest are forgotten first beyond it).
const LOCAL_CAPACITY: u64 = 200_000;

/// Mixed into every derived id, so that they are hotchat's own (a fixed random UUID).
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_5a7e_2b0d_4c1e_9a53_8e2f_04b7_d1c9);

/// A valid `Idempotency-Key`: 1–64 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The request's key, if it sent one; 400 `invalid_idempotency_key` when it is not valid.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let mut values = headers.get_all(&IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        let invalid = || {
            ApiError::bad_request(
                "invalid_idempotency_key",
                format!(
                    "Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters, sent once"
                ),
            )
        };
        if values.next().is_some() {
            return Err(invalid());
        }
        Self::parse(value.as_bytes()).map(Some).ok_or_else(invalid)
    }

    fn parse(raw: &[u8]) -> Option<Self> {
        let printable = raw.iter().all(|b| (0x20..=0x7e).contains(b));
        (!raw.is_empty() && raw.len() <= MAX_KEY_LEN && printable)
            .then(|| Self(String::from_utf8_lossy(raw).into_owned()))
    }
}

/// What a keyed request asks for, reduced to a digest: two requests with the same key must have
/// the same fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The digest of `parts` (the operation's name first), each length-prefixed so that no two
    /// lists of parts share a digest by concatenation.
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        Self(hash.finalize().into())
    }

    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A write about to be made with a key: its ids are derived from what identifies it.
pub struct Keyed<'a> {
    pub user: Uuid,
    pub key: &'a IdempotencyKey,
    pub fingerprint: Fingerprint,
}

impl Keyed<'_> {
    /// The id of `what` ("event", "message", "room") for this write: the same for every retry.
    pub fn id(&self, what: &str) -> Uuid {
        let digest = Fingerprint::of(&[
            NAMESPACE.as_bytes(),
            what.as_bytes(),
            self.user.as_bytes(),
            &self.fingerprint.0,
            self.key.0.as_bytes(),
        ]);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.0[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

/// What is kept per user and key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    /// The log acknowledged the event: a retry appends nothing.
    acknowledged: bool,
    event: Envelope,
}

/// What to do with a keyed write.
pub struct Write {
    /// The event to append (or already appended): the first attempt's.
    pub event: Envelope,
    /// The log already has it: answer without appending.
    pub acknowledged: bool,
    /// Where to mark it acknowledged, and its fingerprint; `None` when the store could not be
    /// reached.
    slot: Option<(Slot, String)>,
}

/// A user's key.
type Slot = (Uuid, IdempotencyKey);

/// Where keys are remembered.
pub struct KeyStore(Backend);

enum Backend {
    Redis(Arc<RedisClient>),
    Local(Cache<Slot, Record>),
}

impl KeyStore {
    /// Keys in Redis, shared by every chat-server.
    pub fn redis(redis: Arc<RedisClient>) -> Self {
        Self(Backend::Redis(redis))
    }

    /// Keys in this process (the embedded mode).
    pub fn local() -> Self {
        Self(Backend::Local(
            Cache::builder()
                .max_capacity(LOCAL_CAPACITY)
                .time_to_live(KEY_TTL)
                .build(),
        ))
    }

    /// Begins a keyed write of `event` (whose ids came from [`Keyed::id`]). The first attempt keeps
    /// `event`; a retry gets the first attempt's event back; another body with the same key is a
    /// 422.
    pub async fn begin(&self, keyed: &Keyed<'_>, event: Envelope) -> Result<Write, Refused> {
        let fresh = Record {
            fingerprint: keyed.fingerprint.hex(),
            acknowledged: false,
            event,
        };
        let slot = (keyed.user, keyed.key.clone());
        let kept = match within_write_deadline(self.claim(&slot, &fresh)).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(error = %e, "idempotency store unreachable; writing with derived ids only");
                return Ok(Write {
                    event: fresh.event,
                    acknowledged: false,
                    slot: None,
                });
            }
        };
        let Some(kept) = kept else {
            return Ok(Write {
                event: fresh.event,
                acknowledged: false,
                slot: Some((slot, fresh.fingerprint)),
            });
        };
        if kept.fingerprint != fresh.fingerprint {
            return Err(Refused::KeyReused);
        }
        Ok(Write {
            event: kept.event,
            acknowledged: kept.acknowledged,
            slot: Some((slot, kept.fingerprint)),
        })
    }

    /// Notes that the log acknowledged `write`'s event, so later retries append nothing.
    pub async fn acknowledged(&self, write: &Write) {
        let Some((slot, fingerprint)) = &write.slot else {
            return;
        };
        let record = Record {
            fingerprint: fingerprint.clone(),
            acknowledged: true,
            event: write.event.clone(),
        };
        if let Err(e) = within_write_deadline(self.mark(slot, record)).await {
            // A retry will append the same event again: consumers drop the repeat.
            tracing::warn!(error = %e, "could not mark an idempotent write acknowledged");
        }
    }

    /// Keeps `fresh` unless a record exists; returns the existing one.
    async fn claim(&self, slot: &Slot, fresh: &Record) -> Result<Option<Record>, StoreError> {
        match &self.0 {
            Backend::Local(cache) => {
                let entry = cache
                    .entry(slot.clone())
                    .or_insert_with(async { fresh.clone() })
                    .await;
                Ok((!entry.is_fresh()).then(|| entry.into_value()))
            }
            Backend::Redis(redis) => {
                let key = redis_key(redis, slot);
                let value = serde_json::to_string(fresh).expect("a record serialises");
                let mut connection = redis.connection().await?;
                let options = redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::EX(KEY_TTL.as_secs()));
                let set: Option<String> = redis
                    .run(connection.set_options(&key, value, options))
                    .await?;
                if set.is_some() {
                    return Ok(None);
                }
                let kept: Option<String> = redis.run(connection.get(&key)).await?;
                Ok(kept.and_then(|raw| serde_json::from_str(&raw).ok()))
            }
        }
    }

    /// Replaces the record of `slot`, if it is still kept.
    async fn mark(&self, slot: &Slot, record: Record) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Local(cache) => {
                if cache.contains_key(slot) {
                    cache.insert(slot.clone(), record).await;
                }
                Ok(())
            }
            Backend::Redis(redis) => {
                let value = serde_json::to_string(&record).expect("a record serialises");
                let options = redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::XX)
                    .with_expiration(redis::SetExpiry::KEEPTTL);
                let mut connection = redis.connection().await?;
                redis
                    .run(connection.set_options::<_, _, Option<String>>(
                        redis_key(redis, slot),
                        value,
                        options,
                    ))
                    .await
                    .map(|_| ())
            }
        }
    }
}

fn redis_key(redis: &RedisClient, (user, key): &Slot) -> String {
    redis.key(&format!("idempotency:{user}:{}", key.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_64_printable_ascii_characters() {
        assert!(IdempotencyKey::parse(b"a").is_some());
        assert!(IdempotencyKey::parse(b"0192c5e0-8c53 7d2a~!").is_some());
        assert!(IdempotencyKey::parse(&[b'k'; MAX_KEY_LEN]).is_some());
        for bad in [
            &b""[..],
            &[b'k'; MAX_KEY_LEN + 1],
            b"tab\there",
            b"caf\xc3\xa9",
            b"nl\n",
        ] {
            assert!(IdempotencyKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_repeated_header_is_refused() {
        let mut headers = HeaderMap::new();
        headers.append(&IDEMPOTENCY_KEY, "a".parse().unwrap());
        assert!(IdempotencyKey::from_headers(&headers).unwrap().is_some());
        headers.append(&IDEMPOTENCY_KEY, "b".parse().unwrap());
        assert!(IdempotencyKey::from_headers(&headers).is_err());
    }

    #[test]
    fn derived_ids_follow_user_key_content_and_purpose() {
        let key = IdempotencyKey::parse(b"k1").unwrap();
        let other_key = IdempotencyKey::parse(b"k2").unwrap();
        let user = Uuid::now_v7();
        let text = Fingerprint::of(&[b"message", b"room", b"hi"]);
        let keyed = Keyed {
            user,
            key: &key,
            fingerprint: text,
        };
        assert_eq!(keyed.id("event"), keyed.id("event"));
        assert_ne!(keyed.id("event"), keyed.id("message"));
        for other in [
            Keyed {
                user: Uuid::now_v7(),
                key: &key,
                fingerprint: text,
            },
            Keyed {
                user,
                key: &other_key,
                fingerprint: text,
            },
            Keyed {
                user,
                key: &key,
                fingerprint: Fingerprint::of(&[b"message", b"room", b"ho"]),
            },
        ] {
            assert_ne!(keyed.id("event"), other.id("event"));
        }
    }

    #[test]
    fn fingerprints_do_not_collide_by_concatenation() {
        assert_ne!(
            Fingerprint::of(&[b"ab", b"c"]),
            Fingerprint::of(&[b"a", b"bc"])
        );
    }

    fn event(text: &str, keyed: &Keyed<'_>) -> Envelope {
        let mut event = Envelope::new(
            Uuid::nil(),
            shared::event::User {
                id: keyed.user,
                name: "u".into(),
            },
            shared::event::EventBody::MessagePosted {
                message_id: keyed.id("message"),
                text: text.into(),
            },
        );
        event.event_id = keyed.id("event");
        event
    }

    #[tokio::test]
    async fn a_retry_gets_the_first_event_and_another_body_is_refused() {
        let store = KeyStore::local();
        let key = IdempotencyKey::parse(b"k").unwrap();
        let user = Uuid::now_v7();
        let first = Keyed {
            user,
            key: &key,
            fingerprint: Fingerprint::of(&[b"hi"]),
        };
        let write = store.begin(&first, event("hi", &first)).await.unwrap();
        assert!(!write.acknowledged);
        let original = write.event.clone();

        // Unknown outcome: the retry appends the very same event.
        let retry = store.begin(&first, event("hi", &first)).await.unwrap();
        assert_eq!(retry.event, original);
        assert!(!retry.acknowledged);

        store.acknowledged(&write).await;
        let after = store.begin(&first, event("hi", &first)).await.unwrap();
        assert_eq!(after.event, original);
        assert!(
            after.acknowledged,
            "an acknowledged write is not appended again"
        );

        let other = Keyed {
            user,
            key: &key,
            fingerprint: Fingerprint::of(&[b"ho"]),
        };
        let refused = store
            .begin(&other, event("ho", &other))
            .await
            .err()
            .unwrap();
        assert!(matches!(refused, Refused::KeyReused), "{refused:?}");

        let someone_else = Keyed {
            user: Uuid::now_v7(),
            key: &key,
            fingerprint: Fingerprint::of(&[b"ho"]),
        };
        assert!(
            store
                .begin(&someone_else, event("ho", &someone_else))
                .await
                .is_ok(),
            "keys are per user"
        );
    }
}
