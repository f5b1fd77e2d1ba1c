//! OpenID Connect Back-Channel Logout 1.0: the provider POSTs a signed
//! logout token to `/.portcullis/oidc/backchannel-logout` when a user signs
//! out there, and every session of that provider session (its `sid`), or of
//! that subject when there is no `sid`, is revoked on this instance.
//!
//! The token is checked as §2.6 of the specification says, cheap checks
//! first: the algorithm against the ID-token allow-list (never `none`, never
//! HMAC: a logout token proves something only when the client could not
//! have made it), the signature with the provider's published keys (the
//! same key set and rate-limited refetch as ID tokens), `iss`, `aud`, `iat`
//! (within the clock skew, at most [`MAX_TOKEN_AGE`] old), `exp` when
//! present, `sub` and/or `sid`, the `events` member, no `nonce`, and `jti`
//! not seen before. This module never writes session cookies and never
//! logs the token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JwsSigningAlgorithm};
use serde_json::{Map, Value};

use super::provider::Provider;
use crate::Body;
use crate::revocation::{Entry, Target, entry::Source};

/// The endpoint's path under the reserved prefix.
pub const PATH: &str = "oidc/backchannel-logout";
/// The member of `events` that makes a JWT a logout token (§2.4).
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How old a logout token may be. The provider sends it while the user
/// signs out, so anything older is a replay or a stuck queue; the bound
/// also bounds how long a `jti` must be remembered.
pub const MAX_TOKEN_AGE: Duration = Duration::from_secs(300);
/// Logout tokens are a few hundred bytes; the form is refused beyond this.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// `jti`s remembered at once. Only tokens with a valid signature get here,
/// so reaching it means the provider sent thousands of logouts within
/// [`MAX_TOKEN_AGE`]; then new ones are refused (and the provider retries)
/// rather than forgetting one that could be replayed.
const MAX_JTIS: usize = 100_000;
/// Longer `jti`s are refused: they are kept in memory.
const MAX_JTI_LEN: usize = 256;

/// Why a logout token was refused; the text is the `error_description`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogoutTokenError {
    #[error("POST the logout token as the form field `logout_token`")]
    NoToken,
    #[error("the logout token is not a signed JWT (header.payload.signature): {0}")]
    Malformed(&'static str),
    #[error(
        "the logout token is signed with `{0}`, which is not allowed: the provider must sign logout tokens like ID tokens, with an algorithm in `oidc.allowed_algorithms` (never `none` or HMAC)"
    )]
    Algorithm(String),
    #[error(
        "the logout token is signed with a key the provider does not publish (kid `{0}`); check the provider's jwks_uri"
    )]
    UnknownKey(String),
    #[error("the logout token's signature does not verify with the provider's key")]
    BadSignature,
    #[error("the logout token's `iss` is not the configured `oidc.issuer`")]
    Issuer,
    #[error("the logout token's `aud` does not contain this client (`oidc.client_id`)")]
    Audience,
    #[error("the logout token has no numeric `iat`")]
    NoIssuedAt,
    #[error("the logout token's `iat` is in the future; check the clocks")]
    IssuedInFuture,
    #[error("the logout token was issued more than {0} seconds ago")]
    Stale(u64),
    #[error("the logout token has expired (`exp`)")]
    Expired,
    #[error("the logout token has neither `sub` nor `sid`")]
    NoSubject,
    #[error(
        "the logout token's `events` has no `http://schemas.openid.net/event/backchannel-logout` object"
    )]
    Events,
    #[error("a logout token must not contain `nonce`")]
    Nonce,
    #[error("the logout token has no usable `jti`")]
    NoJti,
    #[error("this logout token (its `jti`) was already used")]
    Replayed,
    #[error("too many logout tokens in the last minutes; retry later")]
    Busy,
    #[error("the provider's keys are not loaded yet; retry later")]
    ProviderNotLoaded,
    #[error("the revocation could not be stored; retry later")]
    NotStored,
}

