//! The published document (`GET /api/openapi.json`) against the routes publish-server really serves;
//! the mechanism is chat-server's `tests/openapi.rs`: the router's route table must equal the
//! document's operations, and each documented operation must reach a handler.
//!
//! The read side runs here on the embedded event log and a SQLite read model (the router and its
//! handlers are the same whatever the log): no Kafka needed to check the routes.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use publish_server::{
    audience::Audience,
    metrics::Metrics,
    read_side::ReadSide,
    routes,
    serve::{ConnectionOptions, serve},
    settings::SseSettings,
};
use shared::{
    event_log::EventLog, openapi, readmodel::ReadModel, settings::DatabaseSettings,
    shutdown::CancellationToken,
};

#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let data =
        std::env::temp_dir().join(format!("hotchat-openapi-{}", uuid::Uuid::now_v7().simple()));
    let log = Arc::new(EventLog::open(None, &data).await.unwrap());
    let read_model = ReadModel::open(&DatabaseSettings::default(), &data)
        .await
        .unwrap();
    let read_side = ReadSide::build(
        log,
        read_model,
        &SseSettings::default(),
        "openapi-test",
        Arc::new(Metrics::default()),
        Arc::new(Audience::new(None, true, None, false)),
        shared::supervise::TaskHealth::default(),
    )
    .await
    .unwrap();
    let router = routes::router(read_side.state().clone(), &[], true);
    let served = openapi::route_table(&router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        router,
        stop.clone(),
        Duration::from_secs(1),
        ConnectionOptions::default(),
    ));

    let doc: serde_json::Value = reqwest::get(format!("{base}/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "OpenAPI 3.1, not {version:?}");
    let documented = openapi::operations(&doc);
    let ids: Vec<&str> = documented
        .iter()
        .filter_map(|(method, path)| {
            doc["paths"][path][method.to_lowercase()]["operationId"].as_str()
        })
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        documented.len(),
        "every operation has an operationId"
    );
    assert_eq!(unique.len(), ids.len(), "operationIds are unique: {ids:?}");

    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in /api/openapi.json (register them with routes!(..) and #[utoipa::path]): {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
    let events = doc["paths"]["/api/rooms/{room}/events"]["get"].clone();
    assert!(
        events["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some(),
        "the event stream is documented as text/event-stream: {events}"
    );

    let client = reqwest::Client::new();
    for (method, path) in &documented {
        let url = format!("{base}{}", openapi::concrete(path));
        let response = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                &url,
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        assert!(
            !body.contains("route not found"),
            "{method} {path} is documented but falls through to the not-found fallback"
        );
    }

    stop.cancel();
    server.await.unwrap();
    let _ = std::fs::remove_dir_all(&data);
}
