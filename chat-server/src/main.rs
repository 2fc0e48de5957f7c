//! `chat-server`: sessions, rooms, messages, reactions and the fetch API.

use anyhow::Context;
use chat_server::{settings::Settings, startup::Application};

fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("reading settings")?;
    shared::telemetry::init(&settings.log);
    shared::shutdown::run_main(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.local_addr(), "chat-server listening");
    app.run_until_stopped(shared::shutdown::on_signal()).await
}
