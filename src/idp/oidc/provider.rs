//! The OpenID provider as Portcullis knows it: discovery document and keys,
//! fetched at start, cached on disk (so a restart works while the provider
//! is down), refreshed periodically, and refetched once (rate-limited) when
//! an ID token names a key Portcullis does not have yet.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse, CoreSubjectIdentifierType,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthUrl, Client, EmptyAdditionalProviderMetadata, EmptyExtraTokenFields,
    EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    JsonWebKeySetUrl, LogoutProviderMetadata, ProviderMetadataWithLogout, ResponseTypes,
    StandardErrorResponse, StandardTokenResponse, TokenUrl, UserInfoUrl,
};
use serde::{Deserialize, Serialize};

use crate::config::oidc::Oidc;

/// Every claim beyond the standard ones (groups, roles, …), kept as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraClaims(pub serde_json::Map<String, serde_json::Value>);
impl AdditionalClaims for ExtraClaims {}

pub type IdTokenFieldsX = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
pub type TokenResponse = StandardTokenResponse<IdTokenFieldsX, CoreTokenType>;

pub type OidcClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

pub type Metadata = ProviderMetadataWithLogout;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot reach the OpenID provider: {0}")]
    Unreachable(String),
    #[error("the OpenID provider's discovery document or keys are not valid: {0}")]
    Invalid(String),
    #[error("no discovery document: the provider is unreachable and nothing is cached yet")]
    NotLoaded,
}

/// What is known about the provider now.
pub struct Loaded {
    pub metadata: Metadata,
    pub fetched_at: SystemTime,
}

/// Don't refetch keys for unknown `kid`s more often than this: a flood of
/// forged tokens must not turn into a flood of requests to the provider.
const JWKS_REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// A login start probes the provider unless it answered this recently: a
/// short window, so an outage shows as a clear 503 page quickly, yet a burst
/// of unauthenticated hits costs the provider at most one request per window.
pub const REACHABLE_FRESH: Duration = Duration::from_secs(5);

pub struct Provider {
    cfg: Oidc,
    pub http: reqwest::Client,
    cache_file: PathBuf,
    state: RwLock<Option<Arc<Loaded>>>,
    last_contact: Mutex<Option<Instant>>,
    last_failure: Mutex<Option<Instant>>,
    last_jwks_refetch: Mutex<Option<Instant>>,
    /// One probe at a time: a burst of login starts shares it.
    probing: tokio::sync::Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    issuer: String,
    metadata: Metadata,
    /// Kept apart: the crate does not serialise the keys with the metadata.
    jwks: CoreJsonWebKeySet,
    fetched_at: u64,
}

