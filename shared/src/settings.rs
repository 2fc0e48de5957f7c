//! The one configuration path: the command line and the environment, parsed by clap.
//!
//! Every setting is an environment variable (the names are the public contract in the README's
//! configuration table) and a flag of the same name in kebab case (`KAFKA_BROKERS` is
//! `--kafka-brokers`). Each group of settings is a `#[derive(clap::Args)]` struct defined once, next
//! to the code it configures, and flattened into each server's command, so `--help` is the reference:
//! it lists every variable with its default.
//!
//! **Why not clap's own `env` reading.** Clap takes `FOO= cmd` as the value `""`, but here an empty
//! (or blank) value has always meant unset. So [`parse`] looks every argument's variable up itself,
//! skips blank values, and hands the others to clap as the flag they stand for, placed before the
//! command line so that a flag given there still wins. The variables come from a lookup function:
//! the process environment in `main` ([`parse_env`]), explicit pairs in tests ([`parse_with_vars`]),
//! so tests running in parallel never touch the process environment and still go through this
//! parser, its defaults and its checks.
//!
//! A value that does not parse is an error naming the flag and the variable
//! (`--kafka-partitions <KAFKA_PARTITIONS>`), never a silent fallback to the default. Values are
//! trimmed.

use std::{
    collections::HashMap,
    ffi::{OsStr, OsString},
    num::ParseIntError,
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use clap::{Args, FromArgMatches, Parser, error::ErrorKind};

use crate::kafka::{DEFAULT_TOPIC, KafkaSettings};

/// Parses `T` from `args` (the program name first, then flags) and the variables that `env` finds.
/// See the module documentation for how the two meet.
pub fn parse<T: Parser>(
    args: impl IntoIterator<Item = impl Into<OsString>>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<T, clap::Error> {
    let mut args = args.into_iter().map(Into::into);
    let program = args
        .next()
        .unwrap_or_else(|| T::command().get_name().into());
    let mut from_env = Vec::new();
    let command = T::command().args_override_self(true).mut_args(|arg| {
        let Some(name) = arg.get_env().and_then(OsStr::to_str).map(str::to_owned) else {
            return arg;
        };
        // `--kafka-partitions <KAFKA_PARTITIONS>`: help and errors name the variable too.
        let arg = arg.value_name(name.clone());
        let value = env(&name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty());
        match (value, arg.get_long()) {
            (Some(value), Some(long)) => {
                from_env.push(OsString::from(format!("--{long}={value}")));
                arg
            }
            // Clap read this process's value of the variable when it built the argument: a blank
            // one (or, in tests, one the lookup does not give) must not count.
            (None, _) if std::env::var_os(&name).is_some() => arg.env(None),
            _ => arg,
        }
    });
    let mut matches = command.try_get_matches_from(
        std::iter::once(program)
            .chain(from_env)
            .chain(args)
            .collect::<Vec<_>>(),
    )?;
    T::from_arg_matches_mut(&mut matches)
}

/// Parses `T` from this process's command line and environment, as `main` does. Like clap's
/// `Parser::parse`, prints the help (`--help`) or the error and exits when there is nothing to run.
pub fn parse_env<T: Parser>() -> T {
    parse(std::env::args_os(), |name| std::env::var(name).ok()).unwrap_or_else(|e| e.exit())
}

/// Parses `T` from `args` and the variables `vars` alone, not this process's environment (for
/// tests: the same parser `main` uses). A variable that no setting of `T` reads is an error, so a
/// misspelt name cannot pass unnoticed.
pub fn parse_with_vars<T, K, V>(
    args: impl IntoIterator<Item = impl Into<OsString>>,
    vars: impl IntoIterator<Item = (K, V)>,
) -> Result<T, clap::Error>
where
    T: Parser,
    K: Into<String>,
    V: Into<String>,
{
    let vars: HashMap<String, String> = vars
        .into_iter()
        .map(|(name, value)| (name.into(), value.into()))
        .collect();
    let command = T::command();
    let known = variables(&command);
    if let Some(unknown) = vars.keys().find(|name| !known.contains(name)) {
        return Err(clap::Error::raw(
            ErrorKind::UnknownArgument,
            format!("{unknown} is not a setting of {}\n", command.get_name()),
        ));
    }
    parse(args, |name| vars.get(name).cloned())
}

/// The environment variables that the arguments of `command` read, in their order.
fn variables(command: &clap::Command) -> Vec<String> {
    command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

/// The group `T` with every setting at its default (whatever the environment says): the one place
/// a default is written is the `#[arg]` attribute. Panics if `T` has a required setting.
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("every setting of the group has a default");
    T::from_arg_matches(&matches).expect("defaults parse")
}

/// A duration given in milliseconds.
pub fn millis(value: &str) -> Result<Duration, ParseIntError> {
    value.parse().map(Duration::from_millis)
}

/// A duration given in seconds.
pub fn secs(value: &str) -> Result<Duration, ParseIntError> {
    value.parse().map(Duration::from_secs)
}

/// A number raised to `min` when it is smaller (settings that would break the service at zero).
pub fn at_least<T>(min: T) -> impl Fn(&str) -> Result<T, T::Err> + Clone + Send + Sync + 'static
where
    T: FromStr + Ord + Copy + Send + Sync + 'static,
{
    move |value| value.parse().map(|n: T| n.max(min))
}

/// `HOTCHAT_DATA_DIR`'s default: `data` under the working directory.
pub const DEFAULT_DATA_DIR: &str = "data";

/// Where the embedded engines keep their files (both servers).
#[derive(Debug, Clone, Args)]
pub struct DataDir {
    /// Where the embedded engines keep their files: the event log, the SQLite read model and the
    /// generated auth secret.
    #[arg(long = "hotchat-data-dir", env = "HOTCHAT_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub path: PathBuf,
}

/// The Kafka settings as given; [`KafkaArgs::settings`] is `None` when `KAFKA_BROKERS` is unset.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Event log (Kafka)")]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, e.g. `127.0.0.1:9092`. Unset: chat-server runs the embedded event log
    /// (and serves the event streams itself); publish-server needs it.
    #[arg(long = "kafka-brokers", env = "KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// The event topic, created at start-up if missing.
    #[arg(long = "kafka-topic", env = "KAFKA_TOPIC", default_value = DEFAULT_TOPIC)]
    pub topic: String,
    /// Partitions of the topic when this process creates it.
    #[arg(
        long = "kafka-partitions",
        env = "KAFKA_PARTITIONS",
        default_value_t = 6
    )]
    pub partitions: i32,
    /// Replication factor of the topic when this process creates it.
    #[arg(
        long = "kafka-replication-factor",
        env = "KAFKA_REPLICATION_FACTOR",
        default_value_t = 1
    )]
    pub replication_factor: i32,
    /// Milliseconds a post waits for the broker's acknowledgement before it answers 503.
    #[arg(
        long = "kafka-produce-timeout-ms",
        env = "KAFKA_PRODUCE_TIMEOUT_MS",
        default_value = "5000",
        value_parser = millis
    )]
    pub produce_timeout: Duration,
    /// Milliseconds the producer holds a record back to send it with others (`linger.ms`): fewer
    /// produce requests for the broker under load, this much more latency for a lone post.
    #[arg(
        long = "kafka-linger-ms",
        env = "KAFKA_LINGER_MS",
        default_value = "1",
        value_parser = millis
    )]
    pub linger: Duration,
}

