//! The request-head parser of hotchat's take-over path.
//!
//! The publish-server reads the first request of a connection itself, not through hyper, so that an
//! event stream can run on the bare socket (`publish_server::serve`). That makes this parser the
//! code that faces the network most directly, so it is kept small, free of I/O and in a crate of its
//! own: the fuzz target (`fuzz/`) builds in seconds, and the property tests
//! (`tests/equivalence.rs`) check it against hyper's own parser.
//!
//! It is deliberately narrow. A head is taken only when it is a complete HTTP/1.1 request with no
//! body and nothing behind it, that `http`'s types accept as they are and the caller's matcher
//! wants; anything else (a body, a pipelined request, HTTP/1.0, too many headers, bytes hyper would
//! refuse) is [`Head::NotOurs`], and the caller hands the bytes to hyper, which answers it properly.

use http::{HeaderName, HeaderValue, Method, Request, Version};

/// Says which requests (method, path without the query) the caller serves itself.
pub type Matcher = fn(&Method, &str) -> bool;

/// Most headers a taken request may have; a head with more goes to hyper (which allows 100).
pub const MAX_HEADERS: usize = 64;

/// What a buffer holds.
#[derive(Debug)]
pub enum Head {
    /// The start of a head that may still turn out to be ours: read more.
    Partial,
    /// Not a request for the caller: hyper must read these bytes.
    NotOurs,
    /// A whole request head, with nothing after it, for the caller.
    Ours(Box<Request<()>>),
}

/// Parses `buf`, the first bytes read from a connection.
pub fn parse(buf: &[u8], matcher: Matcher) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut raw = httparse::Request::new(&mut headers);
    let end = match raw.parse(buf) {
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::NotOurs,
        Ok(httparse::Status::Complete(end)) => end,
    };
    // Bytes after the head (a body, a pipelined request) would be lost on a taken-over connection:
    // hyper serves such a request, reading them as it should.
    if end < buf.len() || raw.headers.iter().any(announces_body) || lengths(raw.headers) > 1 {
        return Head::NotOurs;
    }
    let (Some(method), Some(path), Some(1)) = (raw.method, raw.path, raw.version) else {
        // The body is chunked, which an HTTP/1.0 client (or proxy) does not read: hyper serves
        // those, delimiting the body by closing the connection.
        return Head::NotOurs;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Head::NotOurs;
    };
    if !matcher(&method, path.split('?').next().unwrap_or(path)) {
        return Head::NotOurs;
    }
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .version(Version::HTTP_11);
    for header in raw.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) else {
            return Head::NotOurs;
        };
        builder = builder.header(name, value);
    }
    builder
        .body(())
        .map_or(Head::NotOurs, |request| Head::Ours(Box::new(request)))
}

/// Whether a header says a body follows (any `Transfer-Encoding`, a `Content-Length` other than 0).
fn announces_body(header: &httparse::Header<'_>) -> bool {
    header.name.eq_ignore_ascii_case("transfer-encoding")
        || (header.name.eq_ignore_ascii_case("content-length") && header.value != b"0")
}

/// How many `Content-Length` headers the head has. More than one is a smuggling smell that hyper
/// folds into one when they agree (and refuses when not): either way, hyper's to answer.
fn lengths(headers: &[httparse::Header<'_>]) -> usize {
    headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case("content-length"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(method: &Method, path: &str) -> bool {
        method == Method::GET && path.ends_with("/events")
    }

    #[test]
    fn a_matching_request_is_parsed_with_its_query_and_headers() {
        let raw = b"GET /api/rooms/r/events?last_event_id=0-4 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0-5\r\n\r\n";
        let Head::Ours(request) = parse(raw, events) else {
            panic!("expected the request to be ours");
        };
        assert_eq!(request.uri().query(), Some("last_event_id=0-4"));
        assert_eq!(request.headers()["last-event-id"], "0-5");
        assert_eq!(request.version(), Version::HTTP_11);
    }

    #[test]
    fn other_requests_and_partial_heads_are_told_apart() {
        let not_ours: [&[u8]; 9] = [
            b"POST /api/rooms/r/events HTTP/1.1\r\n\r\n",
            b"GET /api/rooms HTTP/1.1\r\n\r\n",
            b"GET /api/rooms/r/events HTTP/1.0\r\n\r\n",
            b"\x16\x03\x01garbage",
            // A body or a pipelined request behind the head: hyper reads those.
            b"GET /api/rooms/r/events HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi",
            b"GET /api/rooms/r/events HTTP/1.1\r\ncontent-length: 2\r\n\r\n",
            b"GET /api/rooms/r/events HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            // Two lengths, even equal ones (hyper folds them into one header).
            b"GET /api/rooms/r/events HTTP/1.1\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n",
            b"GET /api/rooms/r/events HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
        ];
        for raw in not_ours {
            assert!(
                matches!(parse(raw, events), Head::NotOurs),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(
            parse(b"GET /api/rooms/r/events HTTP/1.1\r\nHost:", events),
            Head::Partial
        ));
    }

    #[test]
    fn a_head_with_more_headers_than_the_limit_goes_to_hyper() {
        let mut raw = b"GET /api/rooms/r/events HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            raw.extend_from_slice(format!("x-{i}: y\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&raw, events), Head::NotOurs));
    }
}
