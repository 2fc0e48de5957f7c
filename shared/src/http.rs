//! HTTP pieces both servers share: the API's one error type, the CORS allow-list, and the edge
//! every answer passes through (security headers, the request log with tokens redacted).
//!
//! Policy: every failure a client can see is `{"error": {"code", "message"}}` with a 4xx or 5xx status.
//! 4xx messages explain what to fix. 5xx messages say which dependency failed, never internals; the
//! cause is logged once, here, where it is turned into a response.

use std::net::{IpAddr, SocketAddr};

use axum::{
    Json,
    extract::{
        FromRequest, FromRequestParts, Path, Query, Request,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::Method,
    http::request::Parts,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::json;
use tower_http::{cors::CorsLayer, set_header::SetResponseHeaderLayer, trace::TraceLayer};

use crate::readmodel::ReadModelError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds a client should wait before retrying (`Retry-After`).
    pub retry_after: Option<u64>,
    /// More fields of the error object, beside `code` and `message` (e.g. a ban's `until`).
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            fields: Vec::new(),
        }
    }

    /// 403 with `code`: the user may not do this here.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// Adds `name` to the error object.
    pub fn with_field(mut self, name: &'static str, value: serde_json::Value) -> Self {
        self.fields.push((name, value));
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// A dependency failed; `cause` is logged, not shown.
    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> Self {
        tracing::warn!(dependency = what, error = %cause, "answering 503");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{what} is unavailable, try again shortly"),
        )
        .with_retry_after(1)
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        for (name, value) in self.fields {
            error[name] = value;
        }
        let body = json!({ "error": error });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<&ReadModelError> for ApiError {
    fn from(e: &ReadModelError) -> Self {
        match e {
            ReadModelError::UnknownCursor(id) => ApiError::bad_request(
                "invalid_cursor",
                format!("`before` names message {id}, which is not in this room"),
            ),
            ReadModelError::Unavailable(cause) => ApiError::unavailable("the database", cause),
        }
    }
}

impl From<ReadModelError> for ApiError {
    fn from(e: ReadModelError) -> Self {
        ApiError::from(&e)
    }
}

/// `axum::Json`, but a body that is not valid JSON of the expected shape answers in the API's error
/// format (400 `invalid_json`, 415 without a JSON content type, 413 over the size limit).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(value)) => value,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        // serde reads a struct from an array too (`["hi"]` as `{"text": "hi"}`): only an object
        // is a body here.
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_json",
                "the body must be a JSON object",
            ));
        }
        T::deserialize(value).map(ApiJson).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_json",
                format!("Failed to deserialize the JSON body into the target type: {e}"),
            )
        })
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        _ => "invalid_json",
    };
    ApiError::new(status, code, rejection.body_text())
}

/// `axum::extract::Path`, but a path segment that cannot be read (e.g. not UTF-8 once
/// percent-decoded) answers in the API's error format (400 `invalid_path`) instead of plain text.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    let status = rejection.status();
    if status.is_server_error() {
        // A route whose path does not fit its extractor: a bug here, not the client's.
        tracing::error!(error = %rejection.body_text(), "path extractor does not fit its route");
        return ApiError::new(status, "internal", "the server could not read this path");
    }
    ApiError::new(status, "invalid_path", rejection.body_text())
}

/// `axum::extract::Query`, but a query string that cannot be read (e.g. a parameter given twice)
/// answers in the API's error format (400 `invalid_query`) instead of plain text.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::new(rejection.status(), "invalid_query", rejection.body_text())
}

/// Connections the kernel queues for `accept` (it caps this at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` with a [`LISTEN_BACKLOG`]-deep accept queue. std and mio ask for 128, which a
/// reconnect storm overflows at once (its clients then wait for SYN retries, a second or more).
pub fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves a side listener (`METRICS_ADDR`) until `shutdown`: a few short requests, nothing to drain.
pub async fn serve_side(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: crate::shutdown::CancellationToken,
) {
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

/// Whom an anonymous request is charged to: its peer address, or the first `X-Forwarded-For`
/// address when `TRUST_FORWARDED_FOR` says a proxy of ours sets it (anyone can send that header).
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    let forwarded = trust_forwarded_for
        .then(|| headers.get("x-forwarded-for"))
        .flatten()
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(',').next())
        .and_then(|ip| ip.trim().parse().ok());
    forwarded.or(peer.map(|peer| peer.ip()))
}