impl KafkaArgs {
    /// The settings to talk to the broker, or `None` without `KAFKA_BROKERS`.
    pub fn settings(&self) -> Option<KafkaSettings> {
        Some(KafkaSettings {
            brokers: self.brokers.clone()?,
            topic: self.topic.clone(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            produce_timeout: self.produce_timeout,
            linger: self.linger,
        })
    }
}

/// PostgreSQL's pool size when `DATABASE_MAX_CONNECTIONS` is unset.
pub const DEFAULT_POSTGRES_POOL: u32 = 10;
/// SQLite's pool size when `DATABASE_MAX_CONNECTIONS` is unset: one file with one writer at a time
/// (WAL lets readers run beside it), so more connections mostly wait on each other.
pub const DEFAULT_SQLITE_POOL: u32 = 4;

/// Where the read model lives and how its connection pool is sized.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Read model")]
pub struct DatabaseSettings {
    /// The read model, e.g. `postgres://postgres@127.0.0.1:5432/hotchat` (created if missing).
    /// Unset: the SQLite file `hotchat.db` in the data folder.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// Pool size per process [default: 10 for PostgreSQL, 4 for SQLite].
    #[arg(
        id = "database_max_connections",
        long = "database-max-connections",
        env = "DATABASE_MAX_CONNECTIONS"
    )]
    pub max_connections: Option<u32>,
    /// Milliseconds a request waits for a pool connection before it fails (503).
    #[arg(
        long = "database-acquire-timeout-ms",
        env = "DATABASE_ACQUIRE_TIMEOUT_MS",
        default_value = "3000",
        value_parser = millis
    )]
    pub acquire_timeout: Duration,
}

