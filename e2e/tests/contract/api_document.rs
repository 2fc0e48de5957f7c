//! The published API: `GET /api/openapi.json` on both servers, and requests that axum's own
//! extractors cannot read answering in the API's error shape, as the document says.

use e2e::{Stack, in_both_modes, stack::Mode};
use serde_json::Value;

const EVENTS: &str = "/api/rooms/{room}/events";

async fn document(base: &str) -> Value {
    let response = reqwest::get(format!("{base}/api/openapi.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.unwrap();
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "OpenAPI 3.1, not {version:?}");
    doc
}

in_both_modes!(both_servers_publish_an_openapi_3_1_document_of_what_they_serve);
async fn both_servers_publish_an_openapi_3_1_document_of_what_they_serve(mode: Mode) {
    let stack = Stack::single(mode).await;
    let chat = document(&stack.chat(0).base).await;
    assert!(chat["paths"]["/api/rooms/{room}/messages"]["post"].is_object());
    assert!(chat["components"]["schemas"]["ErrorBody"].is_object());
    assert_eq!(
        chat["paths"]["/api/rooms/{room}/messages"]["post"]["security"][0]["bearer"],
        serde_json::json!([]),
        "writes need the bearer token"
    );
    // The event stream is in chat-server's document exactly when chat-server serves it.
    assert_eq!(chat["paths"][EVENTS].is_object(), mode == Mode::Embedded);

    let publisher = document(&stack.publishers[0]).await;
    let stream = &publisher["paths"][EVENTS]["get"];
    assert!(stream["responses"]["200"]["content"]["text/event-stream"].is_object());
    let names: Vec<&str> = stream["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"Last-Event-ID") && names.contains(&"last_event_id"));
    for schema in [
        "Message",
        "ReactionData",
        "CountsData",
        "ModeData",
        "ResetData",
    ] {
        assert!(
            publisher["components"]["schemas"][schema].is_object(),
            "the data of each event type is documented: {schema}"
        );
    }
}

in_both_modes!(unreadable_paths_and_query_strings_get_a_400_json_error);
async fn unreadable_paths_and_query_strings_get_a_400_json_error(mode: Mode) {
    let stack = Stack::single(mode).await;
    let room = uuid::Uuid::now_v7();
    let (chat, publisher) = (&stack.chat(0).base, &stack.publishers[0]);
    let cases = [
        (format!("{chat}/api/rooms/%FF"), "invalid_path"),
        (format!("{chat}/api/rooms/%FF/messages"), "invalid_path"),
        (
            format!("{chat}/api/rooms/{room}/messages?limit=1&limit=2"),
            "invalid_query",
        ),
        (format!("{publisher}/api/rooms/%FF/events"), "invalid_path"),
        (
            format!("{publisher}/api/rooms/{room}/events?last_event_id=a&last_event_id=b"),
            "invalid_query",
        ),
    ];
    for (url, code) in cases {
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 400, "{url}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{url}: not JSON: {e}"));
        assert_eq!(body["error"]["code"], code, "{url}: {body}");
    }
}
