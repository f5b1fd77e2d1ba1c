//! Sessions: a JWT in a cookie, signed with HMAC-SHA256 by a key from the
//! key ring and verified on every request. [`Sessions`] is the one entry
//! point: mint a cookie after login, verify (and maybe renew) it later.

pub mod cache;
pub mod cookies;
pub mod keyring;
pub mod logout_hint;
pub mod sid;
pub mod transaction;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::identity::{Identity, IdpKind};
pub use cookies::CookieAttrs;
pub use keyring::{KeyRing, KeyRingError};
pub use logout_hint::LogoutHint;
pub use transaction::{LoginFlow, Transaction, TransactionError, Transactions};

pub use crate::INTERNAL_COOKIE_PREFIX;
pub use crate::clock::now;

/// Clock leeway when checking `exp`: small, because Portcullis is both the
/// signer and the verifier (only instances' clocks can differ).
const LEEWAY_SECS: u64 = 5;

/// What the session cookie holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    pub idp: IdpKind,
    /// The SAML NameID Format (of `nid` when there is one, else of `sub`),
    /// when the IdP gave one: an IdP-initiated logout must name the same
    /// NameID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_fmt: Option<String>,
    /// Portcullis' own id of this login ([`sid`]): what `portcullis revoke
    /// --session` names. Absent only in cookies minted before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The IdP's id of the login: the OpenID Provider's `sid` claim, the
    /// SAML `SessionIndex`. Compact names: the cookie stays small.
    #[serde(default, rename = "isid", skip_serializing_if = "Option::is_none")]
    pub idp_sid: Option<String>,
    /// The SAML NameID, only when the subject was mapped from another
    /// attribute (else it is `sub`): a logout names the NameID.
    #[serde(default, rename = "nid", skip_serializing_if = "Option::is_none")]
    pub name_id: Option<String>,
    /// The SAML NameID's `NameQualifier` and `SPNameQualifier` as issued:
    /// a LogoutRequest must repeat them (SAML 2.0 Profiles §4.4.4.1).
    #[serde(default, rename = "nq", skip_serializing_if = "Option::is_none")]
    pub name_qualifier: Option<String>,
    #[serde(default, rename = "spnq", skip_serializing_if = "Option::is_none")]
    pub sp_name_qualifier: Option<String>,
    /// When the user signed in at the IdP (OIDC `auth_time`, SAML
    /// `AuthnInstant`; Unix seconds), when the IdP said. `auth_time` is
    /// when Portcullis logged the browser in, which may reuse an older
    /// sign-in at the IdP. `max_auth_age` is held to this one
    /// (`policy::fresh`).
    #[serde(default, rename = "at", skip_serializing_if = "Option::is_none")]
    pub idp_auth_time: Option<u64>,
    /// The app's role (`roles:`), chosen at login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub auth_time: u64,
    pub iat: u64,
    pub exp: u64,
}

impl SessionClaims {
    /// When this login happened, in milliseconds: from the session id when
    /// there is one (revocations "issued before T" need better than the
    /// second, or a login right after `revoke --all` would be cut too),
    /// else the login second.
    pub fn login_ms(&self) -> u64 {
        self.sid
            .as_deref()
            .and_then(sid::minted_ms)
            .unwrap_or(self.auth_time.saturating_mul(1000))
    }

    /// What a revocation can match.
    pub fn revocable(&self) -> crate::revocation::Login<'_> {
        crate::revocation::Login {
            at_ms: self.login_ms(),
            sid: self.sid.as_deref(),
            user: &self.user,
            subject: &self.sub,
            idp_session: self.idp_sid.as_deref(),
            name_id: match self.idp {
                IdpKind::Saml => Some(self.name_id.as_deref().unwrap_or(&self.sub)),
                IdpKind::Oidc => None,
            },
            name_id_format: self.sub_fmt.as_deref(),
        }
    }

    /// The SAML NameID this session was issued for: `nid`, else the
    /// subject (which is the NameID unless it was mapped from an
    /// attribute).
    pub fn saml_name_id(&self) -> &str {
        self.name_id.as_deref().unwrap_or(&self.sub)
    }

    pub fn identity(&self) -> Identity {
        Identity {
            subject: self.sub.clone(),
            user: self.user.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            preferred_username: self.preferred_username.clone(),
            groups: self.groups.clone(),
            extra: self.extra.clone(),
            role: self.role.clone(),
        }
    }
}

/// Why a session cookie was refused. Only the kind is logged, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session cookie is malformed")]
    Malformed,
    #[error("the session cookie was signed by a key that is not in the key ring")]
    UnknownKey,
    #[error("the session cookie's signature does not verify")]
    BadSignature,
    #[error("the session has expired")]
    Expired,
    #[error("the session cookie was issued for another domain")]
    WrongDomain,
    #[error(
        "the session is larger than the browser's cookie limits allow; operator fix: keep only the groups the app needs with session.groups, or reduce the groups or attributes the IdP sends"
    )]
    TooLarge,
    #[error("the session could not be signed")]
    Signing,
    #[error("the session was revoked; sign in again")]
    Revoked,
}

