//! SAML 2.0 Web Browser SSO, SP side, on samael. [`Saml`] is the entry
//! point: built once from the configuration ([`Saml::new`]), it starts
//! logins (AuthnRequest over HTTP-Redirect, bound to the signed
//! transaction cookie by its request ID), serves the ACS, the SP metadata
//! and the SLO endpoint, and keeps the IdP metadata fresh.
//!
//! | module | job |
//! |---|---|
//! | [`metadata`] | IdP metadata: file or URL, disk cache, checks |
//! | [`request`] | AuthnRequest / LogoutRequest redirect URLs |
//! | [`acs`] | response checks: cheap envelope first, then signature |
//! | [`attributes`] | assertion -> [`Identity`](crate::identity::Identity) |
//! | [`sp_metadata`] | the SP metadata for the IdP admin |
//! | [`keys`] | the SP key pair |
//! | [`budget`] | how many signature verifications, and for whom |
//! | [`redirect`] | incoming HTTP-Redirect messages: parsed once, verified |
//! | [`logout`] | IdP-initiated LogoutRequest checks |
//! | [`replay`] | assertion and LogoutRequest IDs already used |

pub mod acs;
pub mod attributes;
pub mod budget;
pub mod keys;
pub mod logout;
pub mod metadata;
pub mod redirect;
mod replay;
pub mod request;
pub mod sp_metadata;

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer};
use samael::service_provider::ServiceProvider;

use self::acs::AcsError;
use self::keys::SpKeys;
use self::metadata::{IdpMetadata, MetadataError};
use super::{Completed, EndpointOutcome, LoginCtx};
use crate::Body;
use crate::config::Config;
use crate::config::saml::MetadataSource;
use crate::config::saml::Saml as SamlConfig;
use crate::identity::{Identity, IdpKind};
use crate::pages::{Page, PageKind};
use crate::policy::return_to::safe_return_path;
use crate::session::LoginRefs;

/// Guard rail 3 (docs/design.md): samael accepts SHA-1 unless told otherwise.
pub const ALLOWED_SIGNATURE_ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// A POSTed ACS form larger than this is refused unread (a response with
/// hundreds of groups is still far below).
const MAX_ACS_FORM_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SamlSetupError {
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(
        "saml.idp_metadata_signing_cert_file `{0}` is not a readable PEM certificate; give the certificate the IdP signs its metadata with"
    )]
    MetadataSigner(String),
    #[error(transparent)]
    SpMetadata(#[from] sp_metadata::SpMetadataError),
    #[error(
        "saml.sign_requests needs an RSA key, and `{0}` is not one; give an RSA key pair or remove both files to have one generated"
    )]
    SigningKeyNotRsa(String),
}

/// The IdP as currently known, and samael's SP built for it.
struct Active {
    md: IdpMetadata,
    sp: ServiceProvider,
}

pub struct Saml {
    cfg: SamlConfig,
    origin: String,
    keys: SpKeys,
    sp_metadata_xml: String,
    metadata_signer: Option<CertificateDer>,
    active: RwLock<Arc<Active>>,
    replay: replay::ReplayCache,
    logout_ids: replay::ReplayCache,
    budget: budget::VerifyBudget,
    /// Extra attributes some header wants; the others would only make
    /// the session cookie bigger.
    wanted_extra: Vec<String>,
}