/// The bearer token of a request, if its `Authorization` header has one. The scheme's name is
/// case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are `Bearer` too.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// CORS for the browser app when it is served from another origin: only the listed origins, only
/// the API's methods and headers, and the headers a client needs to back off (`Retry-After`,
/// `X-Room-Mode`) exposed.
pub fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            LAST_EVENT_ID.clone(),
            IDEMPOTENCY_KEY.clone(),
        ])
        .expose_headers([header::RETRY_AFTER, ROOM_MODE.clone()])
}

/// The web app's `Content-Security-Policy`: scripts, styles and everything else from this origin
/// only (the built app has no inline script or style), images also as `data:` URLs (the icon), and
/// `connect-src` widened to `events_origin` when the browser opens its streams on another origin
/// (`PUBLIC_EVENTS_URL`). No page may frame it.
pub fn web_app_csp(events_origin: Option<&str>) -> String {
    let connect = match events_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The `Content-Security-Policy` of a server that serves no page (publish-server): nothing may
/// load from its answers, and nothing may frame them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The origin (`scheme://host[:port]`) of `url`, for a CSP source; `None` if it has none.
pub fn origin_of(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

/// The layers every answer of both servers passes through, outermost last:
///
/// - the request log (tower-http's trace span at `debug`), whose `uri` field is the path and the
///   query with every `token` value replaced by `[redacted]`: `EventSource` cannot send headers,
///   so a stream's session token comes in the query, and no log line at any level may hold one;
/// - browser security headers on every answer, errors and streams included:
///   `Content-Security-Policy: csp`, `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`
///   (the old browsers' `frame-ancestors`) and `Referrer-Policy: no-referrer`.
pub fn edge<S>(router: axum::Router<S>, csp: &str) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let csp = HeaderValue::from_str(csp).expect("a CSP is a valid header value");
    router
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    uri = %redacted(request.uri()),
                    version = ?request.version(),
                )
            }),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

/// The path and query of `uri` for a log line, every `token` parameter's value replaced by
/// `[redacted]` (whatever the name's case; a percent-encoded name's value too).
pub fn redacted(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            // A percent-encoded name may decode to `token`: redacted too.
            if name.eq_ignore_ascii_case("token") || name.contains(['%', '+']) {
                format!("{name}=[redacted]")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// The header that tells a client which mode served a fetch.
pub static ROOM_MODE: axum::http::HeaderName = axum::http::HeaderName::from_static("x-room-mode");

/// The header that makes a write safe to retry (chat-server's `idempotency` module).
pub static IDEMPOTENCY_KEY: axum::http::HeaderName =
    axum::http::HeaderName::from_static("idempotency-key");

/// The header an SSE client resumes with.
pub static LAST_EVENT_ID: axum::http::HeaderName =
    axum::http::HeaderName::from_static("last-event-id");

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn forwarded_for_counts_only_when_trusted() {
        let peer = SocketAddr::from(([10, 0, 0, 1], 4000));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_static("203.0.113.7, 10.0.0.2"),
        );
        assert_eq!(
            client_ip(&headers, Some(peer), false),
            Some(peer.ip()),
            "an untrusted header is ignored"
        );
        assert_eq!(
            client_ip(&headers, Some(peer), true),
            Some(IpAddr::from([203, 0, 113, 7]))
        );
        headers.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_static("not-an-ip"),
        );
        assert_eq!(client_ip(&headers, Some(peer), true), Some(peer.ip()));
    }

    #[test]
    fn the_logged_uri_has_no_token() {
        let uri: Uri = "/api/rooms/r/events?last_event_id=0-1&token=secret.jwt.x&TOKEN=a&t%6Fken=b"
            .parse()
            .unwrap();
        let logged = redacted(&uri);
        assert_eq!(
            logged,
            "/api/rooms/r/events?last_event_id=0-1&token=[redacted]&TOKEN=[redacted]&t%6Fken=[redacted]"
        );
        assert_eq!(
            redacted(&"/api/rooms?limit=5".parse().unwrap()),
            "/api/rooms?limit=5"
        );
        assert_eq!(redacted(&"/healthz".parse().unwrap()), "/healthz");
    }

    #[test]
    fn the_events_origin_widens_connect_src() {
        assert_eq!(
            origin_of("https://events.example.com:8443/x/").as_deref(),
            Some("https://events.example.com:8443")
        );
        assert_eq!(origin_of("/relative"), None);
        let csp = web_app_csp(Some("https://events.example.com"));
        assert!(
            csp.contains("connect-src 'self' https://events.example.com;"),
            "{csp}"
        );
        assert!(web_app_csp(None).contains("connect-src 'self';"));
    }

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", " Bearer abc"] {
            assert_eq!(bearer(&with(value)), Some("abc"), "{value:?}");
        }
        for value in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", "Token abc"] {
            assert_eq!(bearer(&with(value)), None, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