/// What the IdP said about a login besides the identity: the names a
/// logout or revocation from the IdP can use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginRefs {
    /// The SAML NameID Format.
    pub subject_format: Option<String>,
    /// OIDC `sid` claim or SAML `SessionIndex`.
    pub idp_sid: Option<String>,
    /// The SAML NameID when it is not the subject.
    pub name_id: Option<String>,
    /// The SAML NameID's `NameQualifier` and `SPNameQualifier`, as issued.
    pub name_qualifier: Option<String>,
    pub sp_name_qualifier: Option<String>,
    /// When the user signed in at the IdP, when it said (Unix seconds).
    pub idp_auth_time: Option<u64>,
}

impl SessionError {
    /// The `result` label of `portcullis_session_verifications_total` for this
    /// refusal.
    pub fn metric_label(self) -> &'static str {
        match self {
            SessionError::Malformed => "malformed",
            SessionError::UnknownKey => "unknown_key",
            SessionError::BadSignature => "bad_signature",
            SessionError::Expired => "expired",
            SessionError::WrongDomain => "wrong_domain",
            SessionError::TooLarge => "too_large",
            SessionError::Signing => "signing_failed",
            SessionError::Revoked => "revoked",
        }
    }
}

/// A verified session, and the cookies to send back if it was renewed.
#[derive(Debug)]
pub struct Verified {
    /// Shared with the verified-cookie cache: no copy per request.
    pub claims: Arc<SessionClaims>,
    /// `Set-Cookie` values when the inactivity window asked for a renewal.
    pub renewal: Option<Vec<String>>,
}

pub struct Sessions {
    ring: Arc<KeyRing>,
    domain: String,
    lifetime: Duration,
    inactivity: Option<Duration>,
    cookie_name: String,
    /// `session.max_cookie_bytes`: a longer token is not minted.
    max_token_bytes: usize,
    attrs: CookieAttrs,
    validation: Validation,
    /// Cookies whose signature was already checked (see [`cache`]).
    cache: cache::VerifiedCache,
    /// Checked after the signature on every verification, cache hits
    /// included: a cached cookie never outlives its revocation.
    revocations: Arc<crate::revocation::Revocations>,
    /// The OpenID provider's ID token for RP-initiated logout.
    logout_hint: LogoutHint,
}

