//! The resume storm: `resume --chat URL --after ADDR [--before ADDR] --out DIR` fills the
//! publish-servers' resume buffers, storms each with clients reconnecting at once with cursors, and
//! writes `DIR/resume.json` and `DIR/resume.md` (see `loadtest::resume`).

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use loadtest::{
    api::Api,
    resume::{self, Server, StormSpec},
};

#[derive(Parser)]
#[command(about = "Resume storm: clients reconnecting at once with cursors, before and after")]
struct Args {
    /// chat-server the fill posts through.
    #[arg(long)]
    chat: String,
    /// The publish-server under test (host:port).
    #[arg(long)]
    after: SocketAddr,
    #[arg(long)]
    after_pid: Option<u32>,
    /// A publish-server to compare with (an older build on the same topic), stormed in turn.
    #[arg(long)]
    before: Option<SocketAddr>,
    #[arg(long)]
    before_pid: Option<u32>,
    /// Rooms the messages and clients are spread over.
    #[arg(long, default_value_t = 1_000)]
    rooms: usize,
    /// Messages posted by the fill: more than the partitions' resume buffers hold (6 × 10,000 by
    /// default), so every buffer is full.
    #[arg(long, default_value_t = 72_000)]
    messages: usize,
    /// Clients per storm.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Messages each resuming client missed.
    #[arg(long, default_value_t = 5)]
    backlog: usize,
    /// Storms per server and mode (the summary quotes medians).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Clients connecting at once at most (each until it has its backlog). Unset: all of them, and
    /// the kernel turns away what its accept queue cannot hold.
    #[arg(long)]
    at_once: Option<usize>,
    #[arg(long)]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = |name: &str, addr: SocketAddr, pid| -> anyhow::Result<Server> {
        Ok(Server {
            name: name.to_owned(),
            addr,
            pid,
            api: Api::new(&format!("http://{addr}"))?,
        })
    };
    let mut servers = Vec::new();
    if let Some(addr) = args.before {
        servers.push(server("before", addr, args.before_pid)?);
    }
    servers.push(server("after", args.after, args.after_pid)?);
    let spec = StormSpec {
        rooms: args.rooms,
        messages: args.messages,
        clients: args.clients,
        backlog: args.backlog,
        rounds: args.rounds,
        at_once: args.at_once,
    };
    let result = resume::run(&Api::new(&args.chat)?, &servers, &spec).await?;
    let markdown = resume::markdown(&result);
    print!("{markdown}");
    for (name, bytes) in [
        ("resume.json", serde_json::to_vec_pretty(&result)?),
        ("resume.md", markdown.into_bytes()),
    ] {
        let path = args.out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