/// What a logout token must match: this client at this provider.
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The ID-token allow-list; HMAC and `none` are dropped from it here.
    pub algorithms: &'a [CoreJwsSigningAlgorithm],
    pub skew: Duration,
}

/// A checked logout token: what it ends.
#[derive(Debug, PartialEq, Eq)]
pub struct LogoutToken {
    pub target: Target,
    jti: String,
}

/// The `jti`s of accepted logout tokens, each kept until a token with it
/// would be refused as stale anyway.
#[derive(Default)]
pub struct Replay {
    seen: Mutex<HashMap<String, u64>>,
}

impl Replay {
    /// Remembers `jti` until `until` (Unix seconds); `Err` when it is
    /// already known or the memory is full.
    fn claim(&self, jti: &str, now: u64, until: u64) -> Result<(), LogoutTokenError> {
        let mut seen = self.seen.lock().map_err(|_| LogoutTokenError::Busy)?;
        if seen.get(jti).is_some_and(|t| *t >= now) {
            return Err(LogoutTokenError::Replayed);
        }
        if seen.len() >= MAX_JTIS {
            seen.retain(|_, t| *t >= now);
            if seen.len() >= MAX_JTIS {
                return Err(LogoutTokenError::Busy);
            }
        }
        seen.insert(jti.to_string(), until);
        Ok(())
    }

    /// Forgets `jti` (its revocation was not stored: the provider may retry).
    fn release(&self, jti: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(jti);
        }
    }
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// Checks a logout token against the provider's current keys; refetches
/// them once (rate-limited by [`Provider::refetch_keys`]) when it names an
/// unknown key, as for ID tokens.
pub async fn verify(
    token: &str,
    expect: &Expect<'_>,
    provider: &Provider,
    now: u64,
) -> Result<LogoutToken, LogoutTokenError> {
    let parts = Parts::split(token)?;
    let alg = allowed_algorithm(&parts.header.alg, expect.algorithms)?;
    let mut result = verify_signature(&parts, &alg, provider);
    if matches!(result, Err(LogoutTokenError::UnknownKey(_))) && provider.refetch_keys().await {
        result = verify_signature(&parts, &alg, provider);
    }
    result?;
    check_claims(&parts.claims, expect, now)
}

/// The three parts of a JWS compact serialization, decoded.
struct Parts<'t> {
    header: Header,
    claims: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    signed: &'t str,
    signature: Vec<u8>,
}

impl<'t> Parts<'t> {
    fn split(token: &'t str) -> Result<Parts<'t>, LogoutTokenError> {
        let malformed = LogoutTokenError::Malformed;
        let (signed, signature) = token.rsplit_once('.').ok_or(malformed("no dots"))?;
        let (header, payload) = signed.split_once('.').ok_or(malformed("one dot"))?;
        if payload.contains('.') {
            // Five parts: an encrypted token, which Portcullis does not
            // register for.
            return Err(malformed("encrypted logout tokens are not supported"));
        }
        let decode = |s: &str, what: &'static str| {
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| LogoutTokenError::Malformed(what))
        };
        let header: Header = serde_json::from_slice(&decode(header, "header not base64url")?)
            .map_err(|_| malformed("header not a JOSE header"))?;
        if header.crit.is_some() {
            return Err(malformed("`crit` header parameters are not understood"));
        }
        let claims: Map<String, Value> =
            serde_json::from_slice(&decode(payload, "payload not base64url")?)
                .map_err(|_| malformed("payload not a JSON object"))?;
        Ok(Parts {
            header,
            claims,
            signed,
            signature: decode(signature, "signature not base64url")?,
        })
    }
}

