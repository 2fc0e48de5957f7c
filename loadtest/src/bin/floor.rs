//! The kernel's floor for fan-out (see `loadtest::floor`): `floor --out DIR` writes
//! `DIR/floor.json`, one measurement per number of connections.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use loadtest::floor;

#[derive(Parser)]
#[command(about = "One blocking write(2) per delivery to N loopback sockets: the fan-out's floor")]
struct Args {
    /// Numbers of connections to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000])]
    connections: Vec<usize>,
    /// Bytes per frame (the fan-out's stamped messages are about this size).
    #[arg(long, default_value_t = 300)]
    frame_bytes: usize,
    /// Seconds of writing per measurement.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Also measure each number of connections paced at this many frames per socket per second
    /// (one rate per number of connections, in the same order): the fan-out phases' own rates.
    #[arg(long, value_delimiter = ',')]
    paced: Vec<f64>,
    #[arg(long)]
    out: Option<PathBuf>,
    /// The reader process: drain `--connections` sockets opened to this address.
    #[arg(long, hide = true)]
    drain: Option<SocketAddr>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(addr) = args.drain {
        let connections = args.connections.first().copied().unwrap_or(0);
        return tokio::runtime::Runtime::new()?.block_on(floor::drain(addr, connections));
    }
    let mut results = Vec::new();
    let flat = args.connections.iter().map(|&n| (n, None));
    let paced = args.connections.iter().zip(&args.paced);
    for (connections, rate) in flat.chain(paced.map(|(&n, &rate)| (n, Some(rate)))) {
        let result = floor::measure(connections, args.frame_bytes, args.secs, rate)?;
        let pace = rate.map_or("flat out".to_owned(), |r| format!("{r}/s per socket"));
        eprintln!(
            "  floor {:>6} connections, {pace}: {:>9.0} deliveries/CPU-s ({} writes, {:.2} CPU s in {:.2} s)",
            result.connections,
            result.deliveries_per_cpu_second,
            result.writes,
            result.cpu_seconds,
            result.wall_seconds,
        );
        results.push(result);
    }
    if let Some(out) = args.out {
        let path = out.join("floor.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&results)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
