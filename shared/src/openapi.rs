//! The published API: both servers answer `GET /api/openapi.json` with an OpenAPI 3.1 document
//! generated from their code (utoipa). Each route is registered through utoipa-axum's
//! `OpenApiRouter::routes(routes!(handler))`, so the route and its documentation come from one place
//! (the handler's `#[utoipa::path]`).
//!
//! That alone does not stop a route from being added with a plain `.route(..)`, and axum's `Router`
//! has no public route list. So the servers' coverage tests compare two sets: [`route_table`], read
//! from the served router's `Debug` output (the only place axum shows its route table), and
//! [`operations`], read from the served document; they must be equal. The tests also request every
//! documented operation and check that none falls through to the not-found fallback.
//!
//! The shared pieces: the error body every 4xx/5xx answers with ([`ErrorBody`]), the error
//! responses the handlers list, and the handler serving the document.

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    Extension,
    http::header,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use utoipa::{
    IntoParams, IntoResponses, OpenApi, ToSchema,
    openapi::{
        ContentBuilder, Ref, RefOr, Required, ResponseBuilder,
        header::HeaderBuilder,
        path::{Parameter, ParameterBuilder, ParameterIn},
        response::Response as ApiResponse,
        schema::{ObjectBuilder, Type},
    },
};

/// `{"error": {"code", "message"}}`: the body of every 4xx and 5xx answer (see [`crate::http`]).
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `not_found`, `invalid_json`, `rate_limited`.
    pub code: String,
    /// For people: what to fix (4xx), or which dependency failed (5xx).
    pub message: String,
    /// With `banned` only: when the ban ends (`null`: until a moderator lifts it).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
}

/// The document both servers start from: the error schema as a component.
#[derive(OpenApi)]
#[openapi(components(schemas(ErrorBody, ErrorDetail)))]
struct Base;

/// A document with `title` and `version`, the error schema, and nothing else yet.
pub fn base(title: &str, description: &str, version: &str) -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi();
    doc.info.title = title.to_owned();
    doc.info.description = Some(description.to_owned());
    doc.info.version = version.to_owned();
    doc.info.license = None;
    doc.info.contact = None;
    doc
}

/// The document as served, serialised once at start-up.
#[derive(Clone)]
pub struct Document(pub Bytes);

impl Document {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Self {
        Self(Bytes::from(
            serde_json::to_vec(doc).expect("an OpenAPI document serialises"),
        ))
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi_document",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this server's HTTP API", body = Object)),
)]
pub async fn document(Extension(Document(doc)): Extension<Document>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}

/// A response whose body is [`ErrorBody`], optionally with `Retry-After`.
fn error_response(description: &str, retry_after: bool) -> RefOr<ApiResponse> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds to wait before trying again"))
                .build(),
        );
    }
    response.build().into()
}

fn responses(list: &[(&str, &str, bool)]) -> BTreeMap<String, RefOr<ApiResponse>> {
    list.iter()
        .map(|(status, description, retry_after)| {
            (
                (*status).to_owned(),
                error_response(description, *retry_after),
            )
        })
        .collect()
}

/// 401: no token, or one that is malformed, forged or expired.
pub struct Unauthorized;

impl IntoResponses for Unauthorized {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        responses(&[(
            "401",
            "No valid session token: `unauthorized` (missing or not `Bearer <token>`), \
             `token_invalid` (malformed or forged) or `token_expired`",
            false,
        )])
    }
}

/// 429: the caller is over a rate limit; `Retry-After` says when to try again.
pub struct RateLimited;

impl IntoResponses for RateLimited {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        responses(&[(
            "429",
            "Too many requests from this caller (`rate_limited`), or a post sooner than the \
             room's slow mode allows (`slow_mode`); try again after `Retry-After` seconds",
            true,
        )])
    }
}

/// 429 on an event stream: the client's address has `SSE_MAX_STREAMS_PER_ADDRESS` open already.
pub struct TooManyStreams;

impl IntoResponses for TooManyStreams {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        responses(&[(
            "429",
            "This client address has as many event streams open on this server as it may \
             (`too_many_streams`); close one, or try again after `Retry-After` seconds",
            true,
        )])
    }
}

