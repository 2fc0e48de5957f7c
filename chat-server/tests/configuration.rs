//! The README's configuration table is the reference operators read; `--help` is what the servers
//! actually parse. These tests hold the two to the same variables and defaults, per server.

use std::collections::BTreeMap;

use clap::CommandFactory;

/// One row of the README's configuration table.
#[derive(Debug)]
struct Row {
    server: String,
    default: String,
}

/// The rows of the table under `## Configuration`, by variable.
fn readme_table() -> BTreeMap<String, Row> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README has a Configuration section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 4, "a row has 4 cells: {line}");
        let name = cells[0].trim_matches('`').to_owned();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "one variable per row: {line}"
        );
        let row = Row {
            server: cells[1].to_owned(),
            default: cells[2].to_owned(),
        };
        assert!(
            ["both", "chat-server", "publish-server"].contains(&row.server.as_str()),
            "the server column says both, chat-server or publish-server: {line}"
        );
        assert!(rows.insert(name, row).is_none(), "listed twice: {line}");
    }
    assert!(!rows.is_empty(), "the Configuration section has a table");
    rows
}

/// Each variable `command` reads, with its default as `--help` shows it (`None` without one).
fn help_table(command: &clap::Command) -> BTreeMap<String, Option<String>> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_env()?.to_string_lossy().into_owned();
            let default = arg
                .get_default_values()
                .iter()
                .map(|value| value.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",");
            Some((name, (!default.is_empty()).then_some(default)))
        })
        .collect()
}

fn readme_agrees_with_help(server: &str, command: clap::Command) {
    command.clone().debug_assert();
    let readme: BTreeMap<String, Row> = readme_table()
        .into_iter()
        .filter(|(_, row)| row.server == "both" || row.server == server)
        .collect();
    let help = help_table(&command);

    let missing: Vec<_> = help
        .keys()
        .filter(|name| !readme.contains_key(*name))
        .collect();
    let stale: Vec<_> = readme
        .keys()
        .filter(|name| !help.contains_key(*name))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "{server}: read but not in the README's table (for {server}): {missing:?}; \
         in the README's table but not read: {stale:?}"
    );

    for (name, default) in &help {
        let documented = &readme[name].default;
        match default {
            Some(default) => assert_eq!(
                documented,
                &format!("`{default}`"),
                "{server}: the README's default of {name} is not what --help says"
            ),
            None => assert!(
                !(documented.starts_with('`')
                    && documented.ends_with('`')
                    && documented.matches('`').count() == 2),
                "{server}: the README gives {name} the default {documented}, --help none"
            ),
        }
    }
}

#[test]
fn the_readme_lists_exactly_what_chat_server_reads_with_the_same_defaults() {
    readme_agrees_with_help("chat-server", chat_server::settings::Cli::command());
}

#[test]
fn the_readme_lists_exactly_what_publish_server_reads_with_the_same_defaults() {
    readme_agrees_with_help("publish-server", publish_server::settings::Cli::command());
}

#[test]
fn every_flag_is_its_variable_in_kebab_case() {
    for command in [
        chat_server::settings::Cli::command(),
        publish_server::settings::Cli::command(),
    ] {
        for arg in command.get_arguments() {
            let Some(name) = arg.get_env() else { continue };
            let kebab = name.to_string_lossy().to_lowercase().replace('_', "-");
            assert_eq!(
                arg.get_long(),
                Some(kebab.as_str()),
                "{}: the flag of {name:?}",
                command.get_name()
            );
        }
    }
}

#[test]
fn every_option_reads_a_variable() {
    for command in [
        chat_server::settings::Cli::command(),
        publish_server::settings::Cli::command(),
    ] {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            assert!(
                arg.get_env().is_some() || id == "help" || id == "version",
                "{}: --{id} has no environment variable",
                command.get_name()
            );
        }
    }
}
