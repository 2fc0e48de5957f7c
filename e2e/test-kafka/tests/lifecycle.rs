//! The launcher's promises, on real JVMs: nodes that stop and rejoin, and no JVM left behind,
//! whether the cluster is dropped or its owner is killed outright.

#![allow(clippy::unwrap_used)]

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use test_kafka::Cluster;

fn alive(pid: u32) -> bool {
    // A zombie still answers kill -0; /proc/PID/stat says Z for it.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.split_whitespace().nth(2).is_none_or(|s| s != "Z"))
        .unwrap_or(false)
}

async fn gone_within(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !alive(pid)
}

#[tokio::test]
async fn dropping_a_cluster_kills_its_nodes_and_removes_their_data() {
    let cluster = Cluster::single().await.unwrap();
    let pid = cluster.pid(1).unwrap();
    let dir = cluster.dir().to_owned();
    assert!(alive(pid));
    drop(cluster);
    assert!(
        gone_within(pid, Duration::from_secs(5)).await,
        "JVM {pid} outlived its cluster"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[tokio::test]
async fn a_killed_launcher_takes_its_jvms_with_it() {
    let dir = std::env::temp_dir().join(format!("hotchat-launcher-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ready, pids) = (dir.join("ready"), dir.join("pids"));
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_test-kafka"))
        .arg("--ready-file")
        .arg(&ready)
        .arg("--pids-file")
        .arg(&pids)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new(&ready).exists() {
        assert!(Instant::now() < deadline, "the launcher never got ready");
        assert!(
            launcher.try_wait().unwrap().is_none(),
            "the launcher exited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jvm: u32 = std::fs::read_to_string(&pids)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(jvm));
    launcher.kill().unwrap(); // SIGKILL: no destructor runs
    launcher.wait().unwrap();
    assert!(
        gone_within(jvm, Duration::from_secs(5)).await,
        "JVM {jvm} outlived its SIGKILLed launcher"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_stopped_node_restarts_with_its_data_and_rejoins() {
    let mut cluster = Cluster::three().await.unwrap();
    assert_eq!(cluster.replication(), (3, 2));
    let first = cluster.pid(2).unwrap();
    cluster.stop(2).await.unwrap();
    assert!(cluster.pid(2).is_none());
    assert!(gone_within(first, Duration::from_secs(5)).await);
    let started = Instant::now();
    cluster.restart(2).await.unwrap();
    let second = cluster.pid(2).unwrap();
    assert_ne!(first, second, "a new process");
    // `restart` returns once the cluster's metadata lists the node again.
    eprintln!("node 2 rejoined {:?} after its restart", started.elapsed());
}
