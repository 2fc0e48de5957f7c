//! Any bytes a client may send first: the parser must not panic, and whatever it takes, hyper must
//! read the same way (the oracle of `tests/equivalence.rs`).
#![no_main]

#[path = "../../tests/oracle/mod.rs"]
mod oracle;

use http::Method;
use libfuzzer_sys::fuzz_target;
use request_head::{Head, parse};

fn events(method: &Method, path: &str) -> bool {
    method == Method::GET && path.ends_with("/events")
}

fuzz_target!(|data: &[u8]| {
    if let Head::Ours(ours) = parse(data, events) {
        let theirs = oracle::hyper_reads(data).expect("taken, but hyper refuses it");
        assert_eq!(ours.method(), theirs.request.method());
        assert_eq!(ours.uri(), theirs.request.uri());
        assert_eq!(ours.version(), theirs.request.version());
        assert_eq!(ours.headers(), theirs.request.headers());
        assert!(!theirs.has_body, "taken, but hyper expects a body");
    }
});
