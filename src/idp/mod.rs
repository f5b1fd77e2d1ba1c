//! The login step: the interface through which an identity provider (OpenID
//! Connect or SAML 2.0) logs a browser in. The server calls [`Login::start`]
//! for a browser without a session and [`Login::endpoint`] for requests
//! under the reserved prefix that the IdP flavour owns (callback, ACS,
//! metadata); a completed login comes back as a [`Completed`], from which
//! the server mints the session. Nothing here knows about the upstream.

pub mod diagnose;
pub mod oidc;
pub mod saml;

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::Body;
use crate::config::Config;
use crate::identity::{Identity, IdpKind};
use crate::pages::{Page, PageKind};
use crate::request_ctx::RequestCtx;
use crate::session::{LoginRefs, SessionClaims, Sessions, Transactions};

/// What a finished login hands back to the server.
#[derive(Debug)]
pub struct Completed {
    pub identity: Identity,
    pub idp: IdpKind,
    /// Same-origin path to return to (already checked).
    pub return_to: String,
    /// `Set-Cookie` values the flavour needs sent (e.g. clearing its
    /// transaction cookie).
    pub set_cookies: Vec<String>,
    /// What the IdP names the login by (NameID Format, its session id,
    /// the NameID), kept in the session for logouts and revocations.
    pub refs: LoginRefs,
    /// The OpenID provider's ID token, kept for `id_token_hint` at logout
    /// (in a cookie only the logout endpoint receives); `None` for SAML.
    pub id_token_hint: Option<String>,
}

/// The outcome of a request to an IdP-owned endpoint.
pub enum EndpointOutcome {
    /// A response to send as it is (a redirect, metadata, …).
    Respond(Response<Body>),
    /// The login completed: mint a session.
    LoggedIn(Box<Completed>),
    /// The login failed: show this page; `reason` goes to the audit log;
    /// `set_cookies` clear what the attempt left behind.
    Failed {
        page: Page,
        reason: String,
        set_cookies: Vec<String>,
    },
    /// Send this response and end the browser's session: the server adds
    /// the `Set-Cookie` values that clear it (only `session` knows the
    /// session cookies' names and attributes). An IdP-initiated logout.
    EndSession(Response<Body>),
    /// A request the flavour refused and already audited (not a login,
    /// e.g. an IdP-initiated logout): show this page.
    Refused(Page),
    /// Not a refusal: show this page (e.g. signed out, with what the IdP
    /// said about its own session).
    Show(Page),
}

/// The configured identity provider. The OIDC and SAML flavours are added
/// as variants, each implemented in its own module.
pub enum Login {
    /// No IdP configured: nobody can log in, which the pages say plainly.
    None,
    /// OpenID Connect ([`oidc::OidcLogin`]).
    Oidc(Box<oidc::OidcLogin>),
    /// SAML 2.0 ([`saml::SamlLogin`]).
    Saml(Arc<saml::SamlLogin>),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginSetupError {
    #[error(transparent)]
    Oidc(#[from] oidc::OidcSetupError),
    #[error(transparent)]
    Saml(#[from] saml::SamlSetupError),
}

/// Per-request facts a login flavour may need.
#[derive(Clone, Copy)]
pub struct LoginCtx<'a> {
    /// The request id and client address (after trusted proxies, for
    /// per-client limits and audit events).
    pub request: RequestCtx<'a>,
    pub request_cookies: &'a [(&'a str, &'a str)],
    /// Where a started login keeps what it must remember.
    pub transactions: &'a Transactions,
    /// The session cookies, for what an IdP-initiated logout must compare.
    pub sessions: &'a Sessions,
}

impl Login {
    /// The flavour the configuration names (IdP metadata is loaded here).
    pub async fn from_config(config: &Config) -> Result<Login, LoginSetupError> {
        if let Some(o) = &config.oidc {
            return Ok(Login::Oidc(Box::new(
                oidc::OidcLogin::new(config, o.clone()).await?,
            )));
        }
        if let Some(s) = &config.saml {
            return Ok(Login::Saml(saml::SamlLogin::new(config, s).await?));
        }
        Ok(Login::None)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Login::None => "none",
            Login::Oidc(_) => "oidc",
            Login::Saml(_) => "saml",
        }
    }

    pub fn is_configured(&self) -> bool {
        !matches!(self, Login::None)
    }

    /// Sends the browser to the IdP, remembering `return_to`. With
    /// `fresh` (the page's `max_auth_age`), the IdP is asked to make the
    /// user sign in again: OIDC `prompt=login` and `max_age`, SAML
    /// `ForceAuthn="true"`. Whether it did is checked when the login comes
    /// back (`server::App::complete_login`), not trusted.
    pub async fn start(
        &self,
        ctx: LoginCtx<'_>,
        return_to: &str,
        fresh: Option<Duration>,
    ) -> Result<Response<Body>, Page> {
        match self {
            Login::None => Err(Page::new(PageKind::NoIdentityProvider)),
            Login::Oidc(o) => o.start(ctx, return_to, fresh).await,
            Login::Saml(s) => s.start(ctx, return_to, fresh),
        }
    }

    /// Handles `/.portcullis/<rest>` when the flavour owns `rest`.
    pub async fn endpoint(
        &self,
        rest: &str,
        ctx: LoginCtx<'_>,
        req: Request<Incoming>,
    ) -> Option<EndpointOutcome> {
        match self {
            Login::None => None,
            Login::Oidc(o) => o.endpoint(rest, ctx, req).await,
            Login::Saml(s) => s.endpoint(rest, ctx, req).await,
        }
    }

    /// Where logout sends the browser after clearing the session, when the
    /// IdP should end its own session too (RP-initiated logout, SLO).
    /// `session` is the session being ended, when there was one;
    /// `id_token_hint` the OpenID provider's ID token of that login.
    pub fn logout_redirect(
        &self,
        return_to: &str,
        session: Option<&SessionClaims>,
        id_token_hint: Option<&str>,
    ) -> Option<String> {
        match self {
            Login::None => None,
            Login::Oidc(o) => o.logout_redirect(id_token_hint),
            Login::Saml(s) => s.logout_redirect(return_to, session),
        }
    }
}
