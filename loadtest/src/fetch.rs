//! The goose plans, in the order they run, and what they write to `fetch.json`.
//!
//! 1. **readers, throttling off** — N hot-room readers plus a fixed background of cold-room readers
//!    against a chat-server whose `HOT_FETCH_THRESHOLD` no load reaches: every fetch is a database
//!    query.
//! 2. **readers, throttling on** — the same against a chat-server with a low threshold, after a
//!    warm-up that makes the room hot: hot-room fetches come from the coalesced cache.
//! 3. **anonymous readers** — one step of hot-room fetches without sessions against a chat-server
//!    of the same hot cluster with the default per-client limit: all users are one client, so
//!    nearly every answer is an intended 429 (what refusing costs).
//! 4. **writers** — posts and reactions (each a broker round trip with `acks=all`).
//! 5. **posts** — posts only: acknowledged posts a second on one chat-server, the write path's
//!    own saturation point.
//! 6. **mix** — hot readers and writers (3 : 1) plus the cold background, throttling on.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};

use crate::{
    plan::{PlanResult, PlanSpec, Server, StepResult, run_plan, run_step},
    scenarios::{self, COLD, HOT, POST, REACT, Target},
    seed::{SeedSpec, seed},
};

/// How big the plans are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchConfig {
    pub reader_users: Vec<usize>,
    pub writer_users: Vec<usize>,
    pub mix_users: Vec<usize>,
    pub step_secs: u64,
    /// Cold-room readers in every reader and mix step, on top of the step's users.
    pub cold_users: usize,
    pub cold_rooms: usize,
    pub hot_messages: usize,
    pub cold_messages: usize,
}

impl FetchConfig {
    /// The default run: about 90 s of load.
    pub fn short() -> Self {
        Self {
            reader_users: vec![1, 2, 4, 8, 16, 32, 64, 128],
            writer_users: vec![4, 16, 64],
            mix_users: vec![8, 32],
            step_secs: 3,
            cold_users: 4,
            cold_rooms: 50,
            hot_messages: 50,
            cold_messages: 5,
        }
    }

    /// `--full`: more and longer steps, a longer cold tail.
    pub fn full() -> Self {
        Self {
            reader_users: vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
            writer_users: vec![4, 8, 16, 32, 64, 128, 256],
            mix_users: vec![8, 16, 32, 64, 128, 256],
            step_secs: 10,
            cold_users: 4,
            cold_rooms: 500,
            hot_messages: 50,
            cold_messages: 5,
        }
    }

