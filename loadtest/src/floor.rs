//! The kernel's floor for fan-out: what one `write(2)` per delivery costs with nothing else around it.
//!
//! A writer process opens N loopback TCP connections to a reader process (this same binary, started
//! with `--drain`), then writes one frame of the fan-out's size to each socket in turn, with a
//! blocking `write(2)` (`TCP_NODELAY`, as the publish-server's sockets), for a fixed time. The
//! reader only drains. Deliveries per CPU-second of the writer (its `utime + stime`, which includes
//! the kernel's TCP work) is the most a server that writes once per delivery could reach on this
//! machine, against which the publish-server's own figure is a ratio.

use std::{
    io::Write,
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::procstat;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloorResult {
    pub connections: usize,
    pub frame_bytes: usize,
    pub writes: u64,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    pub deliveries_per_cpu_second: f64,
    /// Frames per socket per second when paced; `None`: as fast as the sockets took them.
    #[serde(default)]
    pub rounds_per_sec: Option<f64>,
}

/// Measures the floor at `connections` sockets for about `secs` seconds of writing.
/// `rounds_per_sec`: how many times a second each socket gets a frame; `None` writes as fast as
/// the sockets take them. Paced, a write usually finds its reader asleep and wakes it, as a
/// server's does when its clients keep up; flat out, the reader is mostly awake already.
pub fn measure(
    connections: usize,
    frame_bytes: usize,
    secs: f64,
    rounds_per_sec: Option<f64>,
) -> anyhow::Result<FloorResult> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the floor's listener")?;
    let addr = listener.local_addr()?;
    let mut reader = Reader::spawn(addr, connections)?;
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (socket, _) = listener
            .accept()
            .context("accepting the reader's connection")?;
        socket.set_nodelay(true)?;
        sockets.push(socket);
    }
    let mut frame = vec![b'x'; frame_bytes.max(2)];
    let last = frame.len() - 1;
    frame[last - 1..].copy_from_slice(b"\n\n");

    let me = std::process::id();
    let cpu_before = procstat::sample(me)?.cpu_seconds;
    let started = Instant::now();
    let mut writes = 0u64;
    let mut rounds = 0u32;
    while started.elapsed() < Duration::from_secs_f64(secs) {
        for socket in &mut sockets {
            socket.write_all(&frame).context("writing a frame")?;
        }
        writes += connections as u64;
        rounds += 1;
        if let Some(rate) = rounds_per_sec {
            let next = started + Duration::from_secs_f64(f64::from(rounds) / rate);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = procstat::sample(me)?.cpu_seconds - cpu_before;
    drop(sockets);
    reader.wait()?;
    Ok(FloorResult {
        connections,
        frame_bytes,
        writes,
        cpu_seconds,
        wall_seconds,
        deliveries_per_cpu_second: writes as f64 / cpu_seconds.max(0.01),
        rounds_per_sec,
    })
}

/// The draining process.
struct Reader(Child);

impl Reader {
    fn spawn(addr: SocketAddr, connections: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let child = Command::new(exe)
            .args(["--drain", &addr.to_string()])
            .args(["--connections", &connections.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .context("starting the reader process")?;
        Ok(Self(child))
    }

    fn wait(&mut self) -> anyhow::Result<()> {
        let status = self.0.wait()?;
        anyhow::ensure!(status.success(), "the reader process failed: {status}");
        Ok(())
    }
}

/// The reader process: connects `connections` sockets to `addr` and reads them until they close.
pub async fn drain(addr: SocketAddr, connections: usize) -> anyhow::Result<()> {
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut socket = tokio::net::TcpStream::connect(addr)
            .await
            .context("connecting to the writer")?;
        tasks.push(tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while let Ok(n) = socket.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}
