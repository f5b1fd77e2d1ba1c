//! Building the [`App`] from a checked [`Config`]: the one builder shared by
//! start (`run`), reload on SIGHUP (`lifecycle`) and `check-config`, so
//! `check-config` cannot pass a file that start would refuse.
//!
//! It must never bind a socket or start serving: that is `run`'s job.

use std::sync::Arc;

use crate::config::Config;
use crate::idp::Login;
use crate::proxy::{Upstream, UpstreamSetupError};
use crate::server::App;
use crate::session::{KeyRing, Sessions, Transactions};

/// The parts of an [`App`] that need neither the network nor files
/// written: checked by `check-config`, and built by [`app`] too.
pub fn offline_parts(config: &Config) -> Result<Upstream, UpstreamSetupError> {
    Upstream::new(config)
}

/// Everything that can be checked without serving: the key ring (created
/// when missing), the upstream client and the IdP (its metadata or
/// discovery document loaded).
pub async fn app(config: Config) -> anyhow::Result<App> {
    let ring = Arc::new(KeyRing::load_or_create(&config.session.key_file)?);
    let sessions = Sessions::new(&config, ring.clone());
    let transactions = Transactions::new(&config, ring);
    let upstream = offline_parts(&config)?;
    let login = Login::from_config(&config).await?;
    let assertions = match &config.assertion {
        Some(settings) => Some(crate::assertion::Assertions::new(
            settings.clone(),
            &config.public_origin(),
        )?),
        None => None,
    };
    Ok(App::new(config, sessions, transactions, upstream, login).with_assertions(assertions))
}