/// 403: the user may not do this in this room.
pub struct Forbidden;

impl IntoResponses for Forbidden {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        responses(&[(
            "403",
            "The user has no role here that allows this (`forbidden`), or is banned from writing \
             in this room (`banned`, with `until`)",
            false,
        )])
    }
}

/// 503: a dependency (the event log, the database) did not answer; `Retry-After` says when to retry.
pub struct Unavailable;

impl IntoResponses for Unavailable {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        responses(&[(
            "503",
            "A dependency is unavailable (`unavailable`); try again after `Retry-After` seconds",
            true,
        )])
    }
}

/// 404: the room (or message) in the path does not exist.
pub struct NotFound;

impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        responses(&[("404", "No such room or message (`not_found`)", false)])
    }
}

/// 400: a path or query parameter breaks its rule (the code names it).
pub struct BadRequest;

impl IntoResponses for BadRequest {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        responses(&[(
            "400",
            "A parameter breaks its rule; the code says which (e.g. `invalid_limit`, `invalid_cursor`, \
             `invalid_emoji`, `invalid_query`, `invalid_path`)",
            false,
        )])
    }
}

/// What a JSON request body can be refused with: 400, 413, 415, 422.
pub struct InvalidBody;

impl IntoResponses for InvalidBody {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        responses(&[
            (
                "400",
                "The body is not JSON (`invalid_json`), or a field breaks its rule (e.g. \
                 `invalid_name`, `empty_text`, `text_too_long`), or a parameter does",
                false,
            ),
            (
                "413",
                "The body is over 64 KiB (`payload_too_large`)",
                false,
            ),
            (
                "415",
                "The body is not sent as `application/json` (`unsupported_media_type`)",
                false,
            ),
            (
                "422",
                "The body is JSON of the wrong shape, e.g. a missing field (`invalid_json`)",
                false,
            ),
        ])
    }
}

/// The `Idempotency-Key` header of a retry-safe write.
pub struct IdempotencyHeader;

impl IntoParams for IdempotencyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name(crate::http::IDEMPOTENCY_KEY.as_str())
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes the write safe to retry: the same user with the same key within 24 \
                     hours gets the first attempt's answer, and the write happens once",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(64))
                        .pattern(Some("^[ -~]+$")),
                ))
                .build(),
        ]
    }
}

/// What a retry-safe write (`Idempotency-Key`) can be refused with: [`InvalidBody`]'s statuses,
/// with the key's own codes.
pub struct KeyedBody;

impl IntoResponses for KeyedBody {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        let mut list = InvalidBody::responses();
        list.extend(responses(&[
            (
                "400",
                "The body is not JSON (`invalid_json`), or a field breaks its rule (e.g. \
                 `invalid_name`, `empty_text`, `text_too_long`), or a parameter does, or the \
                 `Idempotency-Key` is not 1-64 printable ASCII characters sent once \
                 (`invalid_idempotency_key`)",
                false,
            ),
            (
                "422",
                "The body is JSON of the wrong shape, e.g. a missing field (`invalid_json`), or \
                 the `Idempotency-Key` was used by this user for another request in the last 24 \
                 hours (`idempotency_key_reused`)",
                false,
            ),
        ]));
        list
    }
}

