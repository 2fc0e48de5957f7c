//! Apache Kafka for the tests and the benchmarks.
//!
//! A [`Cluster`] is one KRaft node (combined broker and controller) or several with a static quorum,
//! run by the JDK from the jars `scripts/install-kafka` resolves from Maven Central. Each cluster gets
//! free ports and a fresh directory (re-formatting a used one is fatal for Kafka), a bounded heap per
//! node, and can stop, `kill -9`, freeze (SIGSTOP) and restart single nodes with their data, which is
//! what the fault tests need.
//!
//! No JVM outlives its cluster: dropping the cluster kills every node, and each node is started
//! under `setpriv --pdeathsig KILL`, so the kernel kills it too when the process that started it dies
//! without dropping anything (a test killed by its runner's timeout). The kernel sends that signal
//! when the *thread* that started the node ends, so nodes are started from the caller's thread (a
//! test's, or a runtime worker's, which live as long as the runtime), never from a blocking-pool
//! thread that may retire while the node should run.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use base64::Engine as _;
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
    metadata::Metadata,
};

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of nodes, each a broker and a controller voter: 1 or 3 in practice.
    pub nodes: usize,
    /// Maximum heap of each JVM, in MiB (the JVM's default would be a quarter of the machine).
    pub heap_mb: u32,
    /// Serial GC and C1 only: starts faster, runs slower. For tests; benchmarks get the JVM options
    /// of Kafka's own start script.
    pub quick_start: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 1,
            heap_mb: 512,
            quick_start: true,
        }
    }
}

/// Apache Kafka nodes on free ports of 127.0.0.1. Dropping it kills them and removes their data
/// (kept, with the logs, when a test is failing: the panic message names the directory).
pub struct Cluster {
    dir: PathBuf,
    libs: PathBuf,
    options: Options,
    nodes: Vec<Node>,
}

struct Node {
    id: i32,
    broker_port: u16,
    config: PathBuf,
    log: PathBuf,
    process: Option<Child>,
}

/// How long a node may take to join the cluster after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A node died while the cluster was starting: most often another process took one of its free
/// ports between the moment they were picked and the moment Kafka bound them.
#[derive(Debug)]
struct NodeExited {
    id: i32,
    status: std::process::ExitStatus,
    log: String,
}

impl std::fmt::Display for NodeExited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { id, status, log } = self;
        write!(
            f,
            "Kafka node {id} exited ({status}) while starting; see {log}"
        )
    }
}

impl std::error::Error for NodeExited {}

/// Attempts at starting a cluster whose node died while starting (each on new ports).
const START_ATTEMPTS: usize = 3;

