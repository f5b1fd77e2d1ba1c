//! SAML 2.0 Web Browser SSO, SP side, on samael. [`SamlLogin`] is the entry
//! point: built once from the configuration ([`SamlLogin::new`]), it starts
//! logins (AuthnRequest over HTTP-Redirect, bound to the signed
//! transaction cookie by its request ID), serves the ACS, the SP metadata
//! and the SLO endpoint, and keeps the IdP metadata fresh.
//!
//! | module | job |
//! |---|---|
//! | [`metadata`] | IdP metadata: file or URL, disk cache, checks |
//! | [`request`] | AuthnRequest / LogoutRequest redirect URLs |
//! | `acs_endpoint` | the ACS endpoint: the order of the checks, `InResponseTo` against the transaction |
//! | [`acs`] | response checks: cheap envelope first, then signature |
//! | [`attributes`] | assertion -> [`Identity`](crate::identity::Identity) |
//! | [`sp_metadata`] | the SP metadata for the IdP admin |
//! | [`sp_keys`] | the SP key pair |
//! | [`budget`] | how many signature verifications, and for whom |
//! | [`redirect`] | incoming HTTP-Redirect messages: parsed once, verified |
//! | [`logout`] | IdP-initiated LogoutRequest checks |
//! | [`soap`] | the SOAP binding of the LogoutRequest: envelope, signature, answer |
//! | [`replay`] | assertion and LogoutRequest IDs already used |
//! | `slo` | the Single Logout endpoint (HTTP-Redirect and SOAP) |
//! | `refresh` | loading the IdP metadata at start and keeping it fresh |
//!
//! This module holds setup, login start, the endpoint dispatch and the
//! SP-initiated logout URL; it never sets or clears session cookies (the
//! server does, from [`Completed`](super::Completed) and
//! [`EndpointOutcome::EndSession`]).

pub mod acs;
mod acs_endpoint;
pub mod attributes;
pub mod budget;
pub mod diagnose;
pub mod logout;
pub mod logout_response;
pub mod metadata;
pub mod redirect;
mod refresh;
mod replay;
pub mod request;
mod slo;
pub mod soap;
pub mod sp_keys;
pub mod sp_metadata;

use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer};
use samael::service_provider::ServiceProvider;

use self::acs::AcsError;
use self::metadata::{IdpMetadata, MetadataError};
use self::refresh::{initial_metadata, refresh_loop};
use self::sp_keys::SpKeys;
use super::{EndpointOutcome, LoginCtx};
use crate::Body;
use crate::config::Config;
use crate::config::saml::MetadataSource;
use crate::config::saml::Saml as SamlConfig;
use crate::pages::{Page, PageKind};
use crate::session::LoginFlow;
use crate::session::SessionClaims;

/// Guard rail 3 (docs/design.md): samael accepts SHA-1 unless told otherwise.
pub const ALLOWED_SIGNATURE_ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

#[derive(Debug, thiserror::Error)]
pub enum SamlSetupError {
    #[error(transparent)]
    Keys(#[from] sp_keys::KeyError),
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

pub struct SamlLogin {
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

impl SamlLogin {
    /// Keys, IdP metadata (fetched, or from the cache when the IdP is
    /// down), and a refresh task when the metadata comes from a URL.
    pub async fn new(config: &Config, cfg: &SamlConfig) -> Result<Arc<SamlLogin>, SamlSetupError> {
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
        let saml = Arc::new(SamlLogin {
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

    pub fn sp_metadata(&self) -> &str {
        &self.sp_metadata_xml
    }

    /// Sends the browser to the IdP with an AuthnRequest whose ID the new
    /// transaction cookie remembers; RelayState is the transaction's id.
    pub fn start(
        &self,
        ctx: LoginCtx<'_>,
        return_to: &str,
        fresh: Option<std::time::Duration>,
    ) -> Result<Response<Body>, Page> {
        let active = self.active();
        if active.md.is_expired(chrono::Utc::now()) {
            tracing::warn!("IdP metadata expired (validUntil) and no fresh copy could be fetched");
            return Err(Page::new(PageKind::IdpUnavailable));
        }
        let request_id = request::new_request_id();
        let (txn, set_cookie) = ctx
            .transactions
            .begin(
                return_to,
                LoginFlow::Saml {
                    request_id: request_id.clone(),
                },
            )
            .map_err(|_| Page::new(PageKind::LoginFailed))?;
        let sign = self.cfg.sign_requests.then_some(&self.keys.key);
        let url = request::authn_request_url(
            &active.sp,
            &active.md.sso_redirect,
            &request_id,
            &txn.id,
            fresh.is_some(),
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
                Ok(done) => EndpointOutcome::LoggedIn(Box::new(done)),
                Err(e) => self.acs_failed(ctx, &e),
            }),
            "saml/slo" if req.method() == http::Method::POST => {
                Some(self.soap_logout(ctx, req).await)
            }
            "saml/slo" => Some(self.slo(ctx, &req)),
            _ => None,
        }
    }

    /// A refused ACS post: the "misconfigured" page and the operator's fix
    /// in the audit reason and the log ([`diagnose`]) when only the
    /// operator can mend it, else the page saying what the user can do.
    fn acs_failed(&self, ctx: LoginCtx<'_>, e: &AcsError) -> EndpointOutcome {
        if let Some(fix) = diagnose::operator_fix(e, &self.cfg) {
            tracing::warn!(request_id = ctx.request.request_id, error = %e, fix = %fix, "SAML sign-in is misconfigured");
            return EndpointOutcome::Failed {
                page: Page::new(PageKind::Misconfigured),
                reason: format!("{e}; operator fix: {fix}"),
                set_cookies: vec![],
            };
        }
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

    /// SP-initiated Single Logout, when the IdP offers it over HTTP-Redirect
    /// and the session says who to log out: its NameID as issued and its
    /// SessionIndex.
    pub fn logout_redirect(
        &self,
        return_to: &str,
        session: Option<&SessionClaims>,
    ) -> Option<String> {
        let session = session?;
        let active = self.active();
        let slo = active.md.slo_redirect.as_deref()?;
        let sign = self.cfg.sign_requests.then_some(&self.keys.key);
        let name = request::LogoutName {
            value: session.name_id.as_deref().unwrap_or(&session.sub),
            format: session.sub_fmt.as_deref(),
            name_qualifier: session.name_qualifier.as_deref(),
            sp_name_qualifier: session.sp_name_qualifier.as_deref(),
            session_index: session.idp_sid.as_deref(),
        };
        request::logout_request_url(&self.cfg.sp_entity_id, slo, name, return_to, sign)
            .map_err(|e| tracing::warn!(error = %e, "cannot build the SAML LogoutRequest"))
            .ok()
            .map(|u| u.to_string())
    }
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
