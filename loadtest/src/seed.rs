//! Rooms and history for the fetch plans, made through the public API before any measurement.
//!
//! The hot room gets a full default page of messages (50), so a fetch returns what the web app asks
//! for; each cold room gets a few (the writers react to those). Seeding waits until the read model (fed by the projector) shows
//! them, so the plans never measure an empty page.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};

use crate::{api::Api, scenarios::Target};

/// How much history to make.
#[derive(Debug, Clone, Copy)]
pub struct SeedSpec {
    pub cold_rooms: usize,
    pub hot_messages: usize,
    pub cold_messages: usize,
}

/// Creates the rooms and their history through `api`; returns them once the history API shows it.
pub async fn seed(api: &Api, spec: SeedSpec) -> anyhow::Result<Arc<Target>> {
    let token = api
        .sign_in("seeder")
        .await
        .context("signing in the seeder")?;
    let hot_room = api.create_room(&token, "hot room").await?;
    let cold_rooms: Vec<String> = futures::stream::iter(0..spec.cold_rooms)
        .map(|i| {
            let (api, token) = (api.clone(), token.clone());
            async move { api.create_room(&token, &format!("cold room {i}")).await }
        })
        .buffer_unordered(16)
        .try_collect()
        .await
        .context("creating the cold rooms")?;

    let posts = (0..spec.hot_messages).map(|i| (hot_room.clone(), i)).chain(
        cold_rooms
            .iter()
            .flat_map(|room| (0..spec.cold_messages).map(move |i| (room.clone(), i))),
    );
    let posted: Vec<(String, String)> = futures::stream::iter(posts)
        .map(|(room, i)| {
            let (api, token) = (api.clone(), token.clone());
            async move {
                let text = format!(
                    "seed message {i}: a line of history about the size of a chat message, {}",
                    "with some words in it"
                );
                let id = api.post_message(&token, &room, &text).await?;
                anyhow::Ok((room, id))
            }
        })
        .buffer_unordered(32)
        .try_collect()
        .await
        .context("seeding messages")?;
    let cold_messages = posted
        .into_iter()
        .filter(|(room, _)| *room != hot_room)
        .collect();

    let last_cold = cold_rooms.last().cloned();
    wait_for(api, &hot_room, spec.hot_messages).await?;
    if let Some(room) = last_cold {
        wait_for(api, &room, spec.cold_messages).await?;
    }
    Ok(Arc::new(Target {
        hot_room,
        cold_rooms,
        cold_messages,
    }))
}

/// Waits until the history of `room` holds `count` messages.
async fn wait_for(api: &Api, room: &str, count: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if api.message_count(room).await? >= count {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the read model did not show {count} messages of room {room} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