impl Default for DatabaseSettings {
    /// The embedded SQLite file, pool at its defaults.
    fn default() -> Self {
        defaults()
    }
}

impl DatabaseSettings {
    /// The database at `url`, pool at its defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::default()
        }
    }
}

/// The HTTP edge of both servers: connection limits, shutdown and browsers' origins.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpSettings {
    /// Milliseconds a client may take to send a whole request head, and a keep-alive connection may
    /// sit idle between requests; a slower or idle one is disconnected (a stream in progress is not).
    #[arg(
        long = "http-head-timeout-ms",
        env = "HTTP_HEAD_TIMEOUT_MS",
        default_value = "10000",
        value_parser = millis
    )]
    pub head_timeout: Duration,
    /// Open connections per process, counted at accept; one over the cap is closed at once
    /// [default: the open-file limit, raised to its hard limit, less a twentieth (at least 256) for
    /// the database, brokers and files]. A larger value is lowered to that, with a warning.
    #[arg(long = "max-connections", env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Milliseconds shutdown waits for open connections to close.
    #[arg(
        long = "shutdown-drain-ms",
        env = "SHUTDOWN_DRAIN_MS",
        default_value = "3000",
        value_parser = millis
    )]
    pub drain: Duration,
    /// For the test that sees a server stop when one of its critical tasks does: the task named
    /// here panics a second after it starts ([`crate::supervise`]). Not a setting for operators,
    /// so left out of `--help`.
    #[arg(
        long = "hotchat-test-fail-task",
        env = "HOTCHAT_TEST_FAIL_TASK",
        hide = true
    )]
    pub fail_task: Option<String>,
    /// Serve `/metrics` on the listen address too [default: true with KAFKA_BROKERS, where the
    /// servers sit behind a proxy that does not route it; false without, where the embedded
    /// chat-server's port is the public one].
    #[arg(long = "metrics-public", env = "METRICS_PUBLIC")]
    pub metrics_public: Option<bool>,
    /// A second listen address that serves `/metrics` alone, e.g. `127.0.0.1:9090` (port 0 picks
    /// a free one). Unset: none.
    #[arg(long = "metrics-addr", env = "METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Comma-separated browser origins allowed to call this server, e.g.
    /// `https://a.example,https://b.example`. Unset: none.
    #[arg(long = "cors-origins", env = "CORS_ORIGINS")]
    pub cors_origins: Option<String>,
}

/// Tokens from the operator's own identity service (checked by [`crate::tokens`]).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Operator tokens")]
pub struct OperatorTokenSettings {
    /// A JWK set, as a file path or an `http://`/`https://` URL: its RS256, ES256 and EdDSA keys sign
    /// tokens this server accepts besides its own. Unset: only built-in tokens.
    #[arg(long = "auth-jwks", env = "AUTH_JWKS")]
    pub jwks: Option<String>,
    /// Seconds between two reloads of the JWK set (a token with an unknown `kid` triggers one).
    #[arg(
        long = "auth-jwks-refresh-secs",
        env = "AUTH_JWKS_REFRESH_SECS",
        default_value = "60",
        value_parser = secs
    )]
    pub jwks_refresh: Duration,
    /// The `iss` operator tokens must carry. Unset: not checked.
    #[arg(long = "auth-issuer", env = "AUTH_ISSUER")]
    pub issuer: Option<String>,
    /// An `aud` operator tokens must carry. Unset: not checked.
    #[arg(long = "auth-audience", env = "AUTH_AUDIENCE")]
    pub audience: Option<String>,
}

