//! The goose plans: `fetch --chat-off URL --chat-on URL --out DIR [--full]` writes `DIR/fetch.json`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use loadtest::{
    api::Api,
    fetch::{self, FetchConfig, Servers},
    plan::Server,
};

#[derive(Parser)]
#[command(about = "Stepped goose plans against chat-servers with hot-room throttling off and on")]
struct Args {
    /// chat-server whose HOT_FETCH_THRESHOLD no load reaches.
    #[arg(long)]
    chat_off: String,
    #[arg(long)]
    chat_off_pid: Option<u32>,
    /// chat-server with a low HOT_FETCH_THRESHOLD.
    #[arg(long)]
    chat_on: String,
    #[arg(long)]
    chat_on_pid: Option<u32>,
    /// chat-server in the same hot-room cluster as --chat-on, with the default per-client limit.
    #[arg(long)]
    chat_limited: String,
    #[arg(long)]
    chat_limited_pid: Option<u32>,
    /// The broker's pid (its CPU is reported beside the chat-server's).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Folder the results go to.
    #[arg(long)]
    out: PathBuf,
    /// Longer plans (several minutes).
    #[arg(long)]
    full: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = |label: &str, url: &str, pid| -> anyhow::Result<Server> {
        Ok(Server {
            label: label.to_owned(),
            api: Api::new(url)?,
            pid,
            broker_pid: args.broker_pid,
        })
    };
    let servers = Servers {
        off: server(
            "chat-server, throttling off",
            &args.chat_off,
            args.chat_off_pid,
        )?,
        on: server(
            "chat-server, throttling on",
            &args.chat_on,
            args.chat_on_pid,
        )?,
        limited: server(
            "chat-server, throttling on, default per-client limit",
            &args.chat_limited,
            args.chat_limited_pid,
        )?,
    };
    let config = if args.full {
        FetchConfig::full()
    } else {
        FetchConfig::short()
    };
    let report = fetch::run(servers, config).await?;
    let path = args.out.join("fetch.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
