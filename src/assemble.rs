//! Building the [`App`] from a checked [`Config`]: the one builder shared by
//! start (`run`), reload on SIGHUP (`lifecycle`) and `check-config`, so
//! `check-config` cannot pass a file that start would refuse.
//!
//! It must never bind a socket or start serving: that is `run`'s job.

use std::sync::Arc;

use crate::config::Config;
use crate::idp::Login;
use crate::proxy::{UpstreamClient, UpstreamSetupError};
use crate::revocation::Revocations;
use crate::server::App;
use crate::session::{KeyRing, Sessions, Transactions};

/// The parts of an [`App`] that need neither the network nor files
/// written: checked by `check-config`, and built by [`app`] too.
pub fn offline_parts(config: &Config) -> Result<UpstreamClient, UpstreamSetupError> {
    UpstreamClient::new(config)
}

/// Everything that can be checked without serving: the key ring (created
/// when missing), the revocation list, the upstream client and the IdP
/// (its metadata or discovery document loaded).
///
/// `revocations` is the running instance's list, kept across reloads;
/// `None` opens it from `revocation.file`.
pub async fn app(config: Config, revocations: Option<Arc<Revocations>>) -> anyhow::Result<App> {
    let ring = Arc::new(KeyRing::load_or_create(&config.session.key_file)?);
    let revocations = match revocations {
        Some(r) => {
            r.set_lifetime(config.session.lifetime.as_secs());
            r
        }
        None => Arc::new(Revocations::open(
            &config.revocation.file,
            config.session.lifetime.as_secs(),
        )?),
    };
    let sessions = Sessions::new(&config, ring.clone()).with_revocations(revocations);
    let transactions = Transactions::new(&config, ring);
    let upstream = offline_parts(&config)?;
    let login = Login::from_config(&config).await?;
    Ok(App::new(config, sessions, transactions, upstream, login))
}
