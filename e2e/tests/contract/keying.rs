//! Keyed like every other Kafka client: a room's events land on the partition that Java's default
//! partitioner gives its id, so another team's producer keyed by room id keeps the room's order.

use std::{collections::BTreeSet, path::Path};

use e2e::Stack;

/// The partitions Java's producer would choose for `keys`, asked from Kafka's own Java code.
async fn java_partitions(partitions: i32, keys: &[String]) -> Vec<i32> {
    let jars = test_kafka::jars().await.expect("Kafka's jars");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/JavaPartitioner.java");
    let output = tokio::process::Command::new("java")
        .arg("-cp")
        .arg(jars.join("*"))
        .arg(source)
        .arg(partitions.to_string())
        .args(keys)
        .output()
        .await
        .expect("java runs");
    assert!(
        output.status.success(),
        "JavaPartitioner failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_room_lives_on_the_partition_javas_default_partitioner_gives_its_id() {
    let stack = Stack::start(1, 0).await;
    let api = stack.chat(0);
    let alice = api.sign_in("alice").await;
    for i in 0..12 {
        let room = api.create_room(&alice, &format!("room {i}")).await;
        api.post(&alice, room["id"].as_str().unwrap(), "hello")
            .await;
    }
    let records = stack.records().await;
    assert_eq!(records.len(), 24, "12 rooms created, 12 messages");
    let keys: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.key.clone().expect("a key")).expect("a UTF-8 key"))
        .collect();
    let partitions = stack.kafka().partitions;
    let expected = java_partitions(partitions, &keys).await;
    for ((record, key), java) in records.iter().zip(&keys).zip(&expected) {
        assert_eq!(
            record.cursor.partition, *java,
            "room {key}: hotchat wrote partition {}, Java's partitioner gives {java}",
            record.cursor.partition
        );
    }
    let used: BTreeSet<i32> = expected.iter().copied().collect();
    assert!(used.len() > 1, "the rooms spread over partitions: {used:?}");
}
