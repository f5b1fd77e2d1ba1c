//! Forward-auth mode: `/.portcullis/auth` answers the question "may this
//! request through?" for a web server that proxies to the app itself —
//! nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`.
//!
//! - 2xx: yes. For a session or a token, the identity headers are in the
//!   answer (nginx copies them with `auth_request_set`; Traefik with
//!   `authResponseHeaders`; Caddy with `copy_headers`), and a renewed
//!   session cookie comes as `Set-Cookie`. Every configured identity header
//!   is in the answer, empty when there is no identity (passthrough), so
//!   whatever copies them always overwrites the client's own copy.
//! - 401: no session. The body names the sign-in URL
//!   (`/.portcullis/login?rd=…`, which checks that the return URL is
//!   same-origin); for a browser navigation the `X-Portcullis-Login-Url`
//!   header carries it too, for nginx's `error_page` to redirect to. With `?redirect=1` (for Traefik and Caddy, which pass a
//!   non-2xx answer to the client), a browser navigation gets a 302 to that
//!   URL instead; nginx needs the 401 and its own `error_page`.
//! - 403: signed in, but the access rules say no.
//!
//! The original request is described by `X-Original-URI` (nginx) or
//! `X-Forwarded-Uri` (Traefik, Caddy) and `X-Original-Method` /
//! `X-Forwarded-Method`; passthrough paths and tokens are judged on those,
//! with the same normalisation as in proxy mode.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::Body;
use crate::audit::{self, Ctx};
use crate::identity::Identity;
use crate::pages::redirect;
use crate::pages::{Page, PageKind};
use crate::policy::{self, Route, return_to::safe_return_path};
use crate::server::{App, login_url};
use crate::session::cookies;

/// Set on a 401 for a browser navigation: the sign-in URL to redirect to.
pub const LOGIN_URL_HEADER: &str = "x-portcullis-login-url";

/// Per-request facts the server already worked out.
#[derive(Debug, Clone, Copy)]
pub struct AuthCtx<'a> {
    pub ctx: Ctx<'a>,
    pub json: bool,
}

/// The original request as the fronting web server describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    /// Path and query, as the client sent them.
    pub uri: String,
}

impl Original {
    pub fn from_headers(headers: &HeaderMap) -> Original {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let method = get(&["x-original-method", "x-forwarded-method"])
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .unwrap_or(Method::GET);
        let uri = get(&["x-original-uri", "x-forwarded-uri"])
            .map(|u| {
                // An absolute URL (some setups send one): keep path and query.
                match u.parse::<http::Uri>() {
                    Ok(parsed) if parsed.scheme().is_some() => parsed
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "/".into()),
                    _ => u.to_string(),
                }
            })
            .unwrap_or_else(|| "/".into());
        Original { method, uri }
    }

    pub fn path(&self) -> &str {
        self.uri.split(['?', '#']).next().unwrap_or("/")
    }
}

