//! The embedded mode: `embedded --chat HOST:PORT --chat-pid PID --out DIR [--full]` writes
//! `DIR/embedded.json`.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use loadtest::{
    api::Api,
    embedded::{self, EmbeddedSpec},
    plan::Server,
};

#[derive(Parser)]
#[command(
    about = "The embedded chat-server (no Kafka, PostgreSQL or Redis): CPU per post at 100 posts/s \
             and at saturation, post→SSE latency with 1,000 subscribers"
)]
struct Args {
    /// The embedded chat-server's address (host:port): its API, its event streams and, with
    /// METRICS_PUBLIC=true, its /metrics.
    #[arg(long)]
    chat: SocketAddr,
    #[arg(long)]
    chat_pid: Option<u32>,
    #[arg(long)]
    out: PathBuf,
    /// 30 s phases and the fetch plans' longer steps.
    #[arg(long)]
    full: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = Server {
        label: "chat-server, embedded (SQLite log and read model, no Kafka, PostgreSQL or Redis)"
            .to_owned(),
        api: Api::new(&format!("http://{}", args.chat))?,
        pid: args.chat_pid,
        broker_pid: None,
    };
    let result = embedded::run(&server, args.chat, &EmbeddedSpec::new(args.full)).await?;
    let path = args.out.join("embedded.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&result)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
