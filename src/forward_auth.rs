//! Forward-auth mode: `/.portcullis/auth` answers the question "may this
//! request through?" for a web server that proxies to the app itself —
//! nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`. The
//! decision is the gate's ([`crate::gate::decide`]), the same as in proxy
//! mode; this module only renders it.
//!
//! - 2xx: yes. The answer carries what the web server must put on the
//!   request to the app, so the app gets what proxy mode would give it:
//!   every identity header Portcullis owns (empty when there is no
//!   identity, so whatever copies them always overwrites the client's own
//!   copy), the token header empty, `Cookie` without Portcullis' cookies,
//!   and `Authorization` without a matched passthrough token (or the
//!   `upstream.basic_auth` credentials). A renewed session comes as
//!   `Set-Cookie`.
//! - 401: no session. The body names the sign-in URL (`/.portcullis/login?
//!   rd=…`, which checks that the return URL is same-origin); for a browser
//!   navigation the `X-Portcullis-Login-Url` header carries it too, for
//!   nginx's `error_page` to redirect to. With `?redirect=1` (for Traefik
//!   and Caddy, which pass a non-2xx answer to the client), a browser
//!   navigation gets a 302 to that URL instead.
//! - 403: signed in, but the access rules say no.
//! - 400 / 405 / 421: the question is refused (see [`crate::gate::Refusal`]);
//!   nginx turns any of these into a 500 for the client.
//!
//! Which headers describe the original request is `forward_auth.headers`
//! ([`crate::gate::original`]).

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::Body;
use crate::config::Config;
use crate::gate::original::Original;
use crate::gate::respond::{self, append_set_cookie};
use crate::gate::{self, Allow, Asked, Decision};
use crate::pages::{Page, PageKind, redirect};
use crate::proxy::headers::{NotHeaderSafe, StripRules, client_address};
use crate::request_ctx::RequestCtx;
use crate::session::{Sessions, cookies};

/// Set on a 401 for a browser navigation: the sign-in URL to redirect to.
pub const LOGIN_URL_HEADER: &str = "x-portcullis-login-url";

/// Answers `/.portcullis/auth`.
pub fn answer<B>(
    config: &Config,
    strip: &StripRules,
    sessions: &Sessions,
    req: &Request<B>,
    ctx: RequestCtx<'_>,
    json: bool,
) -> Response<Body> {
    let family = config.forward_auth_headers;
    let orig = Original::read(req.headers(), family);
    let asked = Asked::forward_auth(req, family, &orig, ctx);
    match gate::decide(config, sessions, &asked) {
        // The access rules refuse identities that cannot be headers first;
        // never answer "yes" with a header left out.
        Decision::Allow(allow) => {
            allowed(config, strip, req.headers(), &allow).unwrap_or_else(|NotHeaderSafe| {
                Page::new(PageKind::Forbidden).render(&config.pages, ctx.request_id, json)
            })
        }
        Decision::NeedLogin(need) => {
            let login = need.login_url();
            if need.navigation && query_flag(req.uri().query(), "redirect") {
                return redirect(&login);
            }
            let mut resp = respond::login_required(config, &need, ctx.request_id, json);
            // For a browser navigation, where to send it: nginx reads this
            // with auth_request_set and redirects in its error_page; a
            // script gets the plain 401.
            if need.navigation
                && let Ok(v) = HeaderValue::from_str(&login)
            {
                resp.headers_mut().insert(LOGIN_URL_HEADER, v);
            }
            resp
        }
        Decision::Deny(denied) => {
            respond::forbidden(&denied).render(&config.pages, ctx.request_id, json)
        }
        Decision::Refuse(why) => respond::refused(config, &why, ctx.request_id, json),
        // Not decided in forward-auth mode; never let through.
        Decision::Own(_) | Decision::ServerOptions => {
            Page::new(PageKind::BadRequest).render(&config.pages, ctx.request_id, json)
        }
    }
}

/// The 2xx answer: the headers the web server copies onto the request to
/// the app. Every one is present, empty when there is nothing to send: web
/// servers that copy a fixed list (Caddy's `copy_headers`) otherwise fill
/// a missing one with something of their own, or keep the client's.
/// Besides Portcullis' own identity headers, every exact name proxy mode
/// strips is sent empty (the identity headers of well-known apps, the
/// routing overrides, the operator's `headers.strip`), except the
/// client-address ones: an empty `X-Real-IP` copied over the front proxy's
/// own would hide the client from the app.
fn allowed(
    config: &Config,
    strip: &StripRules,
    request: &HeaderMap,
    allow: &Allow,
) -> Result<Response<Body>, NotHeaderSafe> {
    let mut resp = Response::new(crate::empty_body());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(id) = &allow.identity {
        crate::proxy::headers::set_identity(h, config, id)?;
    }
    let owned = config.headers.all().chain(
        strip
            .exact_names()
            .iter()
            .filter(|n| !client_address::NEVER_BELIEVED.contains(&n.as_str())),
    );
    for name in owned {
        if !h.contains_key(name) {
            h.insert(name.clone(), HeaderValue::from_static(""));
        }
    }
    h.insert(
        config.passthrough.token_header.clone(),
        HeaderValue::from_static(""),
    );
    h.insert(header::COOKIE, app_cookies(config, request));
    h.insert(
        header::AUTHORIZATION,
        app_authorization(config, request, allow),
    );
    for c in &allow.set_cookies {
        append_set_cookie(&mut resp, c);
    }
    Ok(resp)
}