    /// The rooms and history the plans need.
    pub fn seed_spec(&self) -> SeedSpec {
        SeedSpec {
            cold_rooms: self.cold_rooms,
            hot_messages: self.hot_messages,
            cold_messages: self.cold_messages,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchReport {
    pub config: FetchConfig,
    pub readers_off: PlanResult,
    pub readers_on: PlanResult,
    /// Hot-room fetches without sessions against the chat-server with the default per-client
    /// limit, at the users of the throttled readers' quoted step.
    pub anonymous: StepResult,
    pub writers: PlanResult,
    /// Posts only (absent from runs before it existed).
    #[serde(default)]
    pub posts: Option<PlanResult>,
    pub mix: PlanResult,
    /// How long the warm-up took to make the room hot.
    pub hot_after_secs: f64,
}

/// The chat-servers the plans run against.
pub struct Servers {
    /// Throttling off: a `HOT_FETCH_THRESHOLD` no load reaches.
    pub off: Server,
    /// Throttling on, with a per-client limit no closed-loop user reaches: measures the cached path.
    pub on: Server,
    /// Throttling on, in the same hot-room cluster as `on`, with the default per-client limit.
    pub limited: Server,
}

pub async fn run(servers: Servers, config: FetchConfig) -> anyhow::Result<FetchReport> {
    let Servers { off, on, limited } = servers;
    eprintln!("seeding rooms and history");
    let target = seed(&off.api, config.seed_spec()).await?;

    let background = config.cold_users;
    let readers = |server: &Server, name: &str, title: &str| {
        let target = target.clone();
        PlanSpec {
            name: name.to_owned(),
            title: title.to_owned(),
            server: server.clone(),
            users: config.reader_users.clone(),
            background_users: background,
            step_secs: config.step_secs,
            focus: vec![HOT.to_owned()],
            scenarios: Box::new(move |users| {
                Ok(vec![
                    scenarios::hot_readers(&target).set_weight(users)?,
                    scenarios::cold_readers(&target)?.set_weight(background)?,
                ])
            }),
        }
    };
    eprintln!("readers, throttling off");
    let readers_off = run_plan(&readers(
        &off,
        "readers-off",
        "Readers, throttling off (every fetch queries the database)",
    ))
    .await?;

    eprintln!("warming the hot room up");
    let hot_after_secs = make_hot(&on, &target.hot_room).await?;
    eprintln!("readers, throttling on (hot after {hot_after_secs:.1} s)");
    let readers_on = run_plan(&readers(
        &on,
        "readers-on",
        "Readers, throttling on (hot room served from the coalesced cache)",
    ))
    .await?;

    let anonymous_users = readers_on.quoted_step().map_or(8, |s| s.users);
    eprintln!("anonymous readers ({anonymous_users} users, one client address, default limit)");
    let anonymous_target = target.clone();
    let anonymous = run_step(
        &PlanSpec {
            name: "anonymous".to_owned(),
            title: "Anonymous readers of the hot room (one client to the per-client limit)"
                .to_owned(),
            server: limited.clone(),
            users: vec![anonymous_users],
            background_users: 0,
            step_secs: config.step_secs,
            focus: vec![HOT.to_owned()],
            scenarios: Box::new(move |_| Ok(vec![scenarios::anonymous_readers(&anonymous_target)])),
        },
        anonymous_users,
    )
    .await?;

    eprintln!("writers");
    let writers_target = target.clone();
    let writers = run_plan(&PlanSpec {
        name: "writers".to_owned(),
        title: "Writers: posts (4) and reactions (1), each acknowledged by the broker".to_owned(),
        server: off.clone(),
        users: config.writer_users.clone(),
        background_users: 0,
        step_secs: config.step_secs,
        focus: vec![POST.to_owned(), REACT.to_owned()],
        scenarios: Box::new(move |users| {
            Ok(vec![
                scenarios::writers(&writers_target)?.set_weight(users)?,
            ])
        }),
    })
    .await?;

    eprintln!("posts");
    let posts = run_plan(&posts_plan(
        &off,
        &target,
        &config,
        "Posts only, each acknowledged by the broker (the write path)",
    ))
    .await?;

    eprintln!("mix");
    let mix_target = target.clone();
    let mix = run_plan(&PlanSpec {
        name: "mix".to_owned(),
        title: "Mix: hot readers and writers (3 : 1) plus the cold background, throttling on"
            .to_owned(),
        server: on.clone(),
        users: config.mix_users.clone(),
        background_users: background,
        step_secs: config.step_secs,
        focus: [HOT, COLD, POST, REACT].map(str::to_owned).to_vec(),
        scenarios: Box::new(move |users| {
            let writers = (users / 4).max(1);
            Ok(vec![
                scenarios::hot_readers(&mix_target).set_weight(users - writers)?,
                scenarios::writers(&mix_target)?.set_weight(writers)?,
                scenarios::cold_readers(&mix_target)?.set_weight(background)?,
            ])
        }),
    })
    .await?;

    Ok(FetchReport {
        config,
        readers_off,
        readers_on,
        anonymous,
        writers,
        posts: Some(posts),
        mix,
        hot_after_secs,
    })
}

/// The posts-only plan against `server`: signed-in users posting to random cold rooms of `target`
/// in closed loops, the writers' users per step. The embedded mode runs it too
/// ([`crate::embedded`]).
pub fn posts_plan(
    server: &Server,
    target: &Arc<Target>,
    config: &FetchConfig,
    title: &str,
) -> PlanSpec {
    let target = target.clone();
    PlanSpec {
        name: "posts".to_owned(),
        title: title.to_owned(),
        server: server.clone(),
        users: config.writer_users.clone(),
        background_users: 0,
        step_secs: config.step_secs,
        focus: vec![POST.to_owned()],
        scenarios: Box::new(move |users| Ok(vec![scenarios::posters(&target).set_weight(users)?])),
    }
}

/// Fetches the hot room from a few loops until the server says it is throttled; returns how long
/// that took.
async fn make_hot(server: &Server, room: &str) -> anyhow::Result<f64> {
    let started = tokio::time::Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut loops = Vec::new();
    for _ in 0..8 {
        let (api, room, stopped) = (server.api.clone(), room.to_owned(), stopped.clone());
        loops.push(tokio::spawn(async move {
            while !*stopped.borrow() {
                let _ = api.message_count(&room).await;
            }
        }));
    }
    let result = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mode = server
            .api
            .room_mode(room)
            .await
            .context("reading the room's mode")?;
        if mode == "throttled" {
            break Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > Duration::from_secs(15) {
            break Err(anyhow!("the hot room was not throttled within 15 s"));
        }
    };
    let _ = stop.send(true);
    for task in loops {
        let _ = task.await;
    }
    result
}
