//! `chat-server`: sessions, rooms, messages, reactions and the fetch API.

use anyhow::Context;
use chat_server::{settings::Settings, startup::Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let settings = Settings::from_env().context("reading settings")?;
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.local_addr(), "chat-server listening");
    app.run_until_stopped(shared::shutdown::on_signal()).await
}
