//! `publish-server`: SSE fan-out of every event, and the projector into the read model.

use anyhow::Context;
use publish_server::{settings::Settings, startup::Application};

fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("reading settings")?;
    shared::telemetry::init(&settings.log);
    shared::shutdown::run_main(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.local_addr(), "publish-server listening");
    app.run_until_stopped(shared::shutdown::on_signal()).await
}
