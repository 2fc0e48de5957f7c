//! A fresh PostgreSQL database per test.

use sqlx::{Connection, PgConnection};

/// Creates an empty database on the test server and returns its URL.
pub async fn fresh() -> String {
    let server = crate::required_env(
        "HOTCHAT_TEST_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
    );
    let name = format!("hotchat_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {server} is not reachable: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    database_url(&server, &name)
}

/// `server` with its database name replaced by `name`.
pub fn database_url(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let root = match base.rfind('/') {
        Some(i) if base[..i].contains("//") && i > base.find("//").unwrap_or(0) + 1 => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A plain connection for inspecting the read model directly.
pub async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .expect("connect to the test database")
}