impl Saml {
    /// Keys, IdP metadata (fetched, or from the cache when the IdP is
    /// down), and a refresh task when the metadata comes from a URL.
    pub async fn new(config: &Config, cfg: &SamlConfig) -> Result<Arc<Saml>, SamlSetupError> {
        let keys = SpKeys::load_or_create(&cfg.sp_key_file, &cfg.sp_cert_file, &cfg.sp_entity_id)?;
        if cfg.sign_requests && keys.key.rsa().is_err() {
            return Err(SamlSetupError::SigningKeyNotRsa(
                cfg.sp_key_file.display().to_string(),
            ));
        }
        let metadata_signer = match &cfg.metadata_signing_cert_file {
            None => None,
            Some(p) => {
                let bad = || SamlSetupError::MetadataSigner(p.display().to_string());
                let pem = std::fs::read(p).map_err(|_| bad())?;
                let der = openssl::x509::X509::from_pem(&pem)
                    .and_then(|c| c.to_der())
                    .map_err(|_| bad())?;
                Some(CertificateDer::from(der))
            }
        };
        let (md, from_cache) = initial_metadata(cfg, metadata_signer.as_ref()).await?;
        let sp_metadata_xml = sp_metadata::render(cfg, &keys)?;
        let sp = service_provider(cfg, &keys, &md);
        let saml = Arc::new(Saml {
            cfg: cfg.clone(),
            origin: config.public_origin(),
            keys,
            sp_metadata_xml,
            metadata_signer,
            active: RwLock::new(Arc::new(Active { md, sp })),
            replay: replay::ReplayCache::default(),
            logout_ids: replay::ReplayCache::with_capacity(logout::REMEMBERED_IDS),
            budget: budget::VerifyBudget::new(&cfg.acs_verify_limit, Instant::now()),
            wanted_extra: config
                .headers
                .extra
                .iter()
                .map(|(k, _)| k.clone())
                .collect(),
        });
        if let MetadataSource::Url { refresh, .. } = &cfg.metadata {
            tokio::spawn(refresh_loop(Arc::downgrade(&saml), *refresh, from_cache));
        }
        Ok(saml)
    }

    fn active(&self) -> Arc<Active> {
        match self.active.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

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

    pub fn sp_metadata(&self) -> &str {
        &self.sp_metadata_xml
    }

    /// Sends the browser to the IdP with an AuthnRequest whose ID the new
    /// transaction cookie remembers; RelayState is the transaction's id.
    pub fn start(&self, ctx: LoginCtx<'_>, return_to: &str) -> Result<Response<Body>, Page> {
        let active = self.active();
        if active.md.is_expired(chrono::Utc::now()) {
            tracing::warn!("IdP metadata expired (validUntil) and no fresh copy could be fetched");
            return Err(Page::new(PageKind::IdpUnavailable));
        }
        let request_id = request::new_request_id();
        let (txn, set_cookie) = ctx
            .transactions
            .begin(
                IdpKind::Saml,
                return_to,
                serde_json::json!({ "request_id": request_id }),
            )
            .map_err(|_| Page::new(PageKind::LoginFailed))?;
        let sign = self.cfg.sign_requests.then_some(&self.keys.key);
        let url = request::authn_request_url(
            &active.sp,
            &active.md.sso_redirect,
            &request_id,
            &txn.id,
            sign,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "cannot build the AuthnRequest");
            Page::new(PageKind::LoginFailed)
        })?;
        let mut resp = crate::pages::redirect(url.as_str());
        if let Ok(v) = HeaderValue::from_str(&set_cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(resp)
    }

    pub async fn endpoint(
        &self,
        rest: &str,
        ctx: LoginCtx<'_>,
        req: Request<Incoming>,
    ) -> Option<EndpointOutcome> {
        match rest {
            "saml/metadata" => Some(EndpointOutcome::Respond(xml_response(
                self.sp_metadata_xml.clone(),
                "application/samlmetadata+xml",
            ))),
            "saml/acs" => Some(match self.acs(ctx, req).await {
                Ok(done) => EndpointOutcome::LoggedIn(done),
                Err(e) => {
                    let kind = match e {
                        AcsError::MetadataExpired => PageKind::IdpUnavailable,
                        _ => PageKind::LoginFailed,
                    };
                    EndpointOutcome::Failed {
                        page: Page::new(kind).with_detail(e.user_detail()),
                        reason: e.to_string(),
                        set_cookies: vec![],
                    }
                }
            }),
            "saml/slo" => Some(self.slo(ctx, &req)),
            _ => None,
        }
    }