fn allowed_algorithm(
    alg: &str,
    allowed: &[CoreJwsSigningAlgorithm],
) -> Result<CoreJwsSigningAlgorithm, LogoutTokenError> {
    let refused = || LogoutTokenError::Algorithm(alg.chars().take(16).collect());
    let parsed: CoreJwsSigningAlgorithm =
        serde_json::from_value(Value::String(alg.to_string())).map_err(|_| refused())?;
    let symmetric = matches!(
        parsed,
        CoreJwsSigningAlgorithm::HmacSha256
            | CoreJwsSigningAlgorithm::HmacSha384
            | CoreJwsSigningAlgorithm::HmacSha512
            | CoreJwsSigningAlgorithm::None
    );
    if symmetric || !allowed.contains(&parsed) {
        return Err(refused());
    }
    Ok(parsed)
}

fn verify_signature(
    parts: &Parts<'_>,
    alg: &CoreJwsSigningAlgorithm,
    provider: &Provider,
) -> Result<(), LogoutTokenError> {
    let loaded = provider
        .current()
        .ok_or(LogoutTokenError::ProviderNotLoaded)?;
    let kid = parts.header.kid.as_deref();
    let candidates: Vec<&CoreJsonWebKey> = loaded
        .metadata
        .jwks()
        .keys()
        .iter()
        .filter(|k| kid.is_none() || k.key_id().map(|id| id.as_str()) == kid)
        .filter(|k| alg.key_type().as_ref() == Some(k.key_type()))
        .filter(|k| {
            k.key_use()
                .is_none_or(openidconnect::JsonWebKeyUse::allows_signature)
        })
        .collect();
    if candidates.is_empty() {
        return Err(LogoutTokenError::UnknownKey(
            kid.unwrap_or("-").chars().take(64).collect(),
        ));
    }
    let message = parts.signed.as_bytes();
    if candidates
        .iter()
        .any(|k| k.verify_signature(alg, message, &parts.signature).is_ok())
    {
        Ok(())
    } else {
        Err(LogoutTokenError::BadSignature)
    }
}

fn check_claims(
    claims: &Map<String, Value>,
    expect: &Expect<'_>,
    now: u64,
) -> Result<LogoutToken, LogoutTokenError> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if text("iss") != Some(expect.issuer) {
        return Err(LogoutTokenError::Issuer);
    }
    let ours = |v: &Value| v.as_str() == Some(expect.client_id);
    let audience_ok = match claims.get("aud") {
        Some(Value::Array(list)) => list.iter().any(ours),
        Some(v) => ours(v),
        None => false,
    };
    if !audience_ok {
        return Err(LogoutTokenError::Audience);
    }
    let skew = expect.skew.as_secs();
    // NumericDate may carry a fraction; a negative or huge one saturates,
    // which the range checks below then refuse.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let time = |name: &str| claims.get(name).and_then(Value::as_f64).map(|t| t as u64);
    let iat = time("iat").ok_or(LogoutTokenError::NoIssuedAt)?;
    if iat > now.saturating_add(skew) {
        return Err(LogoutTokenError::IssuedInFuture);
    }
    if iat.saturating_add(MAX_TOKEN_AGE.as_secs()) < now {
        return Err(LogoutTokenError::Stale(MAX_TOKEN_AGE.as_secs()));
    }
    if claims.contains_key("exp") {
        let exp = time("exp").ok_or(LogoutTokenError::Expired)?;
        if exp.saturating_add(skew) < now {
            return Err(LogoutTokenError::Expired);
        }
    }
    let target = match (text("sid"), text("sub")) {
        (Some(sid), _) => Target::IdpSession(sid.to_string()),
        (None, Some(sub)) => Target::Subject(sub.to_string()),
        (None, None) => return Err(LogoutTokenError::NoSubject),
    };
    if !claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|e| e.get(EVENT))
        .is_some_and(Value::is_object)
    {
        return Err(LogoutTokenError::Events);
    }
    if claims.contains_key("nonce") {
        return Err(LogoutTokenError::Nonce);
    }
    let jti = text("jti")
        .filter(|j| j.len() <= MAX_JTI_LEN)
        .ok_or(LogoutTokenError::NoJti)?;
    Ok(LogoutToken {
        target,
        jti: jti.to_string(),
    })
}