/// Answers `/.portcullis/auth`.
pub fn check<B>(app: &App, req: &Request<B>, ac: AuthCtx<'_>) -> Response<Body> {
    let config = &app.config;
    let orig = Original::from_headers(req.headers());
    let redirect_browsers = query_flag(req.uri().query(), "redirect");
    match policy::route(config, &orig.method, orig.path(), req.headers()) {
        Route::Passthrough => allowed(app, None, &[], ac),
        Route::Token(m) => {
            let identity = policy::token_identity(&m);
            if let Err(denied) = policy::authorize(config, &identity, ac.ctx.client_ip, true) {
                audit::access_denied(ac.ctx, Some(&identity.user), denied.rule());
                return page(app, Page::new(PageKind::Forbidden), ac);
            }
            audit::token_used(ac.ctx, &m.token.name);
            allowed(app, Some(&identity), &[], ac)
        }
        // Portcullis' own paths are answered by Portcullis itself, on a
        // route without forward-auth; if one is asked about here, the app
        // would serve it, so it is treated like any other path.
        Route::Own(_) | Route::Session => {
            let jar = cookies::request_cookies(req.headers());
            match app.sessions.verify(&jar) {
                Some(Ok(v)) => {
                    crate::metrics::session_verified("valid");
                    let identity = v.claims.identity();
                    if let Err(denied) =
                        policy::authorize(config, &identity, ac.ctx.client_ip, false)
                    {
                        audit::access_denied(ac.ctx, Some(&identity.user), denied.rule());
                        return page(app, Page::new(PageKind::Forbidden), ac);
                    }
                    allowed(
                        app,
                        Some(&identity),
                        v.renewal.as_deref().unwrap_or(&[]),
                        ac,
                    )
                }
                other => {
                    if let Some(Err(e)) = other {
                        crate::metrics::session_verified(crate::metrics::session_error_label(&e));
                        audit::session_rejected(ac.ctx, &e.to_string());
                    }
                    let return_to = safe_return_path(Some(&orig.uri), &config.public_origin());
                    let login = login_url(&return_to);
                    let navigation = policy::is_navigation(&orig.method, req.headers());
                    if redirect_browsers && navigation {
                        return redirect(&login);
                    }
                    let mut resp = page(
                        app,
                        Page::new(PageKind::LoginRequired).with_login_url(&login),
                        ac,
                    );
                    let challenge = format!("Portcullis realm=\"{}\"", config.domain);
                    if let Ok(v) = HeaderValue::from_str(&challenge) {
                        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                    }
                    // For a browser navigation, where to send it: nginx reads
                    // this with auth_request_set and redirects in its
                    // error_page; a script gets the plain 401.
                    if navigation && let Ok(v) = HeaderValue::from_str(&login) {
                        resp.headers_mut().insert(LOGIN_URL_HEADER, v);
                    }
                    resp
                }
            }
        }
    }
}

fn allowed(
    app: &App,
    identity: Option<&Identity>,
    set_cookies: &[String],
    ac: AuthCtx<'_>,
) -> Response<Body> {
    let mut resp = Response::new(crate::empty_body());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(id) = identity
        && crate::proxy::headers::set_identity(h, &app.config, id).is_err()
    {
        // The access rules refuse such identities first; never answer
        // "yes" with a header left out.
        return page(app, Page::new(PageKind::Forbidden), ac);
    }
    // Every identity header is in the answer, empty when unknown: web
    // servers that copy a fixed list (Caddy's copy_headers) otherwise fill
    // a missing one with something of their own, and the client's copy
    // must be replaced in any case.
    for name in app.config.headers.all() {
        if !h.contains_key(name) {
            h.insert(name.clone(), HeaderValue::from_static(""));
        }
    }
    for c in set_cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn page(app: &App, page: Page, ac: AuthCtx<'_>) -> Response<Body> {
    page.render(&app.config.pages, ac.ctx.request_id, ac.json)
}

fn query_flag(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .any(|(k, v)| k == name && matches!(v.as_ref(), "" | "1" | "true" | "yes"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn original_request_from_nginx_traefik_and_nothing() {
        let o = Original::from_headers(&h(&[("x-original-uri", "/public/a?x=1")]));
        assert_eq!(o.method, Method::GET);
        assert_eq!(o.uri, "/public/a?x=1");
        assert_eq!(o.path(), "/public/a");
        let o = Original::from_headers(&h(&[
            ("x-forwarded-uri", "/hooks/x"),
            ("x-forwarded-method", "POST"),
        ]));
        assert_eq!(o.method, Method::POST);
        assert_eq!(o.path(), "/hooks/x");
        let o = Original::from_headers(&h(&[("x-forwarded-uri", "https://a.example.com/p?q")]));
        assert_eq!(o.uri, "/p?q");
        let o = Original::from_headers(&HeaderMap::new());
        assert_eq!(o.uri, "/");
    }

    #[test]
    fn redirect_flag() {
        assert!(query_flag(Some("redirect=1"), "redirect"));
        assert!(query_flag(Some("a=b&redirect"), "redirect"));
        assert!(!query_flag(Some("redirect=0"), "redirect"));
        assert!(!query_flag(None, "redirect"));
    }
}