    async fn acs(&self, ctx: LoginCtx<'_>, req: Request<Incoming>) -> Result<Completed, AcsError> {
        if req.method() != Method::POST {
            return Err(AcsError::NotPost);
        }
        let body = Limited::new(req.into_body(), MAX_ACS_FORM_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    AcsError::TooLarge
                } else {
                    AcsError::Malformed
                }
            })?
            .to_bytes();
        let (xml, relay_state) = read_form(&body)?;
        let env = acs::prescan(&xml)?;
        // The IdP's own refusal: show it (it grants nothing).
        if !env.is_success() {
            return Err(AcsError::Status(env.status_text()));
        }

        // Cheap checks first (guard rail 2, docs/design.md): no signature
        // work without a live transaction of this browser whose request
        // this answers.
        let lookup = relay_state
            .as_deref()
            .filter(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|r| ctx.transactions.find(ctx.request_cookies, r));
        let (txn, request_id) = match (lookup, &env.in_response_to) {
            (Some(Ok(txn)), irt) => {
                let rid = txn
                    .data
                    .get("request_id")
                    .and_then(|v| v.as_str())
                    .filter(|_| txn.idp == IdpKind::Saml)
                    .ok_or_else(|| {
                        AcsError::Transaction("the transaction is not a SAML login".into())
                    })?
                    .to_string();
                if irt.as_deref() != Some(rid.as_str()) {
                    return Err(AcsError::InResponseTo);
                }
                (Some(txn), Some(rid))
            }
            (Some(Err(e)), Some(_)) => return Err(AcsError::Transaction(e.to_string())),
            (None, Some(_)) => {
                return Err(AcsError::Transaction(
                    crate::session::TransactionError::Missing.to_string(),
                ));
            }
            (_, None) if self.cfg.allow_idp_initiated => (None, None),
            (_, None) => return Err(AcsError::Unsolicited),
        };
        if env
            .destination
            .as_deref()
            .is_some_and(|d| d != self.cfg.acs_url)
        {
            return Err(AcsError::Destination);
        }
        let now = chrono::Utc::now();
        if env
            .assertion_ids
            .iter()
            .any(|id| self.replay.seen(id, now.timestamp()))
        {
            return Err(AcsError::Replay);
        }
        let active = self.active();
        if active.md.is_expired(now) {
            return Err(AcsError::MetadataExpired);
        }
        acs::signatures_precheck(&env, ALLOWED_SIGNATURE_ALGORITHMS)?;
        let txn_id = txn.as_ref().map(|t| t.id.as_str());
        if let Err(spent) = self.budget.take(ctx.client_ip, txn_id, Instant::now()) {
            crate::metrics::saml_verify_refused(spent.label());
            return Err(AcsError::Busy(spent));
        }

        let rid = request_id.clone();
        let certs = active.md.signing_certs.clone();
        let assertion = tokio::task::spawn_blocking(move || {
            if rid.is_some() {
                acs::verify(&active.sp, &xml, rid.as_deref())
            } else {
                let mut sp = active.sp.clone();
                sp.allow_idp_initiated = true;
                acs::verify(&sp, &xml, None)
            }
        })
        .await
        .map_err(|_| AcsError::Other("verification task failed".into()))?
        .map_err(|e| match e {
            AcsError::SignatureInvalid => acs::explain_signature_failure(&env, &certs),
            other => other,
        })?;

        let skew = chrono::Duration::from_std(self.cfg.clock_skew)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        if !self.replay.first_use(
            &assertion.id,
            acs::replay_expiry(&assertion, skew),
            now.timestamp(),
        ) {
            return Err(AcsError::Replay);
        }
        let mut identity: Identity = attributes::identity(&assertion, &self.cfg.attributes)
            .map_err(|e| AcsError::Mapping(e.to_string()))?;
        identity.extra.retain(|k, _| self.wanted_extra.contains(k));
        let name_id = assertion.subject.as_ref().and_then(|s| s.name_id.as_ref());
        let refs = LoginRefs {
            // Kept with the session when the subject is the NameID.
            subject_format: name_id
                .filter(|n| n.value.trim() == identity.subject)
                .and_then(|n| n.format.clone()),
            idp_sid: assertion
                .authn_statements
                .iter()
                .flatten()
                .find_map(|a| a.session_index.clone()),
            name_id: name_id.map(|n| n.value.trim().to_string()),
        };
        let (return_to, set_cookies) = match txn {
            Some(t) => (t.return_to.clone(), vec![ctx.transactions.clear(&t.id)]),
            None => (
                safe_return_path(relay_state.as_deref(), &self.origin),
                vec![],
            ),
        };
        Ok(Completed {
            identity,
            idp: IdpKind::Saml,
            return_to,
            set_cookies,
            refs,
        })
    }

    /// `GET /.portcullis/saml/slo`: the IdP's LogoutResponse after an
    /// SP-initiated logout (back to the return path), or an IdP-initiated
    /// LogoutRequest ([`logout`] checks it; then the session it names is
    /// ended and the IdP gets its LogoutResponse).
    fn slo(&self, ctx: LoginCtx<'_>, req: &Request<Incoming>) -> EndpointOutcome {
        let query = req.uri().query().unwrap_or("");
        let parsed = redirect::RedirectMessage::parse(query).and_then(|m| {
            let relay = m.relay_state()?;
            Ok((m, relay))
        });
        let (msg, relay) = match parsed {
            Ok(p) => p,
            Err(e) => return self.logout_refused(ctx, logout::LogoutError::Query(e)),
        };
        match msg.kind {
            // It grants nothing: only the (checked) way back is used.
            redirect::Kind::Response => {
                let back = safe_return_path(relay.as_deref(), &self.origin);
                EndpointOutcome::Respond(crate::pages::redirect(&back))
            }
            redirect::Kind::Request => self.idp_logout(ctx, &msg, relay.as_deref()),
        }
    }

    fn idp_logout(
        &self,
        ctx: LoginCtx<'_>,
        msg: &redirect::RedirectMessage<'_>,
        relay: Option<&str>,
    ) -> EndpointOutcome {
        let active = self.active();
        let Some(slo) = active.md.slo_redirect.clone() else {
            return self.logout_refused(ctx, logout::LogoutError::NoSloEndpoint);
        };
        let expect = logout::Expect {
            md: &active.md,
            slo_url: &self.cfg.slo_url,
            skew: chrono::Duration::from_std(self.cfg.clock_skew)
                .unwrap_or_else(|_| chrono::Duration::seconds(60)),
            now: chrono::Utc::now(),
        };
        let request = match logout::check(msg, &expect, &self.logout_ids) {
            Ok(r) => r,
            Err(e) => return self.logout_refused(ctx, e),
        };
        let session = match ctx.sessions.verify(ctx.request_cookies) {
            Some(Ok(v)) => Some(v.claims),
            _ => None,
        };
        let (status, clear, outcome, user) = match &session {
            None => (request::LogoutStatus::Success, true, "no_session", None),
            Some(c) if request.name_id.names(&c.sub, c.sub_fmt.as_deref()) => (
                request::LogoutStatus::Success,
                true,
                "ended",
                Some(c.user.as_str()),
            ),
            Some(c) => (
                request::LogoutStatus::UnknownPrincipal,
                false,
                "ignored",
                Some(c.user.as_str()),
            ),
        };
        let reason = match outcome {
            "ignored" => {
                "the LogoutRequest names another NameID than this session's; the session is kept"
            }
            "no_session" => "no session in this browser",
            _ => "the session named by the LogoutRequest is ended",
        };
        crate::audit::idp_logout(ctx.audit(), user, outcome, reason);
        crate::metrics::saml_idp_logout(outcome);
        let sign = self.cfg.sign_requests.then_some(&self.keys.key);
        match request::logout_response_url(
            &self.cfg.sp_entity_id,
            &slo,
            &request.id,
            status,
            relay.unwrap_or(""),
            sign,
        ) {
            Ok(url) => {
                let mut resp = crate::pages::redirect(url.as_str());
                if clear {
                    for c in ctx.sessions.clear(ctx.request_cookies) {
                        if let Ok(v) = HeaderValue::from_str(&c) {
                            resp.headers_mut().append(header::SET_COOKIE, v);
                        }
                    }
                }
                EndpointOutcome::Respond(resp)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot build the LogoutResponse");
                EndpointOutcome::Refused(Page::new(PageKind::LoginFailed))
            }
        }
    }

    fn logout_refused(&self, ctx: LoginCtx<'_>, e: logout::LogoutError) -> EndpointOutcome {
        crate::audit::idp_logout(ctx.audit(), None, "refused", &e.to_string());
        crate::metrics::saml_idp_logout("refused");
        EndpointOutcome::Refused(Page::new(PageKind::BadRequest))
    }

    /// SP-initiated Single Logout, when the IdP offers it over HTTP-Redirect
    /// and the session says who to log out.
    pub fn logout_redirect(&self, return_to: &str, identity: Option<&Identity>) -> Option<String> {
        let identity = identity?;
        let active = self.active();
        let slo = active.md.slo_redirect.as_deref()?;
        let sign = self.cfg.sign_requests.then_some(&self.keys.key);
        request::logout_request_url(
            &self.cfg.sp_entity_id,
            slo,
            &identity.subject,
            return_to,
            sign,
        )
        .map_err(|e| tracing::warn!(error = %e, "cannot build the SAML LogoutRequest"))
        .ok()
        .map(|u| u.to_string())
    }
}

