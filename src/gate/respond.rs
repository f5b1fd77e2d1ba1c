//! Answers the proxy and forward-auth render alike.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::decide::{NeedLogin, Refusal};
use crate::config::Config;
use crate::pages::{Page, PageKind};
use crate::{Body, RESERVED_PREFIX};

/// The 403 page: the operator's description of the rule that refused, if
/// it has one; never which check failed.
pub fn forbidden(denial: &crate::policy::Denial) -> Page {
    let page = Page::new(PageKind::Forbidden);
    match &denial.description {
        Some(d) => page.with_detail(format!(
            "This part of the application is limited by the rule: {d}"
        )),
        None => page,
    }
}

/// Portcullis' sign-in URL, coming back to `return_to` (a same-origin path).
pub fn login_url(return_to: &str) -> String {
    format!(
        "{RESERVED_PREFIX}login?rd={}",
        percent_encoding::utf8_percent_encode(return_to, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// 401 naming the sign-in URL, with `WWW-Authenticate`: for scripts, which
/// are never redirected. A session too old for the path's `max_auth_age`
/// says `reauthentication_required` instead of `login_required`.
pub fn login_required(
    config: &Config,
    need: &NeedLogin,
    request_id: &str,
    json: bool,
) -> Response<Body> {
    let kind = if need.reauth {
        PageKind::ReauthRequired
    } else {
        PageKind::LoginRequired
    };
    let mut resp =
        Page::new(kind)
            .with_login_url(need.login_url())
            .render(&config.pages, request_id, json);
    let challenge = format!("Portcullis realm=\"{}\"", config.domain);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// The page for a refused request.
pub fn refused(config: &Config, why: &Refusal, request_id: &str, json: bool) -> Response<Body> {
    let kind = match why {
        Refusal::MisdirectedHost => PageKind::Misdirected,
        Refusal::Tunnel => PageKind::MethodNotAllowed,
        Refusal::Unreadable(_) | Refusal::AsteriskForm | Refusal::AmbiguousReserved => {
            PageKind::BadRequest
        }
    };
    let mut resp = Page::new(kind).render(&config.pages, request_id, json);
    if kind == PageKind::MethodNotAllowed {
        resp.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
    }
    resp
}

/// `OPTIONS *`: about Portcullis itself, answered like Go's and nginx's
/// servers do (200, empty), never forwarded.
pub fn server_options() -> Response<Body> {
    let mut resp = Response::new(crate::empty_body());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

/// Appends a `Set-Cookie` value.
pub fn append_set_cookie(resp: &mut Response<Body>, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}
