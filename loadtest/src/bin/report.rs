//! Joins a run's results: `report --dir DIR --command "..."` reads `fetch.json`, `fanout.json`,
//! `floor.json`, `embedded.json` (each when present) and `stack.env` from DIR and writes
//! `report.json`, `report.md` and `chart.png` there.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use loadtest::{chart, report};

#[derive(Parser)]
#[command(about = "Writes report.json, report.md and chart.png from a run's results")]
struct Args {
    #[arg(long)]
    dir: PathBuf,
    /// The command that produced the run, quoted in the report.
    #[arg(long, default_value = "loadtest/run")]
    command: String,
    /// When the run started (UTC, RFC 3339); now when not given.
    #[arg(long)]
    started: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fetch = read_json(&args.dir.join("fetch.json"))?;
    let fanout = read_json(&args.dir.join("fanout.json"))?;
    let floor = read_json(&args.dir.join("floor.json"))?;
    let embedded = read_json(&args.dir.join("embedded.json"))?;
    let stack = std::fs::read_to_string(args.dir.join("stack.env"))
        .map(|text| report::parse_env(&text))
        .unwrap_or_default();
    let report = report::Report::new(
        args.started,
        args.command,
        stack,
        fetch,
        fanout,
        floor,
        embedded,
    );

    write(
        &args.dir.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    write(
        &args.dir.join("report.md"),
        report::markdown(&report).as_bytes(),
    )?;
    if let (Some(fanout), Some(floor)) = (&report.fanout, &report.floor) {
        chart::draw_fanout(
            &args.dir.join("fanout.png"),
            &format!(
                "SSE fan-out, every client keeping up: deliveries per CPU-second ({} cores, {})",
                report.machine.cores, report.date
            ),
            &report::floor_lines(fanout, floor),
        )?;
    }
    if let Some(fetch) = &report.fetch {
        chart::draw(
            &args.dir.join("chart.png"),
            &format!(
                "hotchat: throughput and p99 against users ({} cores, {})",
                report.machine.cores, report.date
            ),
            &[
                (&fetch.readers_off, "readers, throttling off"),
                (&fetch.readers_on, "readers, throttling on"),
                (&fetch.writers, "writers"),
                (&fetch.mix, "mix, throttling on"),
            ]
            .into_iter()
            .chain(fetch.posts.as_ref().map(|posts| (posts, "posts only")))
            .collect::<Vec<_>>(),
        )?;
    }
    Ok(())
}

/// `None` when the file is absent (that part of the run did not happen).
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
