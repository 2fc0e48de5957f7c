//! Reading settings from the environment.
//!
//! Every setting is an environment variable (the names are part of the public contract in the README);
//! an empty value counts as unset, so `FOO= cmd` behaves like not setting `FOO`.

use std::{str::FromStr, time::Duration};

use anyhow::Context;

/// The variable's value, or `None` when it is unset or empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variable parsed as `T`, or `default` when unset. A value that does not parse is an error
/// naming the variable, not a silent fallback.
pub fn parse_or<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .with_context(|| format!("{name}={raw:?} is not valid")),
    }
}

/// A duration given in milliseconds by the variable `name`.
pub fn millis_or(name: &str, default: Duration) -> anyhow::Result<Duration> {
    parse_or(name, default.as_millis() as u64).map(Duration::from_millis)
}

/// A comma-separated list, e.g. `CORS_ORIGINS=https://a.example,https://b.example`.
pub fn list(name: &str) -> Vec<String> {
    var(name)
        .map(|v| {
            v.split(',')
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// `HOTCHAT_DATA_DIR` (default `./data`): where the embedded engines keep their files (the event log,
/// the SQLite read model, the generated auth secret).
pub fn data_dir() -> std::path::PathBuf {
    var("HOTCHAT_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("data"))
}