/// Every (method, path) `router` answers, read from its `Debug` output since axum has no public
/// route list (format of axum 0.8: `path_router: PathRouter { routes: {RouteId(n): MethodRouter(
/// MethodRouter { get: .., post: None, .. }), ..}, node: Node { paths: {RouteId(n): "/path"} } }`).
/// A method set to anything but `None` is routed; a route that is a whole service (`Route`) or a
/// method router with only a fallback (`any(..)`) is listed with the method `*`. Fallbacks are not
/// routes. Panics when the format is not the expected one, so a changed axum fails loudly.
pub fn route_table<S>(router: &axum::Router<S>) -> BTreeSet<(String, String)> {
    let debug = format!("{router:?}");
    let path_router = debug
        .split_once("path_router: PathRouter { routes: {")
        .and_then(|(_, rest)| rest.split_once("fallback_router:"))
        .map(|(path_router, _)| path_router)
        .expect("axum's Router Debug output has the format route_table reads");
    let (routes, paths) = path_router
        .split_once("node: Node { paths: {")
        .expect("axum's Router Debug output has the route paths");
    let mut path_of = BTreeMap::new();
    for entry in paths.split("RouteId(").skip(1) {
        let (id, rest) = entry.split_once("): \"").expect("a route path entry");
        let (path, _) = rest.split_once('"').expect("a quoted route path");
        path_of.insert(id.to_owned(), path.to_owned());
    }
    let mut table = BTreeSet::new();
    for entry in routes.split("RouteId(").skip(1) {
        let (id, endpoint) = entry.split_once("): ").expect("a route entry");
        let path = path_of.get(id).expect("every route has a path").clone();
        let methods: Vec<String> = match endpoint.strip_prefix("MethodRouter(MethodRouter { ") {
            Some(fields) => {
                let (methods, _fallback) = fields
                    .split_once("fallback: ")
                    .expect("a method router has a fallback");
                methods
                    .split(", ")
                    .filter_map(|field| field.split_once(": "))
                    .filter(|(_, endpoint)| !endpoint.starts_with("None"))
                    .map(|(method, _)| method.to_uppercase())
                    .collect()
            }
            None => Vec::new(),
        };
        if methods.is_empty() {
            table.insert(("*".to_owned(), path));
        } else {
            table.extend(methods.into_iter().map(|m| (m, path.clone())));
        }
    }
    assert!(
        !path_of.is_empty() && !table.is_empty() || !debug.contains("RouteId("),
        "route_table read no route from a router that has some: {debug}"
    );
    table
}

/// `path` with each `{parameter}` replaced by the nil UUID: a request the route answers (with 4xx
/// at worst), for probing that a documented path is routed.
pub fn concrete(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some((before, after)) = rest.split_once('{') {
        out.push_str(before);
        rest = after.split_once('}').map_or("", |(_, after)| after);
        out.push_str("00000000-0000-0000-0000-000000000000");
    }
    out.push_str(rest);
    out
}

/// Every (method, path) an OpenAPI document (as JSON) describes.
pub fn operations(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[cfg(test)]
mod tests {
    use axum::{
        Router,
        routing::{any, get},
    };

    use super::*;

    fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect()
    }

    #[test]
    fn route_table_lists_each_method_of_each_path() {
        let router: Router = Router::new()
            .route("/a", get(|| async {}).post(|| async {}))
            .route("/b/{id}", axum::routing::delete(|| async {}))
            .route("/api/{*rest}", any(|| async {}))
            .fallback(|| async {});
        assert_eq!(
            route_table(&router),
            set(&[
                ("GET", "/a"),
                ("POST", "/a"),
                ("DELETE", "/b/{id}"),
                ("*", "/api/{*rest}")
            ])
        );
    }

    #[test]
    fn route_table_sees_routes_after_state_and_layers() {
        let router: Router = Router::new()
            .route(
                "/s",
                get(|axum::extract::State(()): axum::extract::State<()>| async {}),
            )
            .with_state(())
            .route_service(
                "/svc",
                tower::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(axum::response::Response::new(
                        axum::body::Body::empty(),
                    ))
                }),
            )
            .layer(axum::Extension(1u8));
        assert_eq!(route_table(&router), set(&[("GET", "/s"), ("*", "/svc")]));
    }

    #[test]
    fn concrete_fills_every_path_parameter() {
        let nil = "00000000-0000-0000-0000-000000000000";
        assert_eq!(concrete("/healthz"), "/healthz");
        assert_eq!(
            concrete("/api/rooms/{room}/messages/{message}"),
            format!("/api/rooms/{nil}/messages/{nil}")
        );
    }

    #[test]
    fn operations_lists_each_method_of_each_path() {
        let doc = serde_json::json!({"paths": {
            "/a": {"get": {}, "post": {}, "parameters": []},
            "/b/{id}": {"delete": {}},
        }});
        assert_eq!(
            operations(&doc),
            set(&[("GET", "/a"), ("POST", "/a"), ("DELETE", "/b/{id}")])
        );
    }
}