fn read_form(body: &Bytes) -> Result<(String, Option<String>), AcsError> {
    let mut response = None;
    let mut relay = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "SAMLResponse" => response = Some(v.into_owned()),
            "RelayState" => relay = Some(v.into_owned()),
            _ => {}
        }
    }
    let b64: String = response
        .ok_or(AcsError::Malformed)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| AcsError::Malformed)?;
    let xml = String::from_utf8(raw).map_err(|_| AcsError::Malformed)?;
    Ok((xml, relay))
}

fn xml_response(xml: String, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(crate::full_body(Bytes::from(xml)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn service_provider(cfg: &SamlConfig, keys: &SpKeys, md: &IdpMetadata) -> ServiceProvider {
    let skew = chrono::Duration::from_std(cfg.clock_skew)
        .unwrap_or_else(|_| chrono::Duration::seconds(60));
    ServiceProvider {
        entity_id: Some(cfg.sp_entity_id.clone()),
        key: Some(keys.key.clone()),
        certificate: Some(CertificateDer::from(keys.cert_der())),
        intermediates: None,
        metadata_url: Some(cfg.sp_metadata_url.clone()),
        acs_url: Some(cfg.acs_url.clone()),
        slo_url: Some(cfg.slo_url.clone()),
        idp_metadata: md.descriptor.clone(),
        authn_name_id_format: cfg.nameid_format.clone(),
        metadata_valid_duration: None,
        force_authn: false,
        allow_idp_initiated: false,
        contact_person: None,
        // IssueInstant may be this old: the browser's round trip plus skew.
        max_issue_delay: skew + chrono::Duration::minutes(3),
        max_clock_skew: skew,
        allowed_signature_algorithms: Some(ALLOWED_SIGNATURE_ALGORITHMS.to_vec()),
    }
}

async fn initial_metadata(
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

async fn refresh_loop(saml: Weak<Saml>, configured: Duration, mut failing: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acs_form_is_base64_xml() {
        let xml = "<samlp:Response/>";
        let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
        let body = format!(
            "SAMLResponse={}&RelayState=abc",
            url::form_urlencoded::byte_serialize(
                format!("{}\r\n{}", &b64[..4], &b64[4..]).as_bytes()
            )
            .collect::<String>()
        );
        let (got, relay) = read_form(&Bytes::from(body)).unwrap();
        assert_eq!(got, xml);
        assert_eq!(relay.as_deref(), Some("abc"));
        assert_eq!(
            read_form(&Bytes::from("RelayState=x")),
            Err(AcsError::Malformed)
        );
        assert_eq!(
            read_form(&Bytes::from("SAMLResponse=%%%")),
            Err(AcsError::Malformed)
        );
    }
}
