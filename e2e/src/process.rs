//! The real binaries as separate processes, for what only a process shows: signals, exit, memory.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use crate::stack::Stack;

pub struct ServerProcess {
    pub base: String,
    child: Child,
}

/// `target/<profile>/<name>`, next to the test binary's `deps/` folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (`cargo build --bins`; scripts/test does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port()
}

impl ServerProcess {
    /// Starts `chat-server` in `dir` with nothing configured but its port: the embedded default.
    pub async fn embedded_chat_server(dir: &std::path::Path) -> Self {
        let mut command = Self::embedded_command(dir);
        command.env("RUST_LOG", "warn");
        Self::start(command, "chat-server", None).await
    }

    /// The same at log level `info`, its log written to `log`.
    pub async fn embedded_chat_server_logging(
        dir: &std::path::Path,
        log: &std::path::Path,
    ) -> Self {
        let mut command = Self::embedded_command(dir);
        command.env("RUST_LOG", "info");
        Self::start(command, "chat-server", Some(log)).await
    }

    /// The embedded default with `env` added, at log level `info`, its log written to `log`.
    pub async fn embedded_chat_server_with(
        dir: &std::path::Path,
        env: &[(&str, String)],
        log: &std::path::Path,
    ) -> Self {
        let mut command = Self::embedded_command(dir);
        command.env("RUST_LOG", "info");
        for (name, value) in env {
            command.env(name, value);
        }
        Self::start(command, "chat-server", Some(log)).await
    }

    fn embedded_command(dir: &std::path::Path) -> Command {
        let mut command = Command::new(binary("chat-server"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHAT_ADDR", format!("127.0.0.1:{}", free_port()))
            // Tests sign many users in from 127.0.0.1.
            .env("SESSION_RATE", "1000000")
            .env("SESSION_BURST", "100000")
            // ...and create their rooms and open their streams from it.
            .env("ROOM_RATE", "1000000")
            .env("ROOM_BURST", "100000")
            .env("SSE_MAX_STREAMS_PER_ADDRESS", "100000")
            // Tests read `/metrics` from the base URL (an empty METRICS_PUBLIC is the default).
            .env("METRICS_PUBLIC", "true")
            .current_dir(dir);
        command
    }

    async fn start(mut command: Command, what: &str, log: Option<&std::path::Path>) -> Self {
        let addr = command
            .as_std()
            .get_envs()
            .find_map(|(name, value)| {
                (name == "CHAT_ADDR" || name == "PUBLISH_ADDR")
                    .then(|| value.map(|v| v.to_string_lossy().into_owned()))
            })
            .flatten()
            .expect("a listen address");
        // The servers log to stdout; with `log`, both streams go to that file.
        let (stdout, stderr) = match log {
            Some(path) => {
                let file = std::fs::File::create(path).expect("log file");
                let copy = file.try_clone().expect("log file handle");
                (Stdio::from(file), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::inherit()),
        };
        let child = command
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let server = Self {
            base: format!("http://{addr}"),
            child,
        };
        let ready = format!("{}/readyz", server.base);
        crate::eventually(
            Duration::from_secs(30),
            &format!("{what} process to be ready"),
            || {
                let ready = ready.clone();
                async move {
                    let response = reqwest::get(&ready).await.ok()?;
                    response.status().is_success().then_some(())
                }
            },
        )
        .await;
        server
    }

    /// Starts `publish-server` for `stack` (same topic, database and projector group) with `env`
    /// added, and waits until it is ready.
    pub async fn publish_server(stack: &Stack, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut command = Command::new(binary("publish-server"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KAFKA_BROKERS", &stack.brokers)
            .env("KAFKA_TOPIC", &stack.topic)
            .env("KAFKA_PARTITIONS", "3")
            .env("DATABASE_URL", &stack.database_url)
            .env("PROJECTOR_GROUP", stack.projector_group())
            .env("PUBLISH_ADDR", format!("127.0.0.1:{port}"))
            // Every test's streams come from 127.0.0.1.
            .env("SSE_MAX_STREAMS_PER_ADDRESS", "100000")
            .env("RUST_LOG", "warn");
        for (name, value) in env {
            command.env(name, value);
        }
        Self::start(command, "publish-server", None).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("process is running")
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits up to `timeout` for the process to exit; its exit status, or None if it did not.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .map(|status| status.expect("wait"))
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}