/// What the endpoint needs besides the request.
pub struct Endpoint<'a> {
    pub expect: Expect<'a>,
    pub provider: &'a Provider,
    pub replay: &'a Replay,
    pub revocations: &'a crate::revocation::Revocations,
    pub audit: crate::request_ctx::RequestCtx<'a>,
}

impl Endpoint<'_> {
    /// The whole endpoint: 200 with an empty body once the revocation is in
    /// force, else 400 with an OAuth-style error body (§2.8).
    pub async fn answer(&self, req: Request<Incoming>) -> Response<Body> {
        match self.revoke(req).await {
            Ok(target) => {
                crate::audit::idp_logout(self.audit, None, "revoked", target.kind());
                let mut resp = Response::new(crate::empty_body());
                no_store(&mut resp);
                resp
            }
            Err(e) => {
                crate::audit::idp_logout(self.audit, None, "refused", &e.to_string());
                error_response(&e)
            }
        }
    }

    async fn revoke(&self, req: Request<Incoming>) -> Result<Target, LogoutTokenError> {
        let token = read_token(req).await?;
        let now = crate::clock::now();
        let checked = verify(&token, &self.expect, self.provider, now).await?;
        let until = now
            .saturating_add(MAX_TOKEN_AGE.as_secs())
            .saturating_add(self.expect.skew.as_secs());
        self.replay.claim(&checked.jti, now, until)?;
        let entry = Entry {
            target: checked.target.clone(),
            at_ms: crate::clock::now_ms(),
            source: Source::BackchannelLogout,
            by: format!("oidc:{}", self.expect.issuer),
        };
        if let Err(e) = self.revocations.add(entry) {
            tracing::error!(error = %e, "back-channel logout: revocation not stored");
            self.replay.release(&checked.jti);
            return Err(LogoutTokenError::NotStored);
        }
        Ok(checked.target)
    }
}

async fn read_token(req: Request<Incoming>) -> Result<String, LogoutTokenError> {
    if req.method() != Method::POST {
        return Err(LogoutTokenError::NoToken);
    }
    let body = http_body_util::Limited::new(req.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| LogoutTokenError::Malformed("form too large or interrupted"))?
        .to_bytes();
    let mut tokens = url::form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned());
    match (tokens.next(), tokens.next()) {
        (Some(t), None) if !t.is_empty() => Ok(t),
        _ => Err(LogoutTokenError::NoToken),
    }
}

