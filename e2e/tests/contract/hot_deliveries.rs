//! A room turns hot from its push load alone (PRODUCT.md, "Hot rooms on the push side"; issue "A
//! viral room does not slow the others"): events written × viewers above `HOT_DELIVERY_THRESHOLD`,
//! with nobody fetching its history. Its stream says why (`"reason": "deliveries"`), goes out in
//! batches, and turns normal again after the cool-down; a cold room beside it is never told a mode.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use e2e::{Api, SseClient, Stack, api::Session, eventually, in_both_modes, stack::Mode};

const WAIT: Duration = Duration::from_secs(20);
const VIEWERS: usize = 20;

/// Posts in `room` every `every` until `stop` is set.
fn poster(
    api: Api,
    who: Session,
    room: String,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pace = tokio::time::interval(every);
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            pace.tick().await;
            let _ = api.try_post(&who, &room, &format!("m{i}")).await;
            i += 1;
        }
    })
}

in_both_modes!(a_room_turns_hot_from_its_deliveries_alone_batches_and_turns_normal_again);
async fn a_room_turns_hot_from_its_deliveries_alone_batches_and_turns_normal_again(mode: Mode) {
    let mut stack = Stack::empty_in(mode).await;
    // 20 viewers × 10 messages a second = 200 deliveries a second; the cold room's one viewer and
    // one message a second stay far below.
    stack.hot.delivery_threshold = 100;
    stack.hot.cooldown = Duration::from_secs(2);
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    let api = stack.chat(0).clone();
    let alice = api.sign_in("alice").await;
    let viral = api.create_room(&alice, "viral").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cold = api.create_room(&alice, "cold").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut viewers = Vec::new();
    for i in 0..VIEWERS {
        let viewer = api.sign_in(&format!("viewer {i}")).await;
        let url = format!("{}?token={}", stack.events_url(0, &viral), viewer.token);
        viewers.push(SseClient::connect(&url, None).await);
    }
    let mut cold_stream = SseClient::connect(&stack.events_url(0, &cold), None).await;
    eventually(WAIT, "the viral room's viewers to be counted", || async {
        let (_, room) = api
            .call(
                reqwest::Method::GET,
                &format!("/api/rooms/{viral}"),
                None,
                None,
            )
            .await;
        (room["online"].as_u64() >= Some(VIEWERS as u64)).then_some(())
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let posting = [
        poster(
            api.clone(),
            alice.clone(),
            viral.clone(),
            Duration::from_millis(100),
            stop.clone(),
        ),
        poster(
            api.clone(),
            alice.clone(),
            cold.clone(),
            Duration::from_secs(1),
            stop.clone(),
        ),
    ];
    let throttled = viewers[0].next_of("mode", WAIT).await.json();
    assert_eq!(throttled["mode"], "throttled", "{throttled}");
    assert_eq!(throttled["reason"], "deliveries", "{throttled}");
    assert_eq!(
        api.mode(&viral).await,
        "throttled",
        "its history is throttled too"
    );
    let publisher = Api::new(stack.publishers[0].clone());
    eventually(
        WAIT,
        "the viral room's frames to go out in batches",
        || async {
            let batched = publisher.metric("hotchat_sse_throttled_writes_total").await;
            (batched > 0.0).then_some(())
        },
    )
    .await;

    stop.store(true, Ordering::Relaxed);
    for task in posting {
        task.await.unwrap();
    }
    let normal = viewers[0].next_of("mode", WAIT).await.json();
    assert_eq!(normal["mode"], "normal", "{normal}");
    assert!(normal.get("reason").is_none(), "{normal}");

    // The cold room was told no mode at all: everything it got was messages (and presence).
    let mut kinds = Vec::new();
    while let Some(event) = cold_stream.next(Duration::from_millis(300)).await {
        kinds.push(event.event);
    }
    assert!(
        kinds
            .iter()
            .all(|kind| kind == "message" || kind == "presence"),
        "the cold room got {kinds:?}"
    );
    assert!(
        kinds.iter().any(|kind| kind == "message"),
        "the cold room's messages arrived"
    );
}