impl Sessions {
    pub fn new(config: &Config, ring: Arc<KeyRing>) -> Sessions {
        // The algorithm is pinned here, never taken from the token header.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.domain]);
        validation.set_audience(&[&config.domain]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Sessions {
            ring,
            domain: config.domain.clone(),
            lifetime: config.session.lifetime,
            inactivity: config.session.inactivity_timeout,
            cookie_name: config.session.cookie_name.clone(),
            max_token_bytes: config.session.max_cookie_bytes,
            attrs: CookieAttrs {
                secure: config.session.secure_cookie,
                same_site_none: false,
            },
            validation,
            cache: cache::VerifiedCache::new(config.session.verify_cache_size, LEEWAY_SECS),
            revocations: Arc::new(crate::revocation::Revocations::in_memory()),
            logout_hint: LogoutHint::new(config.session.secure_cookie),
        }
    }

    /// The same, checking sessions against `revocations` (shared by the
    /// instance across configuration reloads).
    pub fn with_revocations(
        mut self,
        revocations: Arc<crate::revocation::Revocations>,
    ) -> Sessions {
        self.revocations = revocations;
        self
    }

    pub fn revocations(&self) -> &Arc<crate::revocation::Revocations> {
        &self.revocations
    }

    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    pub fn attrs(&self) -> CookieAttrs {
        self.attrs
    }

    /// Claims for a fresh login at `now`.
    pub fn claims_for(&self, identity: &Identity, idp: IdpKind, now: u64) -> SessionClaims {
        let mut claims = SessionClaims {
            iss: self.domain.clone(),
            aud: self.domain.clone(),
            sub: identity.subject.clone(),
            user: identity.user.clone(),
            email: identity.email.clone(),
            name: identity.name.clone(),
            preferred_username: identity.preferred_username.clone(),
            groups: identity.groups.clone(),
            extra: identity.extra.clone(),
            idp,
            sub_fmt: None,
            sid: Some(sid::new(sid::ms_within(now))),
            idp_sid: None,
            name_id: None,
            name_qualifier: None,
            sp_name_qualifier: None,
            idp_auth_time: None,
            role: identity.role.clone(),
            auth_time: now,
            iat: now,
            exp: 0,
        };
        claims.exp = self.expiry(&claims, now);
        claims
    }

    /// The earlier of the absolute end and the inactivity end.
    fn expiry(&self, claims: &SessionClaims, now: u64) -> u64 {
        let absolute = claims.auth_time.saturating_add(self.lifetime.as_secs());
        match self.inactivity {
            Some(idle) => absolute.min(now.saturating_add(idle.as_secs())),
            None => absolute,
        }
    }

    /// Signs claims into a JWT with the active key.
    pub fn encode(&self, claims: &SessionClaims) -> Result<String, SessionError> {
        let key = self.ring.active();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&key.secret))
            .map_err(|_| SessionError::Signing)
    }

    /// `Set-Cookie` values for a new session (after login).
    pub fn mint(
        &self,
        identity: &Identity,
        idp: IdpKind,
        request_cookies: &[(&str, &str)],
    ) -> Result<Vec<String>, SessionError> {
        self.mint_login(identity, idp, &LoginRefs::default(), request_cookies)
    }

    /// [`Self::mint`], remembering what the IdP named the login by.
    pub fn mint_login(
        &self,
        identity: &Identity,
        idp: IdpKind,
        refs: &LoginRefs,
        request_cookies: &[(&str, &str)],
    ) -> Result<Vec<String>, SessionError> {
        let now = now();
        let mut claims = self.claims_for(identity, idp, now);
        claims.sub_fmt.clone_from(&refs.subject_format);
        claims.idp_sid.clone_from(&refs.idp_sid);
        claims.name_id = refs.name_id.clone().filter(|n| *n != claims.sub);
        claims.name_qualifier.clone_from(&refs.name_qualifier);
        claims.sp_name_qualifier.clone_from(&refs.sp_name_qualifier);
        claims.idp_auth_time = refs.idp_auth_time;
        self.cookies_for(&claims, request_cookies, now)
    }

    fn cookies_for(
        &self,
        claims: &SessionClaims,
        request_cookies: &[(&str, &str)],
        now: u64,
    ) -> Result<Vec<String>, SessionError> {
        let token = self.encode(claims)?;
        if token.len() > self.max_token_bytes {
            return Err(SessionError::TooLarge);
        }
        cookies::write_chunked(
            request_cookies,
            &self.cookie_name,
            &token,
            claims.exp.saturating_sub(now),
            self.attrs,
        )
        .ok_or(SessionError::TooLarge)
    }

    /// Verifies a JWT: `kid` in the ring, HS256 signature, iss/aud equal to
    /// this domain, `exp`.
    pub fn decode(&self, token: &str) -> Result<SessionClaims, SessionError> {
        self.decode_with_kid(token).map(|(claims, _)| claims)
    }

    fn decode_with_kid(&self, token: &str) -> Result<(SessionClaims, String), SessionError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| SessionError::Malformed)?;
        let kid = header.kid.ok_or(SessionError::UnknownKey)?;
        let key = self.ring.get(&kid).ok_or(SessionError::UnknownKey)?;
        jsonwebtoken::decode::<SessionClaims>(
            token,
            &DecodingKey::from_secret(&key.secret),
            &self.validation,
        )
        .map(|d| (d.claims, kid))
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature | K::InvalidAlgorithm | K::InvalidAlgorithmName => {
                    SessionError::BadSignature
                }
                K::ExpiredSignature | K::ImmatureSignature => SessionError::Expired,
                K::InvalidIssuer | K::InvalidAudience => SessionError::WrongDomain,
                _ => SessionError::Malformed,
            }
        })
    }

    /// [`Self::decode`], remembering success: a cookie seen before is served
    /// from the cache while its token is unexpired and the key that signed
    /// it is still in the ring; anything else runs the full check, and only
    /// a pass is stored.
    fn decode_cached(&self, token: &str, now: u64) -> Result<Arc<SessionClaims>, SessionError> {
        let key = cache::token_hash(token);
        if let Some(hit) = self.cache.get(&key, now)
            && self.ring.get(&hit.kid).is_some()
        {
            return Ok(hit.claims);
        }
        let (claims, kid) = self.decode_with_kid(token)?;
        let claims = Arc::new(claims);
        self.cache.insert(
            key,
            cache::Entry {
                claims: claims.clone(),
                kid: kid.into(),
            },
            now,
        );
        Ok(claims)
    }

    /// Forgets every remembered cookie; the next request of each session
    /// runs the full check again.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Reads the session from the request's cookies and verifies it; renews
    /// it when at least half of the inactivity window has passed.
    pub fn verify(
        &self,
        request_cookies: &[(&str, &str)],
    ) -> Option<Result<Verified, SessionError>> {
        let token = cookies::read_chunked(request_cookies, &self.cookie_name)?;
        Some(self.verify_token(&token, request_cookies, now()))
    }

    pub fn verify_token(
        &self,
        token: &str,
        request_cookies: &[(&str, &str)],
        now: u64,
    ) -> Result<Verified, SessionError> {
        let claims = self.decode_cached(token, now)?;
        // `exp` again, against the same clock as everything below, whether
        // the claims came from the cache or were just decoded.
        if claims.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(SessionError::Expired);
        }
        // jsonwebtoken allows the leeway past exp; the absolute end is firm.
        if claims.auth_time.saturating_add(self.lifetime.as_secs()) + LEEWAY_SECS < now {
            return Err(SessionError::Expired);
        }
        if self.revocations.revokes(&claims.revocable()) {
            crate::metrics::revoked_request();
            return Err(SessionError::Revoked);
        }
        let renewal = match self.inactivity {
            Some(idle) if now.saturating_sub(claims.iat) >= idle.as_secs() / 2 => {
                let mut renewed = SessionClaims::clone(&claims);
                renewed.iat = now;
                renewed.exp = self.expiry(&renewed, now);
                (renewed.exp > claims.exp)
                    .then(|| self.cookies_for(&renewed, request_cookies, now).ok())
                    .flatten()
            }
            _ => None,
        };
        Ok(Verified { claims, renewal })
    }

    /// When a verified session stops being accepted, in Unix seconds: its
    /// `exp`, or the end of `session.lifetime` after login if that comes
    /// first (the lifetime may have been shortened since it was minted).
    pub fn ends_at(&self, claims: &SessionClaims) -> u64 {
        claims
            .exp
            .min(claims.auth_time.saturating_add(self.lifetime.as_secs()))
    }

    /// `Set-Cookie` values that end the session (logout), the logout hint
    /// included when the request carries one.
    pub fn clear(&self, request_cookies: &[(&str, &str)]) -> Vec<String> {
        let mut out = cookies::clear_chunked(request_cookies, &self.cookie_name, self.attrs);
        if self.logout_hint.read(request_cookies).is_some() {
            out.push(self.logout_hint.clear_cookie());
        }
        out
    }

    /// `Set-Cookie` value keeping the provider's ID token for logout, for
    /// as long as the session can live; when it does not fit, the value
    /// deleting an earlier login's hint, which would name another login.
    pub fn logout_hint_cookie(&self, id_token: &str) -> String {
        self.logout_hint
            .set_cookie(id_token, self.lifetime.as_secs())
            .unwrap_or_else(|| self.logout_hint.clear_cookie())
    }

    /// The ID token a logout request carries for `id_token_hint`.
    pub fn logout_hint<'a>(&self, request_cookies: &[(&str, &'a str)]) -> Option<&'a str> {
        self.logout_hint.read(request_cookies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        crate::config::from_yaml_str(&format!(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\n{extra}"
        ))
        .unwrap()
    }

    fn alice() -> Identity {
        Identity {
            subject: "alice-sub".into(),
            user: "alice".into(),
            email: Some("alice@example.com".into()),
            groups: vec!["admins".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_login_is_dated_by_its_session_id_to_the_millisecond() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let mut claims = s.claims_for(&alice(), IdpKind::Oidc, 1_700_000_000);
        claims.sid = Some(sid::new(1_700_000_000_123));
        assert_eq!(claims.login_ms(), 1_700_000_000_123);
        assert_eq!(claims.revocable().at_ms, 1_700_000_000_123);
        // A session minted before session ids: its login second.
        claims.sid = None;
        assert_eq!(claims.login_ms(), 1_700_000_000_000);
    }

    #[test]
    fn the_subject_format_is_kept_only_when_given() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let fmt = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
        let token_of = |set: Vec<String>| {
            set[0]
                .split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_string()
        };
        let with = s
            .mint_login(
                &alice(),
                IdpKind::Saml,
                &LoginRefs {
                    subject_format: Some(fmt.into()),
                    ..Default::default()
                },
                &[],
            )
            .unwrap();
        assert_eq!(
            s.decode(&token_of(with)).unwrap().sub_fmt.as_deref(),
            Some(fmt)
        );
        let without = s.mint(&alice(), IdpKind::Saml, &[]).unwrap();
        let token = token_of(without);
        assert_eq!(s.decode(&token).unwrap().sub_fmt, None);
        // Absent from the cookie, not `null`: sessions stay as small as before.
        let payload = token.split('.').nth(1).unwrap();
        let json =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap();
        assert!(!String::from_utf8(json).unwrap().contains("sub_fmt"));
    }

    #[test]
    fn round_trip() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let claims = s.claims_for(&alice(), IdpKind::Oidc, now());
        let token = s.encode(&claims).unwrap();
        assert_eq!(s.decode(&token).unwrap(), claims);
    }

    #[test]
    fn other_domain_with_same_keys_is_refused() {
        let ring = Arc::new(KeyRing::generate());
        let a = Sessions::new(&config(""), ring.clone());
        let b = Sessions::new(
            &crate::config::from_yaml_str(
                "domain: b.example.com\nupstream:\n  url: http://127.0.0.1:1\n",
            )
            .unwrap(),
            ring,
        );
        let token = a
            .encode(&a.claims_for(&alice(), IdpKind::Saml, now()))
            .unwrap();
        assert_eq!(b.decode(&token), Err(SessionError::WrongDomain));
    }

    #[test]
    fn tampered_unknown_kid_and_alg_none_are_refused() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let token = s
            .encode(&s.claims_for(&alice(), IdpKind::Oidc, now()))
            .unwrap();
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        // Change the payload: signature no longer matches.
        let mut claims = s.decode(&token).unwrap();
        claims.groups = vec!["root".into()];
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&claims).unwrap(),
        );
        assert_eq!(s.decode(&parts.join(".")), Err(SessionError::BadSignature));
        // Signed by a key from another ring.
        let other = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let foreign = other.encode(&claims).unwrap();
        assert_eq!(s.decode(&foreign), Err(SessionError::UnknownKey));
        // alg: none with a known kid.
        let kid = s.ring.active().kid.clone();
        let hdr = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            format!(r#"{{"alg":"none","kid":"{kid}"}}"#),
        );
        let none = format!("{hdr}.{}.", parts[1]);
        assert!(s.decode(&none).is_err());
    }

    #[test]
    fn expiry_and_inactivity_renewal() {
        let s = Sessions::new(
            &config("session:\n  lifetime: 2h\n  inactivity_timeout: 10m\n"),
            Arc::new(KeyRing::generate()),
        );
        let t0 = now();
        let mut claims = s.claims_for(&alice(), IdpKind::Oidc, t0);
        claims.idp_auth_time = Some(t0 - 100);
        assert_eq!(claims.exp, t0 + 600);
        let token = s.encode(&claims).unwrap();
        // Early: no renewal.
        assert!(
            s.verify_token(&token, &[], t0 + 60)
                .unwrap()
                .renewal
                .is_none()
        );
        // Past half the window: renewed, the new cookie carries a later exp.
        let v = s.verify_token(&token, &[], t0 + 301).unwrap();
        let set = v.renewal.expect("renewed");
        let value = set[0].split(';').next().unwrap().split_once('=').unwrap().1;
        let renewed = s.decode(value).unwrap();
        assert_eq!(renewed.exp, t0 + 301 + 600);
        assert_eq!(renewed.auth_time, t0);
        // Renewal is not a sign-in: the IdP's sign-in time stays.
        assert_eq!(renewed.idp_auth_time, Some(t0 - 100));
        // The absolute lifetime caps renewals, and ends the session.
        let late = SessionClaims {
            iat: t0 + 6500,
            exp: t0 + 7100,
            ..claims.clone()
        };
        let late_token = s.encode(&late).unwrap();
        let set = s
            .verify_token(&late_token, &[], t0 + 7000)
            .unwrap()
            .renewal
            .expect("renewed");
        let value = set[0].split(';').next().unwrap().split_once('=').unwrap().1;
        assert_eq!(s.decode(value).unwrap().exp, t0 + 7200);
        assert_eq!(
            s.verify_token(&late_token, &[], t0 + 7206).unwrap_err(),
            SessionError::Expired
        );
    }

    #[test]
    fn expired_cookie_is_refused() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let mut claims = s.claims_for(&alice(), IdpKind::Oidc, now() - 7200);
        claims.exp = now() - 60;
        let token = s.encode(&claims).unwrap();
        assert_eq!(s.decode(&token), Err(SessionError::Expired));
    }

    fn token_for(s: &Sessions, now: u64, sub: &str) -> String {
        let mut claims = s.claims_for(&alice(), IdpKind::Oidc, now);
        claims.sub = sub.into();
        s.encode(&claims).unwrap()
    }

    #[test]
    fn cache_serves_repeats_and_never_stores_failures() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let t0 = now();
        let token = token_for(&s, t0, "alice-sub");
        assert!(s.verify_token(&token, &[], t0).is_ok());
        assert_eq!(s.cache.len(), 1);
        assert!(s.verify_token(&token, &[], t0 + 1).is_ok());
        assert_eq!(s.cache.len(), 1);
        // Failures are not remembered, and do not disturb the good entry.
        let other = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let foreign = token_for(&other, t0, "mallory");
        for _ in 0..3 {
            assert_eq!(
                s.verify_token(&foreign, &[], t0).unwrap_err(),
                SessionError::UnknownKey
            );
        }
        assert_eq!(s.cache.len(), 1);
        assert!(s.verify_token(&token, &[], t0 + 2).is_ok());
    }

    #[test]
    fn cache_does_not_serve_a_tampered_cookie_with_the_same_prefix() {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let t0 = now();
        let token = token_for(&s, t0, "alice-sub");
        assert!(s.verify_token(&token, &[], t0).is_ok());
        // Same header and payload, another signature.
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[0] ^= 1;
        let forged_sig = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&raw));
        // Same header, changed payload, the original signature.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut claims = s.decode(&token).unwrap();
        claims.groups = vec!["root".into()];
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let forged_payload = parts.join(".");
        for forged in [
            forged_sig,
            forged_payload,
            format!("{token}A"),
            token[..token.len() - 1].to_string(),
        ] {
            assert!(s.verify_token(&forged, &[], t0).is_err(), "{forged}");
        }
        assert_eq!(s.cache.len(), 1);
    }

    #[test]
    fn cached_session_still_expires() {
        let s = Sessions::new(
            &config("session:\n  lifetime: 2h\n  inactivity_timeout: 10m\n"),
            Arc::new(KeyRing::generate()),
        );
        let t0 = now();
        let token = token_for(&s, t0, "alice-sub");
        assert!(s.verify_token(&token, &[], t0).is_ok());
        assert!(
            s.verify_token(&token, &[], t0 + 600).is_ok(),
            "within leeway"
        );
        assert_eq!(
            s.verify_token(&token, &[], t0 + 606).unwrap_err(),
            SessionError::Expired
        );
        // The expired entry is gone from the cache.
        let key = cache::token_hash(&token);
        assert!(s.cache.get(&key, t0 + 606).is_none());
    }

    fn revoked(target: crate::revocation::Target) -> Arc<crate::revocation::Revocations> {
        let r = Arc::new(crate::revocation::Revocations::in_memory());
        r.add(crate::revocation::Entry {
            target,
            at_ms: sid::now_ms() + 1,
            source: crate::revocation::entry::Source::Cli,
            by: "test".into(),
        })
        .unwrap();
        r
    }

    #[test]
    fn a_cached_verification_does_not_outlive_a_revocation() {
        use crate::revocation::{Entry, Revocations, Target, entry::Source};
        let list = Arc::new(Revocations::in_memory());
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()))
            .with_revocations(list.clone());
        let t0 = now();
        let token = token_for(&s, t0, "alice-sub");
        let bob = {
            let mut c = s.claims_for(&alice(), IdpKind::Oidc, t0);
            c.user = "bob".into();
            c.sub = "bob-sub".into();
            s.encode(&c).unwrap()
        };
        assert!(s.verify_token(&token, &[], t0).is_ok());
        assert!(s.verify_token(&bob, &[], t0).is_ok());
        assert_eq!(s.cache.len(), 2, "both are served from the cache now");
        list.add(Entry {
            target: Target::User("alice".into()),
            at_ms: sid::now_ms() + 1,
            source: Source::Cli,
            by: "test".into(),
        })
        .unwrap();
        assert_eq!(
            s.verify_token(&token, &[], t0).unwrap_err(),
            SessionError::Revoked
        );
        assert!(s.verify_token(&bob, &[], t0).is_ok(), "only alice is cut");
    }

    #[test]
    fn every_kind_of_revocation_refuses_the_session() {
        use crate::revocation::Target;
        let ring = Arc::new(KeyRing::generate());
        let plain = Sessions::new(&config(""), ring.clone());
        let t0 = now();
        let claims = plain.claims_for(&alice(), IdpKind::Oidc, t0);
        let token = plain.encode(&claims).unwrap();
        let sid = claims.sid.clone().unwrap();
        for target in [
            Target::All,
            Target::User("alice".into()),
            Target::Subject("alice-sub".into()),
            Target::Session(sid),
        ] {
            let s =
                Sessions::new(&config(""), ring.clone()).with_revocations(revoked(target.clone()));
            assert_eq!(
                s.verify_token(&token, &[], t0).unwrap_err(),
                SessionError::Revoked,
                "{target:?}"
            );
        }
        for target in [
            Target::User("alice2".into()),
            Target::Subject("alice".into()),
            Target::Session(sid::new(sid::now_ms())),
        ] {
            let s =
                Sessions::new(&config(""), ring.clone()).with_revocations(revoked(target.clone()));
            assert!(s.verify_token(&token, &[], t0).is_ok(), "{target:?}");
        }
    }

    #[test]
    fn the_session_id_keeps_a_large_session_in_as_many_cookies_as_before() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        // Entra ID sends group object ids: 36 characters each.
        let groups: Vec<String> = (0..20)
            .map(|i| format!("5f1c2a9e-7b3d-4e8f-9a60-0000000000{i:02}"))
            .collect();
        let id = Identity {
            groups,
            name: Some("Alice Example".into()),
            ..alice()
        };
        let refs = LoginRefs {
            idp_sid: Some("8e2f1c6a-3b5d-4c7e-9f10-2a4b6c8d0e1f".into()),
            ..Default::default()
        };
        let with = s.mint_login(&id, IdpKind::Oidc, &refs, &[]).unwrap();
        let mut before = s.claims_for(&id, IdpKind::Oidc, now());
        before.sid = None;
        let old_token = s.encode(&before).unwrap();
        let new_token = with[0]
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1;
        // One cookie, as before this session carried ids.
        assert_eq!(with.len(), 1);
        assert!(old_token.len() <= cookies::CHUNK_BYTES);
        // The session id and the OP's session id cost about 100 bytes.
        let grown = new_token.len() - old_token.len();
        assert!(grown <= 110, "grew by {grown}");
        let claims = s.decode(new_token).unwrap();
        assert_eq!(claims.idp_sid, refs.idp_sid);
        assert_eq!(claims.sid.as_deref().map(str::len), Some(22));
    }

    #[test]
    fn renewal_keeps_the_session_id() {
        let s = Sessions::new(
            &config("session:\n  lifetime: 2h\n  inactivity_timeout: 10m\n"),
            Arc::new(KeyRing::generate()),
        );
        let t0 = now();
        let claims = s.claims_for(&alice(), IdpKind::Oidc, t0);
        let token = s.encode(&claims).unwrap();
        let set = s
            .verify_token(&token, &[], t0 + 301)
            .unwrap()
            .renewal
            .unwrap();
        let value = set[0].split(';').next().unwrap().split_once('=').unwrap().1;
        assert_eq!(s.decode(value).unwrap().sid, claims.sid);
    }

    #[test]
    fn renewal_works_from_the_cache() {
        let s = Sessions::new(
            &config("session:\n  lifetime: 2h\n  inactivity_timeout: 10m\n"),
            Arc::new(KeyRing::generate()),
        );
        let t0 = now();
        let token = token_for(&s, t0, "alice-sub");
        assert!(
            s.verify_token(&token, &[], t0 + 60)
                .unwrap()
                .renewal
                .is_none()
        );
        assert_eq!(s.cache.len(), 1);
        let set = s
            .verify_token(&token, &[], t0 + 301)
            .unwrap()
            .renewal
            .expect("renewed from a cache hit");
        let value = set[0].split(';').next().unwrap().split_once('=').unwrap().1;
        assert_eq!(s.decode(value).unwrap().exp, t0 + 301 + 600);
    }

    #[test]
    fn cache_is_bounded() {
        let s = Sessions::new(
            &config("session:\n  verify_cache_size: 32\n"),
            Arc::new(KeyRing::generate()),
        );
        let t0 = now();
        let cap = s.cache.capacity();
        assert!((32..64).contains(&cap), "{cap}");
        for i in 0..500 {
            let token = token_for(&s, t0, &format!("user-{i}"));
            assert!(s.verify_token(&token, &[], t0).is_ok());
            assert!(s.cache.len() <= cap);
        }
        // Evicted cookies still verify (fully).
        let token = token_for(&s, t0, "user-0");
        assert!(s.verify_token(&token, &[], t0).is_ok());
    }

    #[test]
    fn cache_off_and_hits_need_the_key_in_the_ring() {
        let off = Sessions::new(
            &config("session:\n  verify_cache_size: 0\n"),
            Arc::new(KeyRing::generate()),
        );
        let t0 = now();
        let token = token_for(&off, t0, "alice-sub");
        assert!(off.verify_token(&token, &[], t0).is_ok());
        assert_eq!(off.cache.len(), 0);

        // An entry whose key is not in this ring (as after a reload that
        // removed it) is not served: the full check refuses the cookie.
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let gone = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let token = token_for(&gone, t0, "alice-sub");
        let claims = gone.decode(&token).unwrap();
        s.cache.insert(
            cache::token_hash(&token),
            cache::Entry {
                claims: Arc::new(claims),
                kid: gone.ring.active().kid.as_str().into(),
            },
            t0,
        );
        assert_eq!(
            s.verify_token(&token, &[], t0).unwrap_err(),
            SessionError::UnknownKey
        );
        s.clear_cache();
        assert!(s.cache.is_empty());
    }

    #[test]
    fn a_saml_session_names_its_name_id_else_its_subject() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let mut claims = s.claims_for(&alice(), IdpKind::Saml, now());
        assert_eq!(claims.saml_name_id(), "alice-sub");
        claims.name_id = Some("AAdzZWNyZXQx".into());
        assert_eq!(claims.saml_name_id(), "AAdzZWNyZXQx");
    }

    #[test]
    fn each_refusal_has_its_own_metric_label() {
        // The labels are what operators' dashboards and alerts select on.
        let labels: Vec<&str> = [
            SessionError::Malformed,
            SessionError::UnknownKey,
            SessionError::BadSignature,
            SessionError::Expired,
            SessionError::WrongDomain,
            SessionError::TooLarge,
            SessionError::Signing,
            SessionError::Revoked,
        ]
        .into_iter()
        .map(SessionError::metric_label)
        .collect();
        assert_eq!(
            labels,
            [
                "malformed",
                "unknown_key",
                "bad_signature",
                "expired",
                "wrong_domain",
                "too_large",
                "signing_failed",
                "revoked"
            ]
        );
    }

    fn token_of(set: &[String]) -> String {
        let value = set[0].split(';').next().unwrap().split_once('=').unwrap().1;
        value.to_string()
    }

    #[test]
    fn a_name_id_is_kept_only_when_it_is_not_the_subject() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let with = |name_id: &str| {
            let refs = LoginRefs {
                name_id: Some(name_id.into()),
                ..Default::default()
            };
            let set = s.mint_login(&alice(), IdpKind::Saml, &refs, &[]).unwrap();
            s.decode(&token_of(&set)).unwrap().name_id
        };
        assert_eq!(with("alice-sub"), None, "the subject is not stored twice");
        assert_eq!(with("AAdzZWNyZXQx"), Some("AAdzZWNyZXQx".to_string()));
    }

    #[test]
    fn a_token_of_exactly_the_limit_is_minted_one_byte_more_is_not() {
        let mut s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let t0 = now();
        let claims = s.claims_for(&alice(), IdpKind::Oidc, t0);
        let len = s.encode(&claims).unwrap().len();
        s.max_token_bytes = len;
        assert!(s.cookies_for(&claims, &[], t0).is_ok());
        s.max_token_bytes = len - 1;
        assert_eq!(
            s.cookies_for(&claims, &[], t0).unwrap_err(),
            SessionError::TooLarge
        );
    }

    #[test]
    fn exp_holds_to_the_last_second_of_the_leeway() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        let t0 = now();
        let mut claims = s.claims_for(&alice(), IdpKind::Oidc, t0);
        claims.exp = t0 + 100;
        let token = s.encode(&claims).unwrap();
        assert!(s.verify_token(&token, &[], t0 + 100 + LEEWAY_SECS).is_ok());
        assert_eq!(
            s.verify_token(&token, &[], t0 + 101 + LEEWAY_SECS)
                .unwrap_err(),
            SessionError::Expired
        );
    }

    #[test]
    fn the_lifetime_holds_to_the_last_second_of_the_leeway() {
        // `exp` is far off: only the absolute lifetime can end this one.
        let s = Sessions::new(
            &config("session:\n  lifetime: 1h\n"),
            Arc::new(KeyRing::generate()),
        );
        let t0 = now();
        let mut claims = s.claims_for(&alice(), IdpKind::Oidc, t0 - 3600);
        claims.exp = t0 + 600;
        let token = s.encode(&claims).unwrap();
        assert!(s.verify_token(&token, &[], t0 + LEEWAY_SECS).is_ok());
        assert_eq!(
            s.verify_token(&token, &[], t0 + LEEWAY_SECS + 1)
                .unwrap_err(),
            SessionError::Expired
        );
    }

    #[test]
    fn a_renewal_that_would_not_extend_the_session_is_not_sent() {
        let s = Sessions::new(
            &config("session:\n  lifetime: 2h\n  inactivity_timeout: 10m\n"),
            Arc::new(KeyRing::generate()),
        );
        let t0 = now();
        // Past half the window, but already at the lifetime's end.
        let claims = SessionClaims {
            iat: t0 + 6600,
            exp: t0 + 7200,
            ..s.claims_for(&alice(), IdpKind::Oidc, t0)
        };
        let token = s.encode(&claims).unwrap();
        let v = s.verify_token(&token, &[], t0 + 6900).unwrap();
        assert!(v.renewal.is_none(), "{:?}", v.renewal);
    }

    #[test]
    fn a_session_ends_at_its_exp_or_its_lifetime_whichever_is_first() {
        let s = Sessions::new(
            &config("session:\n  lifetime: 1h\n"),
            Arc::new(KeyRing::generate()),
        );
        let t0 = 1_700_000_000;
        let mut claims = s.claims_for(&alice(), IdpKind::Oidc, t0);
        claims.exp = t0 + 600;
        assert_eq!(s.ends_at(&claims), t0 + 600);
        // Minted under a longer lifetime than today's.
        claims.exp = t0 + 7200;
        assert_eq!(s.ends_at(&claims), t0 + 3600);
    }

    const ID_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
    const HINT: &str = "__Secure-portcullis_logout_hint";

    #[test]
    fn logout_clears_every_session_chunk_and_the_hint() {
        let s = Sessions::new(&config(""), Arc::new(KeyRing::generate()));
        assert_eq!(s.cookie_name(), "__Host-portcullis_session");
        let attrs = "; Path=/; HttpOnly; Secure; SameSite=Lax";
        let hint_attrs = "; Path=/.portcullis/logout; HttpOnly; Secure; SameSite=Lax";
        let request = [
            ("__Host-portcullis_session_0", "a"),
            ("__Host-portcullis_session_1", "b"),
            ("app_session", "c"),
            (HINT, ID_TOKEN),
        ];
        assert_eq!(
            s.clear(&request),
            [
                format!("__Host-portcullis_session_0=; Max-Age=0{attrs}"),
                format!("__Host-portcullis_session_1=; Max-Age=0{attrs}"),
                format!("{HINT}=; Max-Age=0{hint_attrs}"),
            ]
        );
        // Without a hint or a session cookie: the session cookie is deleted
        // all the same, and no hint cookie is written.
        assert_eq!(
            s.clear(&[("app_session", "c")]),
            [format!("__Host-portcullis_session=; Max-Age=0{attrs}")]
        );
    }

    #[test]
    fn the_logout_hint_lives_as_long_as_the_session_and_is_read_back() {
        let s = Sessions::new(
            &config("session:\n  lifetime: 1h\n"),
            Arc::new(KeyRing::generate()),
        );
        let hint_attrs = "; Path=/.portcullis/logout; HttpOnly; Secure; SameSite=Lax";
        assert_eq!(
            s.logout_hint_cookie(ID_TOKEN),
            format!("{HINT}={ID_TOKEN}; Max-Age=3600{hint_attrs}")
        );
        // What cannot be written deletes an earlier login's hint instead.
        assert_eq!(
            s.logout_hint_cookie("not a token"),
            format!("{HINT}=; Max-Age=0{hint_attrs}")
        );
        assert_eq!(
            s.logout_hint(&[("app", "x"), (HINT, ID_TOKEN)]),
            Some(ID_TOKEN)
        );
        assert_eq!(s.logout_hint(&[(HINT, "")]), None);
        assert_eq!(s.logout_hint(&[("portcullis_logout_hint", ID_TOKEN)]), None);
    }
}