impl Default for OperatorTokenSettings {
    fn default() -> Self {
        defaults()
    }
}

impl HttpSettings {
    /// `CORS_ORIGINS` as a list, without blanks.
    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_origins
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    #[command(name = "demo")]
    struct Demo {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        http: HttpSettings,
        #[arg(long, env = "DEMO_FLAG", default_value_t = false, action = clap::ArgAction::Set)]
        flag: bool,
    }

    fn demo(args: &[&str], vars: &[(&str, &str)]) -> Result<Demo, clap::Error> {
        parse_with_vars(
            std::iter::once("demo").chain(args.iter().copied()),
            vars.iter().copied(),
        )
    }

    #[test]
    fn unset_variables_take_the_defaults() {
        let demo = demo(&[], &[]).unwrap();
        assert!(demo.kafka.settings().is_none());
        assert_eq!(demo.kafka.topic, DEFAULT_TOPIC);
        assert_eq!(demo.kafka.produce_timeout, Duration::from_secs(5));
        assert_eq!(demo.http.drain, Duration::from_secs(3));
        assert!(demo.http.cors_origins().is_empty());
        assert!(!demo.flag);
    }

    #[test]
    fn variables_are_read_and_trimmed() {
        let demo = demo(
            &[],
            &[
                ("KAFKA_BROKERS", "127.0.0.1:9092"),
                ("KAFKA_PARTITIONS", " 12 "),
                ("KAFKA_PRODUCE_TIMEOUT_MS", "1500"),
                ("CORS_ORIGINS", "https://a.example, ,https://b.example"),
                ("DEMO_FLAG", "true"),
            ],
        )
        .unwrap();
        let kafka = demo.kafka.settings().unwrap();
        assert_eq!(kafka.brokers, "127.0.0.1:9092");
        assert_eq!(kafka.partitions, 12);
        assert_eq!(kafka.produce_timeout, Duration::from_millis(1500));
        assert_eq!(
            demo.http.cors_origins(),
            ["https://a.example", "https://b.example"]
        );
        assert!(demo.flag);
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let demo = demo(&[], &[("KAFKA_BROKERS", ""), ("KAFKA_PARTITIONS", "  ")]).unwrap();
        assert!(demo.kafka.brokers.is_none());
        assert_eq!(demo.kafka.partitions, 6);
    }

    #[test]
    fn a_flag_wins_over_its_variable() {
        let demo = demo(&["--kafka-partitions", "3"], &[("KAFKA_PARTITIONS", "12")]).unwrap();
        assert_eq!(demo.kafka.partitions, 3);
    }

    #[test]
    fn a_value_that_does_not_parse_is_an_error_naming_the_setting() {
        let error = demo(&[], &[("KAFKA_PARTITIONS", "many")]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        assert!(
            error
                .to_string()
                .contains("--kafka-partitions <KAFKA_PARTITIONS>"),
            "{error}"
        );
    }

    #[test]
    fn a_variable_no_setting_reads_is_an_error() {
        let error = demo(&[], &[("KAFKA_BROKER", "127.0.0.1:9092")]).unwrap_err();
        assert!(error.to_string().contains("KAFKA_BROKER "), "{error}");
    }

    #[test]
    fn at_least_raises_small_values() {
        let parse = at_least(16usize);
        assert_eq!(parse("3").unwrap(), 16);
        assert_eq!(parse("100").unwrap(), 100);
        assert!(parse("-1").is_err());
    }

    #[test]
    fn database_defaults_are_the_documented_ones() {
        let database = DatabaseSettings::default();
        assert_eq!(database.url, None);
        assert_eq!(database.max_connections, None);
        assert_eq!(database.acquire_timeout, Duration::from_secs(3));
    }
}