/// The request's `Cookie` without Portcullis' own cookies.
fn app_cookies(config: &Config, request: &HeaderMap) -> HeaderValue {
    let mut only_cookies = HeaderMap::new();
    for v in request.get_all(header::COOKIE) {
        only_cookies.append(header::COOKIE, v.clone());
    }
    cookies::strip_own_cookies(&mut only_cookies, &config.session.base_cookie_name);
    only_cookies
        .remove(header::COOKIE)
        .unwrap_or_else(|| HeaderValue::from_static(""))
}

/// What proxy mode would send as `Authorization`: the Basic credentials of
/// `upstream.basic_auth` for an identity, nothing when the request's
/// `Authorization` is a passthrough token, else the request's own.
fn app_authorization(config: &Config, request: &HeaderMap, allow: &Allow) -> HeaderValue {
    if let (Some(id), Some(_)) = (&allow.identity, &config.upstream.basic_auth)
        && let Some(v) = crate::proxy::basic_credentials(config, id)
    {
        return v;
    }
    if allow.token_in_authorization {
        return HeaderValue::from_static("");
    }
    let mut all = request.get_all(header::AUTHORIZATION).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => v.clone(),
        // Several copies cannot be given back as one header; none is safer.
        _ => HeaderValue::from_static(""),
    }
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
    use crate::gate::Via;
    use crate::identity::Identity;

    fn config(extra: &str) -> Config {
        crate::config::from_yaml_str(&format!(
            "domain: app.test\nupstream:\n  url: http://127.0.0.1:1\n{extra}"
        ))
        .unwrap()
    }

    fn allow(identity: Option<&str>, token_in_authorization: bool) -> Allow {
        Allow {
            via: Via::Passthrough,
            identity: identity.map(|u| Identity {
                subject: u.into(),
                user: u.into(),
                ..Default::default()
            }),
            set_cookies: vec!["s=renewed; Path=/".into()],
            token_in_authorization,
            source: None,
            session: None,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn answer_without_identity_blanks_everything_owned() {
        let c = config("headers:\n  extra:\n    department: X-Dept\n  strip: [X-Tenant]\n");
        let req = headers(&[
            ("cookie", "a=1; __Host-portcullis_session=t"),
            ("cookie", "portcullis_txn_x=y; b=2"),
            ("authorization", "Basic YTpi"),
            ("x-forwarded-user", "forged"),
        ]);
        let resp = allowed(&c, &StripRules::new(&c), &req, &allow(None, false)).unwrap();
        let h = resp.headers();
        for name in [
            "x-forwarded-user",
            "x-forwarded-email",
            "x-forwarded-groups",
            "x-forwarded-preferred-username",
            "x-forwarded-name",
            "x-dept",
            "x-portcullis-authorization",
            // A well-known app's, a routing override, the operator's.
            "remote-user",
            "x-original-url",
            "x-tenant",
        ] {
            assert_eq!(h[name], "", "{name}");
        }
        assert!(!h.contains_key("x-real-ip"));
        assert_eq!(h["cookie"], "a=1; b=2");
        assert_eq!(h["authorization"], "Basic YTpi");
        assert_eq!(h["set-cookie"], "s=renewed; Path=/");
    }

    #[test]
    fn a_token_in_authorization_is_not_given_back() {
        let c = config("");
        let req = headers(&[
            ("authorization", "Bearer tok"),
            ("cookie", "portcullis_session=t"),
        ]);
        let resp = allowed(&c, &StripRules::new(&c), &req, &allow(Some("backup"), true)).unwrap();
        assert_eq!(resp.headers()["authorization"], "");
        assert_eq!(resp.headers()["cookie"], "");
        assert_eq!(resp.headers()["x-forwarded-user"], "backup");
        // Two Authorization copies cannot be answered as one.
        let req = headers(&[
            ("authorization", "Basic YTpi"),
            ("authorization", "Basic Yzpk"),
        ]);
        let resp = allowed(&c, &StripRules::new(&c), &req, &allow(None, false)).unwrap();
        assert_eq!(resp.headers()["authorization"], "");
    }

    #[test]
    fn basic_auth_for_the_app_replaces_authorization() {
        let c = crate::config::from_yaml_str(
            "domain: app.test\nupstream:\n  url: http://127.0.0.1:1\n  basic_auth:\n    password: pw\n",
        )
        .unwrap();
        let req = headers(&[("authorization", "Basic Zm9yZ2Vk")]);
        let resp = allowed(&c, &StripRules::new(&c), &req, &allow(Some("alice"), false)).unwrap();
        // alice:pw
        assert_eq!(resp.headers()["authorization"], "Basic YWxpY2U6cHc=");
        let resp = allowed(&c, &StripRules::new(&c), &req, &allow(None, false)).unwrap();
        assert_eq!(resp.headers()["authorization"], "Basic Zm9yZ2Vk");
    }

    #[test]
    fn redirect_flag() {
        assert!(query_flag(Some("redirect=1"), "redirect"));
        assert!(query_flag(Some("a=b&redirect"), "redirect"));
        assert!(!query_flag(Some("redirect=0"), "redirect"));
        assert!(!query_flag(None, "redirect"));
    }
}
