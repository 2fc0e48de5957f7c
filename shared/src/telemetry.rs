//! Logging set-up shared by both binaries.
//!
//! `RUST_LOG` filters (default [`DEFAULT_FILTER`]); `LOG_FORMAT=json` switches to one JSON object per
//! line for log shippers. At `info` no token and no message text is ever logged.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// `RUST_LOG` when unset: our own `info`, only warnings from the Kafka and database clients.
pub const DEFAULT_FILTER: &str = "info,rdkafka=warn,sqlx=warn";

/// How the process logs.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Logging")]
pub struct LogSettings {
    /// What is logged, as `tracing` filter directives (e.g. `debug` or `info,chat_server=debug`).
    #[arg(long = "rust-log", env = "RUST_LOG", default_value = DEFAULT_FILTER, value_parser = filter)]
    pub filter: String,
    /// `text` for people, `json` (one object per line) for log shippers.
    #[arg(
        long = "log-format",
        env = "LOG_FORMAT",
        default_value = "text",
        value_enum,
        ignore_case = true
    )]
    pub format: LogFormat,
}

/// The shape of each log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Checks `RUST_LOG` when the settings are read, so a typo is an error at start-up.
fn filter(directives: &str) -> Result<String, tracing_subscriber::filter::ParseError> {
    EnvFilter::try_new(directives).map(|_| directives.to_owned())
}

/// Installs the global subscriber. Call once, first thing in `main` after reading the settings.
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    match settings.format {
        LogFormat::Json => registry.with(fmt::layer().json()).init(),
        // Colours only on a terminal: a log file or a collector gets plain text.
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())))
            .init(),
    }
}
