//! Runs an Apache Kafka cluster for scripts (tests, the web e2e, benchmarks, local runs) until it is
//! told to stop (SIGTERM or Ctrl-C); then every node is killed and its data removed.
//!
//!   test-kafka [--nodes 3] [--ready-file F] [--pids-file P]   # F: the bootstrap servers, once ready

use std::path::PathBuf;

use clap::Parser;
use test_kafka::{Cluster, Options};

#[derive(Parser)]
#[command(about = "Apache Kafka (KRaft) on free ports of 127.0.0.1, until SIGTERM")]
struct Args {
    /// Nodes, each a broker and a controller.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Maximum heap per node, MiB.
    #[arg(long, default_value_t = 512)]
    heap_mb: u32,
    /// The JVM options of Kafka's start script (G1, full JIT; slower start): for benchmarks.
    #[arg(long)]
    bench: bool,
    /// Written with the bootstrap servers (e.g. `127.0.0.1:40001`) once every node is registered.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Written with the nodes' JVM process ids, one a line, before the ready file.
    #[arg(long)]
    pids_file: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = Cluster::start(Options {
        nodes: args.nodes,
        heap_mb: args.heap_mb,
        quick_start: !args.bench,
    })
    .await?;
    let bootstrap = cluster.bootstrap();
    if let Some(file) = &args.pids_file {
        let pids: Vec<String> = cluster
            .ids()
            .into_iter()
            .filter_map(|id| cluster.pid(id))
            .map(|pid| pid.to_string())
            .collect();
        std::fs::write(file, pids.join("\n") + "\n")?;
    }
    if let Some(file) = &args.ready_file {
        let partial = file.with_extension("partial");
        std::fs::write(&partial, &bootstrap)?;
        std::fs::rename(&partial, file)?;
    }
    eprintln!(
        "Apache Kafka on {bootstrap} (data and logs in {})",
        cluster.dir().display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(cluster);
    Ok(())
}
