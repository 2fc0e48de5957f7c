//! What the write model costs in memory: bytes per room, per ban and per remembered message,
//! measured as the process's resident memory before and after applying that many events.
//!
//!     cargo run --release -p chat-server --example write_model_memory [count]
//!
//! Each kind is measured on its own, in a process of its own (memory freed by one measurement would
//! be reused by the next without growing the resident set), with `count` (default 200,000) of it;
//! the README quotes the result.

use chat_server::write_model::Facts;
use shared::event::{Envelope, EventBody, User};
use uuid::Uuid;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn user(name: &str) -> User {
    User {
        id: Uuid::now_v7(),
        name: name.to_owned(),
    }
}

/// Resident bytes per event of `make`, applied `count` times to fresh facts.
fn per_event(count: usize, make: impl Fn(usize) -> Envelope) -> u64 {
    let events: Vec<Envelope> = (0..count).map(&make).collect();
    let before = rss_bytes();
    let mut facts = Facts::new(count);
    for event in &events {
        facts.apply(event);
    }
    let after = rss_bytes();
    std::hint::black_box(&facts);
    after.saturating_sub(before) / count as u64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let Some(kind) = args.next() else {
        let me = std::env::current_exe().expect("this program's path");
        let mut said = Vec::new();
        for kind in ["room", "ban", "message"] {
            let out = std::process::Command::new(&me)
                .args([count.to_string(), kind.to_owned()])
                .output()
                .expect("a measurement");
            said.push(format!(
                "{} B per {kind}",
                String::from_utf8_lossy(&out.stdout).trim()
            ));
        }
        println!("write model, {count} of each: {}", said.join(", "));
        return;
    };
    let owner = user("a room owner with a name of typical length");
    let room = Uuid::now_v7();
    let bytes = match kind.as_str() {
        "room" => per_event(count, |i| {
            let name = format!("room number {i} with a typical name");
            Envelope::new(
                Uuid::now_v7(),
                owner.clone(),
                EventBody::RoomCreated { name },
            )
        }),
        "ban" => per_event(count, |_| {
            let body = EventBody::UserBanned {
                user_id: Uuid::now_v7(),
                until: None,
                reason: "spam, repeatedly".to_owned(),
            };
            Envelope::new(room, owner.clone(), body)
        }),
        _ => per_event(count, |_| {
            let body = EventBody::MessagePosted {
                message_id: Uuid::now_v7(),
                text: String::new(),
            };
            Envelope::new(room, owner.clone(), body)
        }),
    };
    println!("{bytes}");
}
