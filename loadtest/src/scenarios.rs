//! The goose scenarios: who the simulated users are and what each one does in its loop.
//!
//! - **hot readers**: sign in once (each user its own session, so per-client limits see each user as
//!   a client), then fetch the hot room's history in a closed loop.
//! - **cold readers**: the long tail: signed-in users fetching random cold rooms with a pause
//!   between fetches, a steady background whose size does not follow the hot room's load.
//! - **anonymous readers**: the same hot-room fetches without signing in, so every user is the same
//!   client (one address) to the per-client limit: it shows what intended `429`s cost.
//! - **writers**: sign in once, then post messages to random cold rooms (4 of 5 iterations) and add
//!   a reaction to a random seeded message of a cold room (1 of 5; a message must be in the read
//!   model before it takes reactions, and a just-posted one may not be yet).
//! - **posters**: the writers' posts alone (the write path's throughput in posts a second).
//!
//! Every request names itself (`hot room`, `cold room`, `post message`, `react`, `sign in`): the
//! plans read their metrics by these names.

use std::{sync::Arc, time::Duration};

use goose::prelude::*;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

/// Request names as they appear in goose's metrics.
pub const HOT: &str = "hot room";
pub const COLD: &str = "cold room";
pub const POST: &str = "post message";
pub const REACT: &str = "react";

/// The rooms the scenarios use (made by [`crate::seed`]).
#[derive(Debug, Clone)]
pub struct Target {
    pub hot_room: String,
    pub cold_rooms: Vec<String>,
    /// Seeded messages of the cold rooms: (room, message id).
    pub cold_messages: Vec<(String, String)>,
}

/// How long a cold-room reader pauses between fetches.
pub const COLD_PAUSE: Duration = Duration::from_millis(20);