impl Provider {
    pub fn new(cfg: Oidc, state_dir: &std::path::Path) -> Result<Provider, ProviderError> {
        // No redirects: a provider URL must not bounce requests elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| ProviderError::Invalid(format!("HTTP client: {e}")))?;
        Ok(Provider {
            cfg,
            http,
            cache_file: state_dir.join("oidc-provider.json"),
            state: RwLock::new(None),
            last_contact: Mutex::new(None),
            last_failure: Mutex::new(None),
            last_jwks_refetch: Mutex::new(None),
            probing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.state.read().ok().and_then(|s| s.clone())
    }

    fn set(&self, metadata: Metadata, fetched_at: SystemTime) {
        if let Ok(mut s) = self.state.write() {
            *s = Some(Arc::new(Loaded {
                metadata,
                fetched_at,
            }));
        }
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_contact.lock() {
            *t = Some(Instant::now());
        }
    }

    /// At start: fetch, else fall back to the disk cache.
    pub async fn load(&self) -> Result<(), ProviderError> {
        match self.refresh().await {
            Ok(()) => Ok(()),
            Err(live) => match self.read_cache() {
                Some((metadata, fetched_at)) => {
                    tracing::warn!(error = %live, "OpenID provider unreachable; using the cached discovery document and keys");
                    self.set(metadata, fetched_at);
                    Ok(())
                }
                None => Err(live),
            },
        }
    }

    /// Fetches discovery (or builds it from explicit endpoints) and keys,
    /// then writes the cache.
    pub async fn refresh(&self) -> Result<(), ProviderError> {
        let metadata = match self.fetch().await {
            Ok(m) => m,
            Err(e) => {
                crate::metrics::idp_metadata_refreshed(false, None);
                return Err(e);
            }
        };
        crate::metrics::idp_metadata_refreshed(true, Some(crate::clock::now()));
        self.touch();
        let now = SystemTime::now();
        self.write_cache(&metadata, now);
        self.set(metadata, now);
        Ok(())
    }

    async fn fetch(&self) -> Result<Metadata, ProviderError> {
        let issuer = IssuerUrl::new(self.cfg.issuer.clone())
            .map_err(|e| ProviderError::Invalid(format!("issuer: {e}")))?;
        let unreachable = |e: String| ProviderError::Unreachable(e);
        let mut metadata = if self.cfg.discovery {
            Metadata::discover_async(issuer, &self.http)
                .await
                .map_err(|e| match e {
                    openidconnect::DiscoveryError::Request(e) => unreachable(e.to_string()),
                    other => ProviderError::Invalid(error_chain(&other)),
                })?
        } else {
            self.explicit_metadata(issuer)?
        };
        // Explicit endpoints in the config win over discovery.
        if let Some(u) = &self.cfg.token_endpoint {
            metadata = metadata.set_token_endpoint(Some(TokenUrl::from_url(u.clone())));
        }
        if let Some(u) = &self.cfg.userinfo_endpoint {
            metadata = metadata.set_userinfo_endpoint(Some(UserInfoUrl::from_url(u.clone())));
        }
        if metadata.token_endpoint().is_none() {
            return Err(ProviderError::Invalid(
                "no token endpoint; set `oidc.token_endpoint`".into(),
            ));
        }
        if !self.cfg.discovery {
            let jwks = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http)
                .await
                .map_err(|e| unreachable(error_chain(&e)))?;
            metadata = metadata.set_jwks(jwks);
        }
        Ok(metadata)
    }

    fn explicit_metadata(&self, issuer: IssuerUrl) -> Result<Metadata, ProviderError> {
        let missing =
            |f: &str| ProviderError::Invalid(format!("`oidc.{f}` is required without discovery"));
        let auth = self
            .cfg
            .authorization_endpoint
            .clone()
            .ok_or_else(|| missing("authorization_endpoint"))?;
        let jwks = self
            .cfg
            .jwks_uri
            .clone()
            .ok_or_else(|| missing("jwks_uri"))?;
        Ok(Metadata::new(
            issuer,
            AuthUrl::from_url(auth),
            JsonWebKeySetUrl::from_url(jwks),
            vec![ResponseTypes::new(vec![CoreResponseType::Code])],
            vec![CoreSubjectIdentifierType::Public],
            vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
            LogoutProviderMetadata {
                end_session_endpoint: self
                    .cfg
                    .end_session_endpoint
                    .clone()
                    .map(EndSessionUrl::from_url),
                additional_metadata: EmptyAdditionalProviderMetadata {},
            },
        ))
    }

    /// Refetches the key set after an ID token named an unknown key; at most
    /// once per interval. Returns whether new keys were loaded.
    pub async fn refetch_keys(&self) -> bool {
        {
            let Ok(mut last) = self.last_jwks_refetch.lock() else {
                return false;
            };
            if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_MIN_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let Some(current) = self.current() else {
            return false;
        };
        match CoreJsonWebKeySet::fetch_async(current.metadata.jwks_uri(), &self.http).await {
            Ok(jwks) => {
                self.touch();
                let metadata = current.metadata.clone().set_jwks(jwks);
                let now = SystemTime::now();
                self.write_cache(&metadata, now);
                self.set(metadata, now);
                tracing::info!("OpenID provider keys refetched after an unknown key id");
                true
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot refetch the OpenID provider's keys");
                false
            }
        }
    }

    /// Before sending a browser to the provider: is it there? Answers from
    /// memory when the provider was reached in the last few seconds.
    pub async fn ensure_reachable(&self) -> Result<Arc<Loaded>, ProviderError> {
        if let Some(answer) = self.recent_answer() {
            return answer;
        }
        // One probe at a time; whoever waited here uses its outcome.
        let _probe = self.probing.lock().await;
        if let Some(answer) = self.recent_answer() {
            return answer;
        }
        if let Err(e) = self.refresh().await {
            if let Ok(mut t) = self.last_failure.lock() {
                *t = Some(Instant::now());
            }
            return Err(e);
        }
        self.current().ok_or(ProviderError::NotLoaded)
    }

    /// What the last few seconds already tell: reached (use what is loaded)
    /// or failed (during an outage, answer from memory instead of making
    /// every unauthenticated navigation wait for a timeout).
    fn recent_answer(&self) -> Option<Result<Arc<Loaded>, ProviderError>> {
        let recent = |m: &Mutex<Option<Instant>>| {
            m.lock()
                .ok()
                .and_then(|t| *t)
                .is_some_and(|t| t.elapsed() < REACHABLE_FRESH)
        };
        if recent(&self.last_contact)
            && let Some(loaded) = self.current()
        {
            return Some(Ok(loaded));
        }
        recent(&self.last_failure).then(|| {
            Err(ProviderError::Unreachable(
                "it did not answer a moment ago".into(),
            ))
        })
    }

    /// Refreshes discovery and keys every `refresh_interval`, and retries
    /// sooner while nothing is loaded.
    pub fn spawn_refresh(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let interval = self.cfg.refresh_interval;
        tokio::spawn(async move {
            loop {
                let wait = match me.upgrade() {
                    Some(p) if p.current().is_none() => Duration::from_secs(10),
                    Some(_) => interval,
                    None => return,
                };
                tokio::time::sleep(wait).await;
                let Some(p) = me.upgrade() else { return };
                if let Err(e) = p.refresh().await {
                    tracing::warn!(error = %e, "OpenID provider refresh failed; keeping the last good discovery document and keys");
                }
            }
        });
    }

    fn read_cache(&self) -> Option<(Metadata, SystemTime)> {
        let bytes = std::fs::read(&self.cache_file).ok()?;
        let cache: CacheFile = serde_json::from_slice(&bytes).ok()?;
        // A cache written for another issuer (config changed) is useless.
        if cache.issuer != self.cfg.issuer {
            return None;
        }
        Some((
            cache.metadata.set_jwks(cache.jwks),
            SystemTime::UNIX_EPOCH + Duration::from_secs(cache.fetched_at),
        ))
    }

    fn write_cache(&self, metadata: &Metadata, at: SystemTime) {
        let cache = CacheFile {
            issuer: self.cfg.issuer.clone(),
            metadata: metadata.clone(),
            jwks: metadata.jwks().clone(),
            fetched_at: at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let Ok(json) = serde_json::to_vec_pretty(&cache) else {
            return;
        };
        // Unique per writer: two refreshes must not interleave in one file.
        let tmp = self
            .cache_file
            .with_extension(format!("tmp{}", crate::random_id(6)));
        let result = std::fs::create_dir_all(
            self.cache_file
                .parent()
                .unwrap_or(std::path::Path::new(".")),
        )
        .and_then(|()| std::fs::write(&tmp, json))
        .and_then(|()| std::fs::rename(&tmp, &self.cache_file));
        if let Err(e) = result {
            tracing::warn!(error = %e, path = %self.cache_file.display(), "cannot write the OpenID provider cache");
        }
    }
}

/// An error and its sources on one line (the crates nest the useful part).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
