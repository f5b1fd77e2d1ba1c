//! Keeping the IdP metadata fresh: the first load at start (the URL, else
//! the disk cache), the refresh of a metadata URL on its schedule, and the
//! background loop that runs it. A failed refresh keeps the last good copy.
//!
//! It never decides whether a response is trusted: it only swaps in
//! metadata that [`super::metadata::parse`] accepted.

use std::sync::{Arc, Weak};
use std::time::Duration;

use samael::crypto::CertificateDer;

use super::metadata::{self, IdpMetadata, MetadataError};
use super::{Active, SamlLogin, service_provider};
use crate::config::saml::MetadataSource;
use crate::config::saml::Saml as SamlConfig;

impl SamlLogin {
    /// Fetches the metadata URL once; keeps the last good copy on failure.
    pub async fn refresh(&self) -> Result<bool, MetadataError> {
        let MetadataSource::Url { url, .. } = &self.cfg.metadata else {
            return Ok(false);
        };
        let xml = metadata::fetch(url).await?;
        if xml == self.active().md.xml {
            return Ok(false);
        }
        let md = metadata::parse(
            &xml,
            url.as_str(),
            self.metadata_signer.as_ref(),
            chrono::Utc::now(),
        )?;
        if let Err(e) = metadata::write_cache(&self.cfg.metadata_cache_file, &md.xml) {
            tracing::warn!(error = %e, path = %self.cfg.metadata_cache_file.display(), "cannot write the IdP metadata cache");
        }
        let keys = md.signing_certs.len();
        let sp = service_provider(&self.cfg, &self.keys, &md);
        let next = Arc::new(Active { md, sp });
        match self.active.write() {
            Ok(mut a) => *a = next,
            Err(p) => *p.into_inner() = next,
        }
        tracing::info!(signing_keys = keys, "IdP metadata updated");
        Ok(true)
    }
}

pub(super) async fn initial_metadata(
    cfg: &SamlConfig,
    signer: Option<&CertificateDer>,
) -> Result<(IdpMetadata, bool), MetadataError> {
    let now = chrono::Utc::now();
    match &cfg.metadata {
        MetadataSource::File(path) => {
            let xml = metadata::read_file(path)?;
            metadata::parse(&xml, &path.display().to_string(), signer, now).map(|md| (md, false))
        }
        MetadataSource::Url { url, .. } => {
            let fetched = match metadata::fetch(url).await {
                Ok(xml) => metadata::parse(&xml, url.as_str(), signer, now),
                Err(e) => Err(e),
            };
            match fetched {
                Ok(md) => {
                    if let Err(e) = metadata::write_cache(&cfg.metadata_cache_file, &md.xml) {
                        tracing::warn!(error = %e, path = %cfg.metadata_cache_file.display(), "cannot write the IdP metadata cache");
                    }
                    Ok((md, false))
                }
                Err(fetch_err) => {
                    let cache = &cfg.metadata_cache_file;
                    let cached = metadata::read_file(cache).and_then(|xml| {
                        metadata::parse(&xml, &cache.display().to_string(), signer, now)
                    });
                    match cached {
                        Ok(md) => {
                            tracing::warn!(error = %fetch_err, cache = %cache.display(), "IdP metadata URL unreachable at start; using the cached copy");
                            Ok((md, true))
                        }
                        Err(cache_err) => Err(MetadataError::NoCache {
                            fetch: fetch_err.to_string(),
                            cache: cache.display().to_string(),
                            cache_reason: cache_err.to_string(),
                        }),
                    }
                }
            }
        }
    }
}

/// After a failure (or a start from the cache) the next try comes sooner.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

pub(super) async fn refresh_loop(saml: Weak<SamlLogin>, configured: Duration, mut failing: bool) {
    loop {
        let wait = {
            let Some(s) = saml.upgrade() else { return };
            let cache = s.active().md.cache_duration;
            let normal = cache.map_or(configured, |c| c.min(configured));
            if failing {
                normal.min(RETRY_AFTER_FAILURE)
            } else {
                normal
            }
            .max(Duration::from_secs(1))
        };
        tokio::time::sleep(wait).await;
        let Some(s) = saml.upgrade() else { return };
        failing = match s.refresh().await {
            Ok(_) => {
                crate::metrics::idp_metadata_refreshed(true, Some(crate::clock::now()));
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "IdP metadata refresh failed; keeping the last good copy");
                crate::metrics::idp_metadata_refreshed(false, None);
                true
            }
        };
    }
}
