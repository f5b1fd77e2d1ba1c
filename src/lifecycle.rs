//! The process around the server: systemd readiness (`Type=notify`),
//! configuration reload on SIGHUP, and the stop signals.
//!
//! Reload builds a complete new [`App`] from the configuration file (and
//! the environment), the key ring and, once an IdP is configured, its
//! metadata; only when all of that succeeded is it swapped in, atomically,
//! for the requests that start afterwards. Requests and connections in
//! flight keep the `App` they started with, so nothing is dropped. A bad
//! new configuration is refused, logged with its field errors, and the old
//! one stays in force.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sd_notify::NotifyState;

use crate::config::Config;
use crate::listen::ListenAddr;
use crate::server::App;

/// The configuration in force, replaced as a whole on reload.
pub type SharedApp = Arc<ArcSwap<App>>;

/// Tells systemd (when it started us with `Type=notify`) that the listener
/// is bound and the `App` built. The IdP flavours load their discovery
/// document or metadata while it is built (`assemble::app`), so READY=1
/// (and a successful reload) means a login can start at once. Without `NOTIFY_SOCKET`, does nothing.
pub fn notify_ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn notify_stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// What a running server cannot change without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    pub listen: ListenAddr,
    pub listen_socket_mode: u32,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub connections_max: usize,
    /// The running list stays on its file until a restart.
    pub revocation_file: PathBuf,
    /// The running instance stays on its Redis until a restart.
    pub revocation_redis: Option<crate::config::RedisStore>,
}

impl Fixed {
    pub fn of(config: &Config) -> Fixed {
        Fixed {
            listen: config.listen.clone(),
            listen_socket_mode: config.listen_socket_mode,
            metrics_listen: config.metrics.listen,
            connections_max: config.connections.max,
            revocation_file: config.revocation.file.clone(),
            revocation_redis: config.revocation.redis.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0:#}")]
    Build(anyhow::Error),
}

/// Reads the configuration again and, if it is complete and valid, swaps
/// it in. On error the old configuration stays and the error is returned.
pub async fn reload(
    shared: &SharedApp,
    path: Option<&std::path::Path>,
    fixed: &Fixed,
) -> Result<(), ReloadError> {
    let config = crate::config::load(path)?;
    let new_fixed = Fixed::of(&config);
    let revocations = shared.load().sessions.revocations().clone();
    let app = crate::assemble::app(config, Some(revocations))
        .await
        .map_err(ReloadError::Build)?;
    if &new_fixed != fixed {
        tracing::warn!(
            running = %fixed.listen,
            configured = %new_fixed.listen,
            "listen, listen_socket_mode, metrics.listen, connections.max, revocation.file or the revocation.redis_* settings changed: these take effect only after a restart (systemctl restart portcullis@NAME); everything else of the new configuration is applied now"
        );
    }
    shared.store(Arc::new(app));
    Ok(())
}

/// Installs the SIGHUP handler. Call before telling systemd we are ready:
/// until then a SIGHUP would end the process.
pub fn sighup() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// Reloads on every SIGHUP until the process ends.
pub async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    shared: SharedApp,
    path: Option<PathBuf>,
    fixed: Fixed,
) {
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the configuration");
        notify(&reloading_states());
        match reload(&shared, path.as_deref(), &fixed).await {
            Ok(()) => {
                crate::metrics::config_reloaded(true);
                tracing::info!("configuration reloaded");
                notify_ready("configuration reloaded");
            }
            Err(e) => {
                crate::metrics::config_reloaded(false);
                tracing::error!(
                    error = %e,
                    "configuration reload refused; the previous configuration stays in force. Fix the file (check it with `portcullis check-config --config FILE`) and reload again"
                );
                notify_ready("reload refused; previous configuration in force");
            }
        }
    }
}

fn reloading_states() -> Vec<NotifyState<'static>> {
    let mut s = vec![NotifyState::Reloading];
    // systemd 253+ wants the monotonic time with RELOADING=1; older ones
    // ignore it.
    if let Ok(t) = NotifyState::monotonic_usec_now() {
        s.push(t);
    }
    s
}

/// The stop signals, installed before Portcullis says it is ready: a
/// SIGTERM that arrives right after READY=1 must stop it gracefully, not
/// kill it with the default action.
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on SIGTERM or SIGINT.
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
        notify_stopping();
    }
}