fn no_store(resp: &mut Response<Body>) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn error_response(e: &LogoutTokenError) -> Response<Body> {
    let body = serde_json::json!({
        "error": "invalid_request",
        "error_description": e.to_string(),
    });
    let mut resp = Response::new(crate::full_body(bytes::Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(&mut resp);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn expect() -> Expect<'static> {
        Expect {
            issuer: "https://op.example",
            client_id: "rp",
            algorithms: &[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
            skew: Duration::from_secs(60),
        }
    }

    fn good() -> Value {
        json!({
            "iss": "https://op.example", "aud": ["rp", "other"], "iat": NOW - 2,
            "exp": NOW + 120, "jti": "j1", "sid": "op-sid", "sub": "alice",
            "events": { EVENT: {} },
        })
    }

    #[allow(clippy::needless_pass_by_value)] // reads best at the call sites: check(json!(…))
    fn check(v: Value) -> Result<LogoutToken, LogoutTokenError> {
        check_claims(v.as_object().unwrap(), &expect(), NOW)
    }

    fn with(mut v: Value, k: &str, x: Option<Value>) -> Value {
        match x {
            Some(x) => v[k] = x,
            None => {
                v.as_object_mut().unwrap().remove(k);
            }
        }
        v
    }

    #[test]
    fn sid_wins_over_sub_and_sub_alone_names_the_subject() {
        assert_eq!(
            check(good()).unwrap().target,
            Target::IdpSession("op-sid".into())
        );
        assert_eq!(
            check(with(good(), "sid", None)).unwrap().target,
            Target::Subject("alice".into())
        );
    }

    #[test]
    fn each_claim_rule_refuses() {
        use LogoutTokenError as E;
        let cases = [
            (with(good(), "iss", Some(json!("https://evil"))), E::Issuer),
            (with(good(), "aud", Some(json!("other"))), E::Audience),
            (with(good(), "aud", None), E::Audience),
            (with(good(), "iat", None), E::NoIssuedAt),
            (
                with(good(), "iat", Some(json!(NOW + 61))),
                E::IssuedInFuture,
            ),
            (with(good(), "iat", Some(json!(NOW - 301))), E::Stale(300)),
            (with(good(), "exp", Some(json!(NOW - 61))), E::Expired),
            (with(with(good(), "sid", None), "sub", None), E::NoSubject),
            (with(good(), "events", None), E::Events),
            (
                with(good(), "events", Some(json!({ EVENT: "yes" }))),
                E::Events,
            ),
            (
                with(
                    good(),
                    "events",
                    Some(json!({"http://schemas.openid.net/event/other": {}})),
                ),
                E::Events,
            ),
            (with(good(), "nonce", Some(json!("n"))), E::Nonce),
            (with(good(), "jti", None), E::NoJti),
            (with(good(), "jti", Some(json!("x".repeat(257)))), E::NoJti),
        ];
        let failures: Vec<String> = cases
            .into_iter()
            .filter_map(|(v, want)| match check(v.clone()) {
                Err(got) if got == want => None,
                other => Some(format!("{v}: want {want:?}, got {other:?}")),
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn none_and_hmac_are_refused_even_when_listed() {
        let all = [
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::HmacSha256,
            CoreJwsSigningAlgorithm::None,
        ];
        for alg in ["none", "HS256", "RS384", "nonsense"] {
            assert_eq!(
                allowed_algorithm(alg, &all),
                Err(LogoutTokenError::Algorithm(alg.into())),
                "{alg}"
            );
        }
        assert!(allowed_algorithm("RS256", &all).is_ok());
    }

    #[test]
    fn a_jti_is_used_once_until_it_expires_and_memory_is_bounded() {
        let r = Replay::default();
        assert_eq!(r.claim("a", NOW, NOW + 10), Ok(()));
        assert_eq!(
            r.claim("a", NOW + 5, NOW + 15),
            Err(LogoutTokenError::Replayed)
        );
        r.release("a");
        assert_eq!(r.claim("a", NOW + 5, NOW + 15), Ok(()));
        {
            let mut seen = r.seen.lock().unwrap();
            for i in 0..MAX_JTIS {
                seen.insert(format!("f{i}"), NOW + 100);
            }
        }
        assert_eq!(r.claim("b", NOW, NOW + 10), Err(LogoutTokenError::Busy));
        // Once the old ones are past their end, there is room again.
        assert_eq!(r.claim("b", NOW + 101, NOW + 110), Ok(()));
        assert_eq!(r.seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let b64 = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let header = b64(r#"{"alg":"RS256"}"#);
        let payload = b64("{}");
        for (token, what) in [
            ("abc".to_string(), "no dots"),
            (format!("{header}.{payload}"), "one dot"),
            (
                format!("{header}.{payload}.x.y.z"),
                "encrypted logout tokens are not supported",
            ),
            (format!("!!.{payload}.sig"), "header not base64url"),
            (
                format!("{}.{payload}.sig", b64("[]")),
                "header not a JOSE header",
            ),
            (
                format!("{}.{payload}.sig", b64(r#"{"alg":"RS256","crit":["x"]}"#)),
                "`crit` header parameters are not understood",
            ),
            (
                format!("{header}.{}.sig", b64("[1]")),
                "payload not a JSON object",
            ),
        ] {
            assert_eq!(
                Parts::split(&token).err(),
                Some(LogoutTokenError::Malformed(what)),
                "{token}"
            );
        }
    }
}
