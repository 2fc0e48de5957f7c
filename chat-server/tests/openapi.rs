//! The published document (`GET /api/openapi.json`) against the routes chat-server really serves.
//!
//! Every route is registered through utoipa-axum's `OpenApiRouter::routes(routes!(handler))`, which
//! takes the path and methods from the handler's `#[utoipa::path]`, so a route and its documentation
//! come from one place. A route added past that (a plain `.route(..)`, a merged `Router`) is what this
//! test catches: the served router's route table, read from its `Debug` output
//! ([`shared::openapi::route_table`], axum has no public route list), must equal the document's
//! operations, apart from the `/api/{*rest}` and `/metrics` not-found routes. And each documented operation,
//! requested over HTTP, must reach a handler: not a 405, not the not-found fallback.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use chat_server::{settings::Settings, startup::Application};
use shared::{openapi, shutdown::CancellationToken};

#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let data =
        std::env::temp_dir().join(format!("hotchat-openapi-{}", uuid::Uuid::now_v7().simple()));
    // The embedded mode: chat-server also serves the event streams, so its document has them too.
    let settings = Settings::from_vars([
        ("HOTCHAT_DATA_DIR", data.display().to_string()),
        ("CHAT_ADDR", "127.0.0.1:0".to_owned()),
    ])
    .unwrap();
    let app = Application::build(settings).await.unwrap();
    let mut served = openapi::route_table(app.router());
    let base = format!("http://{}", app.local_addr());
    let stop = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));

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

    // Left out on purpose: it is the JSON 404 for every unknown API path.
    assert!(served.remove(&("*".to_owned(), "/api/{*rest}".to_owned())));
    // The same 404 for `/metrics`, which the embedded mode does not serve on its public port
    // (`METRICS_PUBLIC`), so that the web app's index.html does not answer it either.
    assert!(served.remove(&("*".to_owned(), "/metrics".to_owned())));
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
    assert!(documented.contains(&("GET".to_owned(), "/api/rooms/{room}/events".to_owned())));

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
    server.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&data);
}
