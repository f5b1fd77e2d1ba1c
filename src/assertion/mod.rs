//! The signed identity assertion: a short-lived JWT in a header of every
//! forwarded authenticated request, signed with a key of its own
//! ([`signing_keys`]), so the app can check who is calling however its network is
//! laid out. The public keys are served at `/.portcullis/jwks.json`.
//!
//! Signing costs more than the rest of a cached request, so an assertion is
//! reused for the same identity while at least half its lifetime is left.

pub mod signing_keys;

use std::collections::HashMap;
use std::sync::Mutex;

use http::HeaderValue;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config;
use crate::identity::{Identity, IdpKind};
pub use signing_keys::{AssertionKeyError, AssertionKeys};

/// Where the identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A session: the IdP and the time the user signed in there.
    Session {
        idp: IdpKind,
        auth_time: u64,
        /// The session's own expiry; the assertion never outlives it.
        exp: u64,
    },
    /// A passthrough token, named by the identity's user.
    Token,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    groups: &'a [String],
    /// The app's role (`roles:`), when roles are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    idp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<u64>,
    iat: u64,
    exp: u64,
    jti: String,
}

/// The signing key could not sign (e.g. an RSA key the signing library
/// refuses, over 8192 bits). Names the key, never key material.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "could not sign the identity assertion with key {kid}: {reason}; the request was refused (assertion.enabled: the app relies on it). Replace the key: remove it from the assertion key file and reload, or add a new one with `portcullis keys assertion rotate`"
)]
pub struct SigningFailed {
    pub kid: String,
    pub reason: String,
}

/// Cached assertions beyond this many are dropped all at once: one
/// identity's next request signs again, nothing worse.
const CACHE_MAX: usize = 16384;

/// Mints assertions for one configuration.
#[derive(Debug)]
pub struct Assertions {
    settings: config::Assertion,
    issuer: String,
    keys: AssertionKeys,
    /// Identity digest -> (header value, exp).
    cache: Mutex<HashMap<[u8; 32], (HeaderValue, u64)>>,
}

impl Assertions {
    /// Loads (or creates) the key file.
    pub fn new(
        settings: config::Assertion,
        public_origin: &str,
    ) -> Result<Assertions, AssertionKeyError> {
        let keys = AssertionKeys::load_or_create(&settings.key_file, settings.algorithm)?;
        Ok(Assertions {
            settings,
            issuer: public_origin.to_string(),
            keys,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn header(&self) -> &http::HeaderName {
        &self.settings.header
    }

    /// The JSON Web Key Set: every key in the file, signing or not yet.
    pub fn jwks(&self) -> String {
        self.keys.jwks()
    }

    /// The header value for `id`, from the cache or freshly signed. An
    /// error means the request must not be forwarded: with
    /// `assertion.enabled` the app relies on the assertion (fail closed).
    pub fn for_identity(
        &self,
        id: &Identity,
        source: Source,
        now: u64,
    ) -> Result<HeaderValue, SigningFailed> {
        let digest = digest(id, source);
        let half = self.settings.lifetime.as_secs() / 2;
        if let Ok(cache) = self.cache.lock()
            && let Some((v, exp)) = cache.get(&digest)
            && *exp >= now.saturating_add(half)
        {
            return Ok(v.clone());
        }
        let (value, exp) = self.mint(id, source, now).map_err(|e| SigningFailed {
            kid: self
                .keys
                .signer(now, self.settings.publish_ahead)
                .kid
                .clone(),
            reason: e.to_string(),
        })?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(digest, (value.clone(), exp));
        }
        Ok(value)
    }

    /// A new assertion and its `exp`.
    pub fn mint(
        &self,
        id: &Identity,
        source: Source,
        now: u64,
    ) -> Result<(HeaderValue, u64), jsonwebtoken::errors::Error> {
        let key = self.keys.signer(now, self.settings.publish_ahead);
        let mut exp = now.saturating_add(self.settings.lifetime.as_secs());
        let (idp, auth_time) = match source {
            Source::Session {
                idp,
                auth_time,
                exp: session_exp,
            } => {
                exp = exp.min(session_exp);
                (
                    match idp {
                        IdpKind::Oidc => "oidc",
                        IdpKind::Saml => "saml",
                    },
                    Some(auth_time),
                )
            }
            Source::Token => ("token", None),
        };
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.settings.audience,
            sub: &id.subject,
            user: &id.user,
            email: id.email.as_deref(),
            name: id.name.as_deref(),
            groups: &id.groups,
            role: id.role.as_deref(),
            idp,
            auth_time,
            iat: now,
            exp,
            jti: crate::random_id(16),
        };
        let mut header = jsonwebtoken::Header::new(key.alg.jwt());
        header.kid = Some(key.kid.clone());
        let jwt = jsonwebtoken::encode(&header, &claims, &key.encoding)?;
        // A JWT is base64url and dots: always a valid header value.
        let value = HeaderValue::from_str(&jwt)
            .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidToken)?;
        Ok((value, exp))
    }
}

/// Identifies one identity from one source; the cache key.
fn digest(id: &Identity, source: Source) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(id).unwrap_or_default());
    match source {
        Source::Session {
            idp,
            auth_time,
            exp,
        } => {
            h.update([1, idp as u8]);
            h.update(auth_time.to_be_bytes());
            h.update(exp.to_be_bytes());
        }
        Source::Token => h.update([2]),
    }
    h.finalize().into()
}
