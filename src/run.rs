//! `portcullis run`: build everything from the configuration, bind, serve
//! until SIGTERM/SIGINT.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::idp::Login;
use crate::proxy::Upstream;
use crate::server::{App, serve};
use crate::session::{KeyRing, Sessions, Transactions};

/// Everything that can be checked without serving: used by `run` and
/// `check-config`.
pub async fn build_app(config: Config) -> anyhow::Result<App> {
    let ring = Arc::new(KeyRing::load_or_create(&config.session.key_file)?);
    let sessions = Sessions::new(&config, ring.clone());
    let transactions = Transactions::new(&config, ring);
    let upstream = Upstream::new(&config)?;
    let login = Login::from_config(&config).await?;
    Ok(App::new(config, sessions, transactions, upstream, login))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    crate::logging::init(config.log.format, &config.log.level);
    if !config.session.secure_cookie {
        tracing::warn!(
            "session.secure_cookie is false: session cookies travel over plain http and can be stolen on the network. Use this only for local testing."
        );
    }
    if !config.upstream.tls_verify && config.upstream.url.scheme() == "https" {
        tracing::warn!(
            "upstream.tls_verify is false: the upstream's certificate is not checked, so anyone on the path to it can read and change the traffic. Prefer upstream.ca_file."
        );
    }
    let listen = config.listen;
    let app = Arc::new(build_app(config).await?);
    if !app.login.is_configured() {
        tracing::warn!(
            "no identity provider is configured: passthrough paths and tokens work, nobody can log in"
        );
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}: is another process using it?"))?;
    let local = listener.local_addr()?;
    tracing::info!(listen = %local, domain = %app.config.domain, upstream = %app.config.upstream.url, "portcullis ready");
    serve(app, listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