impl Cluster {
    /// Formats and starts `options.nodes` nodes and waits until every broker is registered. A
    /// node that dies while starting (a port lost to another process) makes it start again on new
    /// ports, up to [`START_ATTEMPTS`] times; any other error is returned at once.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_once(options.clone()).await {
                Err(e) if attempt < START_ATTEMPTS && e.downcast_ref::<NodeExited>().is_some() => {
                    eprintln!("{e}; starting the cluster again on new ports");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(options: Options) -> anyhow::Result<Self> {
        anyhow::ensure!(options.nodes >= 1, "a cluster needs at least one node");
        let libs = jars().await?;
        let dir = std::env::temp_dir().join(format!("hotchat-kafka-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ports = free_ports(2 * options.nodes)?;
        let (broker_ports, controller_ports) = ports.split_at(options.nodes);
        let voters = controller_ports
            .iter()
            .enumerate()
            .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, (&broker_port, &controller_port)) in
            broker_ports.iter().zip(controller_ports).enumerate()
        {
            let id = i as i32 + 1;
            let node_dir = dir.join(format!("node-{id}"));
            std::fs::create_dir_all(node_dir.join("data"))?;
            let config = node_dir.join("node.properties");
            let properties = node_properties(
                id,
                broker_port,
                controller_port,
                &voters,
                &node_dir.join("data"),
                options.nodes,
            );
            std::fs::write(&config, properties)?;
            nodes.push(Node {
                id,
                broker_port,
                config,
                log: node_dir.join("kafka.log"),
                process: None,
            });
        }
        let mut cluster = Self {
            dir,
            libs,
            options,
            nodes,
        };
        cluster.format().await?;
        for id in cluster.ids() {
            cluster.spawn(id)?;
        }
        let all = cluster.ids();
        cluster.wait_registered(&all).await?;
        Ok(cluster)
    }

    /// One node, as the tests' shared broker and the benchmarks use.
    pub async fn single() -> anyhow::Result<Self> {
        Self::start(Options::default()).await
    }

    /// Three nodes: topics with replication factor 3 and `min.insync.replicas` 2, as in production.
    pub async fn three() -> anyhow::Result<Self> {
        Self::start(Options {
            nodes: 3,
            ..Options::default()
        })
        .await
    }

    /// The node ids, 1..=N.
    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Bootstrap servers naming every node, e.g. `127.0.0.1:40001,127.0.0.1:40003`.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.broker_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Where this cluster keeps its data and its nodes' logs (`node-N/kafka.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The replication factor and `min.insync.replicas` its topics get by default.
    pub fn replication(&self) -> (i32, i32) {
        if self.nodes.len() >= 3 {
            (3, 2)
        } else {
            (1, 1)
        }
    }

    /// The process id of node `id`'s JVM, while it runs.
    pub fn pid(&self, id: i32) -> Option<u32> {
        self.node(id).process.as_ref().map(Child::id)
    }

    /// Stops node `id` the way an operator does (SIGTERM: controlled shutdown, leadership moved
    /// first) and waits for it to exit.
    pub async fn stop(&mut self, id: i32) -> anyhow::Result<()> {
        self.signal(id, "-CONT");
        self.signal(id, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let node = self.node_mut(id);
            let Some(child) = node.process.as_mut() else {
                return Ok(());
            };
            if child.try_wait()?.is_some() {
                node.process = None;
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("Kafka node {id} did not exit within 60 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills node `id` at once (SIGKILL: a crash, nothing handed over).
    pub fn kill(&mut self, id: i32) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.process.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes node `id` (SIGSTOP): its connections stay open and nothing is answered.
    pub fn pause(&self, id: i32) {
        self.signal(id, "-STOP");
    }

    /// Thaws a frozen node (SIGCONT).
    pub fn resume(&self, id: i32) {
        self.signal(id, "-CONT");
    }

    /// Starts a stopped or killed node again with its data and waits until it is registered.
    pub async fn restart(&mut self, id: i32) -> anyhow::Result<()> {
        if self.node(id).process.is_some() {
            self.stop(id).await?;
        }
        self.spawn(id)?;
        self.wait_registered(&[id]).await
    }

    /// The current leader of `topic`'s `partition`, as the cluster's metadata says (`None` while
    /// it has none).
    pub async fn leader(&self, topic: &str, partition: i32) -> anyhow::Result<Option<i32>> {
        let metadata = self.metadata(Some(topic)).await?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .and_then(|t| t.partitions().iter().find(|p| p.id() == partition))
            .map(|p| p.leader())
            .filter(|&leader| leader >= 0))
    }

    /// Waits until every partition of `topic` has all its replicas in sync (after a node returned).
    pub async fn wait_in_sync(&self, topic: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(metadata) = self.metadata(Some(topic)).await
                && let Some(t) = metadata.topics().iter().find(|t| t.name() == topic)
                && !t.partitions().is_empty()
                && t.partitions()
                    .iter()
                    .all(|p| p.leader() >= 0 && p.isr().len() == p.replicas().len())
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("topic {topic:?} not fully in sync within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn node(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no Kafka node {id}"))
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no Kafka node {id}"))
    }

    fn signal(&self, id: i32, signal: &str) {
        if let Some(pid) = self.pid(id) {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    fn java(&self) -> Command {
        let mut command = if Path::new("/usr/bin/setpriv").exists() {
            let mut c = Command::new("/usr/bin/setpriv");
            c.args(["--pdeathsig", "KILL", "java"]);
            c
        } else {
            Command::new("java")
        };
        let heap = self.options.heap_mb;
        command
            .arg(format!("-Xmx{heap}m"))
            .arg("-Djava.awt.headless=true");
        if self.options.quick_start {
            // Tests: start in a second or two, small and cheap.
            command
                .arg(format!("-Xms{}m", heap.min(256)))
                .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]);
        } else {
            // Benchmarks: the JVM options of Kafka's own start script (kafka-run-class.sh), so
            // that no stop-the-world collection of a test set-up shows up as SSE latency.
            command.arg(format!("-Xms{heap}m")).args([
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:InitiatingHeapOccupancyPercent=35",
                "-XX:+ExplicitGCInvokesConcurrent",
            ]);
        }
        command.arg("-cp").arg(self.libs.join("*"));
        command
    }

    /// Formats every node's storage with one new cluster id, in parallel.
    async fn format(&self) -> anyhow::Result<()> {
        let cluster_id = cluster_id();
        let mut formats = Vec::new();
        for node in &self.nodes {
            let mut command = self.java();
            command
                .args(["kafka.tools.StorageTool", "format", "-t", &cluster_id, "-c"])
                .arg(&node.config)
                .stdout(Stdio::null());
            formats.push((node.id, tokio::process::Command::from(command).output()));
        }
        for (id, format) in formats {
            let output = format.await.context("running Kafka's StorageTool")?;
            if !output.status.success() {
                bail!(
                    "formatting Kafka node {id} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        Ok(())
    }

    fn spawn(&mut self, id: i32) -> anyhow::Result<()> {
        let mut command = self.java();
        let node = self.node(id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        command
            .arg("kafka.Kafka")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .context("starting Kafka: is a JDK installed (`java` on PATH)?")?;
        self.node_mut(id).process = Some(child);
        Ok(())
    }

    /// Waits until the cluster's metadata lists every broker in `ids`.
    async fn wait_registered(&mut self, ids: &[i32]) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            for &id in ids {
                let node = self.node_mut(id);
                if let Some(child) = node.process.as_mut()
                    && let Some(status) = child.try_wait()?
                {
                    node.process = None;
                    return Err(NodeExited {
                        id,
                        status,
                        log: node.log.display().to_string(),
                    }
                    .into());
                }
            }
            if let Ok(metadata) = self.metadata(None).await {
                let registered: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
                if ids.iter().all(|id| registered.contains(id)) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "Kafka nodes {ids:?} not registered within {READY_TIMEOUT:?}; logs in {}",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metadata(&self, topic: Option<&str>) -> anyhow::Result<Metadata> {
        let bootstrap = self.bootstrap();
        let topic = topic.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("log_level", "0")
                .create()?;
            Ok(client.fetch_metadata(topic.as_deref(), Duration::from_secs(2))?)
        })
        .await?
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
        if std::thread::panicking() {
            eprintln!("Kafka's data and logs are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The folder of Kafka's jars: `HOTCHAT_KAFKA_HOME/libs`, else what `scripts/install-kafka` resolved
/// (it resolves them the first time, then only prints where they are).
pub async fn jars() -> anyhow::Result<PathBuf> {
    let home = match std::env::var_os("HOTCHAT_KAFKA_HOME") {
        Some(home) if Path::new(&home).join(".complete").exists() => PathBuf::from(home),
        _ => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-kafka");
            let output = tokio::process::Command::new(&script)
                .stderr(Stdio::inherit())
                .output()
                .await
                .with_context(|| format!("running {}", script.display()))?;
            if !output.status.success() {
                bail!("{} failed ({})", script.display(), output.status);
            }
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
    };
    Ok(home.join("libs"))
}

/// The properties of node `id` of an `n`-node cluster. Internal topics and new topics get the
/// replication of a production cluster when there are three nodes or more (factor 3, two in sync,
/// no unclean elections); one node gets 1 and 1. The same settings are in docker-compose.yml.
fn node_properties(
    id: i32,
    broker_port: u16,
    controller_port: u16,
    voters: &str,
    data: &Path,
    n: usize,
) -> String {
    let (rf, min_isr) = if n >= 3 { (3, 2) } else { (1, 1) };
    let mut p = String::new();
    let mut set = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(p, "{key}={value}");
    };
    set("process.roles", &"broker,controller");
    set("node.id", &id);
    set("controller.quorum.voters", &voters);
    set(
        "listeners",
        &format!("PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}"),
    );
    set(
        "advertised.listeners",
        &format!("PLAINTEXT://127.0.0.1:{broker_port}"),
    );
    set("controller.listener.names", &"CONTROLLER");
    set("inter.broker.listener.name", &"PLAINTEXT");
    set(
        "listener.security.protocol.map",
        &"PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    );
    set("log.dirs", &data.display());
    // Tests create groups all the time: no 3 s wait before the first rebalance.
    set("group.initial.rebalance.delay.ms", &0);
    set("offsets.topic.num.partitions", &1);
    set("transaction.state.log.num.partitions", &1);
    set("offsets.topic.replication.factor", &rf);
    set("transaction.state.log.replication.factor", &rf);
    set("transaction.state.log.min.isr", &min_isr);
    set("share.coordinator.state.topic.replication.factor", &rf);
    set("share.coordinator.state.topic.min.isr", &min_isr);
    set("default.replication.factor", &rf);
    set("min.insync.replicas", &min_isr);
    set("unclean.leader.election.enable", &false);
    p
}

/// A new cluster id: 16 random bytes, base64url without padding, like `StorageTool random-uuid`
/// (which also avoids a leading `-`, read as an option on command lines).
fn cluster_id() -> String {
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// `n` distinct free ports, held open together so that none is handed out twice.
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_nodes_get_production_replication_and_one_node_gets_one() {
        let three = node_properties(2, 1, 2, "1@a:1,2@a:2,3@a:3", Path::new("/d"), 3);
        for line in [
            "node.id=2",
            "default.replication.factor=3",
            "min.insync.replicas=2",
            "offsets.topic.replication.factor=3",
            "unclean.leader.election.enable=false",
            "controller.quorum.voters=1@a:1,2@a:2,3@a:3",
        ] {
            assert!(three.lines().any(|l| l == line), "{line} missing:\n{three}");
        }
        let one = node_properties(1, 1, 2, "1@a:2", Path::new("/d"), 1);
        assert!(one.lines().any(|l| l == "min.insync.replicas=1"), "{one}");
        assert!(
            one.lines()
                .any(|l| l == "offsets.topic.replication.factor=1")
        );
    }

    #[test]
    fn cluster_ids_are_22_url_safe_characters() {
        for _ in 0..100 {
            let id = cluster_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(!id.starts_with('-'));
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
    }
}
