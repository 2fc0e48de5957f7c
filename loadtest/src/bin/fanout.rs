//! The SSE fan-out benchmark: `fanout --chat URL --publish URL --out DIR [--full]` writes
//! `DIR/fanout.json`. `fanout viral-readers ...` (not for people) is the isolation phases' viral
//! room's readers, started by the benchmark itself (see `loadtest::viral`).

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use loadtest::{
    api::Api,
    fanout::{self, FanoutSpec, PhaseSpec, Targets, ViralRoom},
    hot_push::{self, HotPushSpec},
    idle::{self, IdleSpec},
    isolation::{self, IsolationSpec},
    viral::{self, ReadersArgs},
};

#[derive(Parser)]
#[command(about = "SSE fan-out: subscribers over rooms, stamped messages, post→SSE latency")]
struct Args {
    /// chat-server the messages are posted through.
    #[arg(long)]
    chat: String,
    /// chat-server with hot-room detection on (same topic, the publish-server's Redis prefix): it
    /// makes the hot-push room hot by fetches, and the isolation phases run through it, so their
    /// viral room turns hot by its deliveries. Without it the hot-room push benchmark is left out and
    /// the isolation phases run through `--chat` (whose detection must then be on).
    #[arg(long)]
    chat_on: Option<String>,
    /// publish-server address (host:port) the subscribers connect to.
    #[arg(long)]
    publish: SocketAddr,
    #[arg(long)]
    publish_pid: Option<u32>,
    /// The broker's pid (its CPU is reported beside the publish-server's).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// The publish-server's SSE_MAX_CONNECTIONS (the 100,000-connection step checks it).
    #[arg(long)]
    publish_max_streams: Option<usize>,
    #[arg(long)]
    out: PathBuf,
    /// Longer phases, and 100,000 idle connections.
    #[arg(long)]
    full: bool,
    /// Idle connections of the `--full` step (100,000); given, the step runs without `--full` too
    /// (a size this machine's limits allow, to try the step).
    #[arg(long)]
    idle_connections: Option<usize>,
    /// Only the isolation phases, written to `isolation.json` (`loadtest/run --isolation`, which
    /// compares publish-server builds).
    #[arg(long)]
    isolation_only: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The isolation phases start this binary again, niced, as the viral room's readers.
    if let Some(readers) = ReadersArgs::from_env() {
        return viral::serve(readers).await;
    }
    let args = Args::parse();
    let secs = if args.full { 30.0 } else { 8.0 };
    let targets = Targets {
        chat: Api::new(&args.chat)?,
        publish: Api::new(&format!("http://{}", args.publish))?,
        publish_addr: args.publish,
        publish_pid: args.publish_pid,
        broker_pid: args.broker_pid,
    };
    // Nine other rooms of 100 subscribers, 50 messages a second over them; then a viral room of
    // 1,000 subscribers and 300 messages a second beside them.
    let isolation_spec = IsolationSpec {
        rooms: 9,
        subscribers_per_room: 100,
        rate: 50.0,
        viral: ViralRoom {
            subscribers: 1_000,
            rate: 300.0,
            hot: true,
        },
        secs,
        warmup_messages: 100,
    };
    let isolation_targets = Targets {
        chat: match &args.chat_on {
            Some(url) => Api::new(url)?,
            None => targets.chat.clone(),
        },
        ..targets.clone()
    };
    if args.isolation_only {
        let result = isolation::run(&isolation_targets, &isolation_spec).await?;
        println!("{}", isolation::summary(&result));
        return write_json(&args.out.join("isolation.json"), &result);
    }
    let spec = FanoutSpec {
        rooms: 10,
        // 10 s at phase 1's rate: a broker JVM started for the run compiles its hot paths meanwhile.
        warmup_messages: 1_000,
        phases: vec![
            // The publish-server's fixed cost at phase 1's rate (consumer, projector, hub): what
            // the deliveries of phase 1 cost on top of it is its fan-out work.
            PhaseSpec {
                name: "no subscribers".to_owned(),
                subscribers: 0,
                rate: 100.0,
                posted_rooms: None,
                secs,
                viral: None,
            },
            PhaseSpec {
                name: "1,000 subscribers".to_owned(),
                subscribers: 1_000,
                rate: 100.0,
                posted_rooms: None,
                secs,
                viral: None,
            },
            PhaseSpec {
                name: "10,000 subscribers".to_owned(),
                subscribers: 10_000,
                rate: 50.0,
                posted_rooms: None,
                secs,
                viral: None,
            },
            PhaseSpec {
                name: "viral room".to_owned(),
                subscribers: 10_000,
                rate: 300.0,
                posted_rooms: Some(1),
                secs,
                viral: None,
            },
        ],
    };
    let mut result = fanout::run(&targets, &spec).await?;
    result.isolation = Some(isolation::run(&isolation_targets, &isolation_spec).await?);
    if let Some(chat_on) = &args.chat_on {
        let spec = HotPushSpec {
            subscribers: 1_000,
            rate: 300.0,
            reactions: 1_000.0,
            secs: if args.full { 20.0 } else { 8.0 },
        };
        result.hot_push = Some(hot_push::run(&targets, &Api::new(chat_on)?, &spec).await?);
    }
    // Last: the biggest step, and the one a machine's limits may rule out.
    if args.full || args.idle_connections.is_some() {
        let spec = IdleSpec {
            connections: args.idle_connections.unwrap_or(idle::TARGET_CONNECTIONS),
            max_streams: args.publish_max_streams,
        };
        let idle = idle::run(&targets, &spec).await;
        if let Some(reason) = &idle.not_measured {
            eprintln!(
                "  idle: {} connections not measured: {reason}",
                spec.connections
            );
        }
        result.idle = Some(idle);
    }
    write_json(&args.out.join("fanout.json"), &result)
}

fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}
