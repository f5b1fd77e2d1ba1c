//! `portcullis run`: build everything from the configuration, bind, tell
//! systemd we are ready, serve until SIGTERM/SIGINT; SIGHUP reloads.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;

use crate::config::Config;
use crate::lifecycle::{self, Fixed};
use crate::listen::Listener;

/// `config_path` is read again on SIGHUP.
pub async fn run(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
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
    let fixed = Fixed::of(&config);
    let redis = config.revocation.redis.clone();
    let app = crate::assemble::app(config, None).await?;
    let revocations = app.sessions.revocations().clone();
    if !revocations.is_empty() {
        tracing::info!(revocations = revocations.len(), "revocation list loaded");
    }
    if !app.login.is_configured() {
        tracing::warn!(
            "no identity provider is configured: passthrough paths and tokens work, nobody can log in"
        );
    }
    let max_connections = crate::connections::fit_to_fd_limit(fixed.connections_max);
    let listener = Listener::bind(&fixed.listen, fixed.listen_socket_mode)?;
    if let Some(addr) = fixed.metrics_listen.filter(|_| app.config.metrics.enabled) {
        let l = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("metrics.listen: cannot listen on {addr}: is another process using it?")
        })?;
        tracing::info!(metrics_listen = %addr, "metrics served on their own address");
        tokio::spawn(crate::metrics::serve_separate(l));
    }
    // Signal handlers first: from "ready" on, SIGTERM and SIGHUP must find
    // them (the default actions would end the process).
    let stop = lifecycle::StopSignals::install().context("cannot install the SIGTERM handler")?;
    let hup = lifecycle::sighup().context("cannot install the SIGHUP handler")?;
    let local = listener.local();
    tracing::info!(listen = %local, domain = %app.config.domain, upstream = %app.config.upstream.url, "portcullis ready");
    let shared = Arc::new(ArcSwap::from_pointee(app));
    tokio::spawn(lifecycle::reload_on_sighup(
        hup,
        shared.clone(),
        config_path,
        fixed,
    ));
    if let Some(store) = redis {
        tokio::spawn(crate::revocation::shared::run(revocations.clone(), store));
    }
    tokio::spawn(crate::revocation::watch::watch(revocations));
    lifecycle::notify_ready(&format!("serving on {local}"));
    crate::connections::serve(shared, listener, max_connections, stop.wait()).await?;
    tracing::info!("stopped");
    Ok(())
}