/// What a signed-in user keeps between iterations.
#[derive(Clone)]
struct Session {
    authorization: String,
    /// Reactions made so far (picks the next emoji).
    reactions: usize,
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

/// Emoji the writers react with, in turn.
const EMOJI: [&str; 4] = ["👍", "🎉", "❤️", "😂"];

/// Signed-in users fetching the hot room in a closed loop.
pub fn hot_readers(target: &Arc<Target>) -> Scenario {
    let hot = hot_path(target);
    scenario!("hot readers")
        .register_transaction(transaction!(sign_in).set_on_start())
        .register_transaction(
            Transaction::new(Arc::new(move |user| {
                let path = hot.clone();
                Box::pin(async move { fetch(user, &path, HOT).await })
            }))
            .set_name(HOT),
        )
}

/// Signed-in users fetching random cold rooms, each pausing [`COLD_PAUSE`] between fetches: a
/// steady background that does not grow with the hot room's load.
pub fn cold_readers(target: &Arc<Target>) -> Result<Scenario, GooseError> {
    let cold = target.clone();
    Ok(scenario!("cold readers")
        .set_wait_time(COLD_PAUSE, COLD_PAUSE)?
        .register_transaction(transaction!(sign_in).set_on_start())
        .register_transaction(
            Transaction::new(Arc::new(move |user| {
                let path = cold_path(&cold);
                Box::pin(async move { fetch(user, &path, COLD).await })
            }))
            .set_name(COLD),
        ))
}

pub fn anonymous_readers(target: &Arc<Target>) -> Scenario {
    let hot = hot_path(target);
    scenario!("anonymous readers").register_transaction(
        Transaction::new(Arc::new(move |user| {
            let path = hot.clone();
            Box::pin(async move { fetch(user, &path, HOT).await })
        }))
        .set_name(HOT),
    )
}

pub fn writers(target: &Arc<Target>) -> Result<Scenario, GooseError> {
    let messages = target.clone();
    Ok(scenario!("writers")
        .register_transaction(transaction!(sign_in).set_on_start())
        .register_transaction(posting(target).set_weight(4)?)
        .register_transaction(
            Transaction::new(Arc::new(move |user| {
                let message = random_cold_message(&messages);
                Box::pin(async move { react(user, message).await })
            }))
            .set_name(REACT),
        ))
}

/// Signed-in users posting messages to random cold rooms in a closed loop: the write path alone.
pub fn posters(target: &Arc<Target>) -> Scenario {
    scenario!("posters")
        .register_transaction(transaction!(sign_in).set_on_start())
        .register_transaction(posting(target))
}

/// A post to a random cold room.
fn posting(target: &Arc<Target>) -> Transaction {
    let rooms = target.clone();
    Transaction::new(Arc::new(move |user| {
        let room = random_cold_room(&rooms);
        Box::pin(async move { post_message(user, room).await })
    }))
    .set_name(POST)
}

fn hot_path(target: &Target) -> String {
    format!("/api/rooms/{}/messages", target.hot_room)
}

fn cold_path(target: &Target) -> String {
    format!("/api/rooms/{}/messages", random_cold_room(target))
}

/// A seeded message of a cold room (already in the read model, so reactions to it are accepted).
fn random_cold_message(target: &Target) -> Option<(String, String)> {
    if target.cold_messages.is_empty() {
        return None;
    }
    let i = rand::rng().random_range(0..target.cold_messages.len());
    target.cold_messages.get(i).cloned()
}

fn random_cold_room(target: &Target) -> String {
    let i = rand::rng().random_range(0..target.cold_rooms.len().max(1));
    target.cold_rooms.get(i).unwrap_or(&target.hot_room).clone()
}

/// The `on_start` of signed-in users: one session per simulated user.
async fn sign_in(user: &mut GooseUser) -> TransactionResult {
    let name = format!("load-{}", user.weighted_users_index);
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/sessions")?
        .json(&json!({ "name": name }));
    let request = GooseRequest::builder()
        .set_request_builder(builder)
        .name(crate::plan::SIGN_IN)
        .expect_status_code(201)
        .build();
    let goose = user.request(request).await?;
    let token: Token = match goose.response {
        Ok(response) => response
            .json()
            .await
            .map_err(|e| format!("sign-in answer: {e}"))?,
        Err(e) => return Err(format!("sign-in failed: {e}").into()),
    };
    user.set_session_data(Session {
        authorization: format!("Bearer {}", token.token),
        reactions: 0,
    });
    Ok(())
}

/// One history fetch; the body is read so the connection goes back to the pool.
async fn fetch(user: &mut GooseUser, path: &str, name: &str) -> TransactionResult {
    let mut builder = user.get_request_builder(&GooseMethod::Get, path)?;
    if let Some(session) = user.get_session_data::<Session>() {
        builder = builder.header("authorization", &session.authorization);
    }
    let request = GooseRequest::builder()
        .set_request_builder(builder)
        .name(name)
        .build();
    let goose = user.request(request).await?;
    if let Ok(response) = goose.response {
        let _ = response.bytes().await;
    }
    Ok(())
}

async fn post_message(user: &mut GooseUser, room: String) -> TransactionResult {
    let Some(session) = user.get_session_data::<Session>() else {
        return Err("not signed in".to_owned().into());
    };
    let text = format!("load test message {}", rand::rng().random::<u32>());
    let builder = user
        .get_request_builder(&GooseMethod::Post, &format!("/api/rooms/{room}/messages"))?
        .header("authorization", &session.authorization)
        .json(&json!({ "text": text }));
    let request = GooseRequest::builder()
        .set_request_builder(builder)
        .name(POST)
        .expect_status_code(201)
        .build();
    let goose = user.request(request).await?;
    if let Ok(response) = goose.response {
        let _ = response.bytes().await;
    }
    Ok(())
}

/// Adds a reaction to `message` (a seeded one): the emoji changes from one reaction to the next.
async fn react(user: &mut GooseUser, message: Option<(String, String)>) -> TransactionResult {
    let Some(session) = user.get_session_data::<Session>() else {
        return Err("not signed in".to_owned().into());
    };
    let Some((room, message)) = message else {
        return Ok(());
    };
    let emoji = EMOJI[session.reactions % EMOJI.len()];
    let path = format!("/api/rooms/{room}/messages/{message}/reactions/{emoji}");
    let builder = user
        .get_request_builder(&GooseMethod::Put, &path)?
        .header("authorization", &session.authorization);
    let request = GooseRequest::builder()
        .set_request_builder(builder)
        .name(REACT)
        .expect_status_code(202)
        .build();
    let goose = user.request(request).await?;
    if let Ok(response) = goose.response {
        let _ = response.bytes().await;
    }
    if let Some(session) = user.get_session_data_mut::<Session>() {
        session.reactions += 1;
    }
    Ok(())
}
