//! The one decision: given what is asked ([`Asked`]), may it reach the app,
//! and as whom? In this order:
//!
//! 1. A forward-auth question that cannot be believed is refused.
//! 2. `strict_host`: a host name that is not ours is refused (421).
//! 3. `CONNECT` is refused: it would be a tunnel past the gate.
//! 4. `OPTIONS *` is about the server, never the app: answered by
//!    Portcullis in proxy mode, refused in forward-auth mode.
//! 5. The raw path is judged by its normal form ([`path::normalise`]). Only
//!    a path that is already canonical can be an own endpoint or match a
//!    passthrough rule; a non-canonical path that reads as the reserved
//!    prefix in either form is refused, so no reader can take it for an
//!    own endpoint while another takes it for the app's.
//! 6. Passthrough: let in without identity.
//! 7. A configured token: let in as the token's identity (address rule).
//! 8. A session cookie: verified, access rules applied, renewed.
//! 9. Otherwise a login is needed.
//!
//! Metrics and audit events for all of that happen here, once; the callers
//! only render the outcome.

use std::sync::Arc;

use http::Method;

use super::original::OriginalError;
use super::request::{Asked, Mode, Target};
use crate::config::Config;
use crate::identity::Identity;
use crate::policy::{self, Denial, path, return_to::safe_return_path};
use crate::session::{SessionClaims, Sessions, cookies};
use crate::{RESERVED_PREFIX, audit, login_loop, metrics};

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// Proxy mode: one of Portcullis' own endpoints, the path below the
    /// reserved prefix (e.g. `health`).
    Own(String),
    /// `OPTIONS *` in proxy mode: Portcullis answers for itself.
    ServerOptions,
    /// Forward to the app.
    Allow(Allow),
    /// Nobody is signed in.
    NeedLogin(NeedLogin),
    /// Signed in (or a token), but the access rules say no (403): the rule
    /// that refused; the page shows only its description.
    Deny(Denial),
    /// Not a request the gate answers for the app.
    Refuse(Refusal),
}

/// How a request was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Passthrough,
    Token,
    Session,
}

#[derive(Debug)]
pub struct Allow {
    pub via: Via,
    /// `None` on passthrough paths: no identity headers at all.
    pub identity: Option<Identity>,
    /// `Set-Cookie` values for the browser (a renewed session, a cleared
    /// login-loop counter).
    pub set_cookies: Vec<String>,
    /// `Authorization` carries a configured token: it must not reach the
    /// app, whatever the route. Any other `Authorization` is the app's.
    pub token_in_authorization: bool,
    /// What a signed identity assertion says about where the identity came
    /// from; `None` on passthrough paths (no assertion).
    pub source: Option<crate::assertion::Source>,
    /// The session that let the request in: a WebSocket or streaming
    /// response ends with it (`proxy::SessionBound`). `None` for
    /// passthrough paths and tokens.
    pub session: Option<Arc<SessionClaims>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedLogin {
    /// The same-origin path to come back to after signing in.
    pub return_to: String,
    /// A top-level browser navigation (may be redirected to sign in), not
    /// a script (gets 401).
    pub navigation: bool,
    /// Signed in, but longer ago than a rule's `max_auth_age` allows: the
    /// login to start asks the IdP for a fresh sign-in, and a script is
    /// told that re-authentication, not a first sign-in, is needed.
    pub reauth: bool,
    /// A form a person submitted: kept in the browser while they sign in
    /// again (proxy mode; `crate::resubmit`).
    pub form: Option<policy::FormPost>,
}

impl NeedLogin {
    pub fn login_url(&self) -> String {
        super::respond::login_url(&self.return_to)
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Forward-auth: the front proxy's description could not be believed.
    Unreadable(OriginalError),
    /// `strict_host`: not one of our host names (421).
    MisdirectedHost,
    /// `CONNECT` (405).
    Tunnel,
    /// Asterisk-form other than `OPTIONS *` in proxy mode, or any
    /// asterisk-form in forward-auth mode.
    AsteriskForm,
    /// A non-canonical path that reads as the reserved prefix raw or
    /// normalised.
    AmbiguousReserved,
}

impl Refusal {
    /// For the audit log: what was wrong, never a value from the request.
    pub fn reason(&self) -> String {
        match self {
            Refusal::Unreadable(e) => e.to_string(),
            Refusal::MisdirectedHost => {
                "the Host is not this domain or one of domain_aliases (strict_host)".into()
            }
            Refusal::Tunnel => "CONNECT would open a tunnel past the gate".into(),
            Refusal::AsteriskForm => "an asterisk-form target is only for OPTIONS *".into(),
            Refusal::AmbiguousReserved => {
                "a non-canonical path that reads as the reserved prefix in one form".into()
            }
        }
    }
}

/// Decides `asked`.
pub fn decide(config: &Config, sessions: &Sessions, asked: &Asked<'_>) -> Decision {
    let decision = judge(config, sessions, asked);
    if let Decision::Refuse(r) = &decision {
        audit::request_refused(asked.ctx, &r.reason());
    }
    decision
}

fn judge(config: &Config, sessions: &Sessions, asked: &Asked<'_>) -> Decision {
    let raw_path = match &asked.target {
        Target::Unreadable(e) => return Decision::Refuse(Refusal::Unreadable(e.clone())),
        _ if !super::host::allowed(&config.hosts, &asked.hosts) => {
            return Decision::Refuse(Refusal::MisdirectedHost);
        }
        _ if asked.method == Method::CONNECT => return Decision::Refuse(Refusal::Tunnel),
        Target::Authority => return Decision::Refuse(Refusal::Tunnel),
        Target::Asterisk => {
            return if asked.mode == Mode::Proxy && asked.method == Method::OPTIONS {
                Decision::ServerOptions
            } else {
                Decision::Refuse(Refusal::AsteriskForm)
            };
        }
        Target::Path { path, .. } => *path,
    };

    let normal = path::normalise(raw_path);
    let canonical = normal.as_deref() == Some(raw_path);
    let reserved = |p: &str| p.starts_with(RESERVED_PREFIX);
    if !canonical && (reserved(raw_path) || normal.as_deref().is_some_and(reserved)) {
        return Decision::Refuse(Refusal::AmbiguousReserved);
    }
    // In forward-auth mode the front proxy serves the reserved prefix
    // itself (routed to Portcullis without the check); asked about here,
    // it is a path of the app like any other.
    if canonical
        && asked.mode == Mode::Proxy
        && let Some(rest) = raw_path.strip_prefix(RESERVED_PREFIX)
    {
        return Decision::Own(rest.to_string());
    }

    let presented = policy::tokens::presented(
        &config.passthrough.tokens,
        asked.headers,
        &config.passthrough.token_header,
    );
    if canonical && policy::passthrough_rule_matches(config, &asked.method, raw_path) {
        return Decision::Allow(Allow {
            via: Via::Passthrough,
            identity: None,
            set_cookies: Vec::new(),
            token_in_authorization: presented.in_authorization,
            source: None,
            session: None,
        });
    }

    let rules = policy::rules::applicable(&config.access, &asked.method, raw_path);
    if let Some(m) = &presented.matched {
        let identity = policy::token_identity(m);
        if let Err(denied) = policy::authorize(
            config,
            &identity,
            asked.ctx.client_ip,
            true,
            rules.as_deref(),
        ) {
            audit::access_denied(asked.ctx, Some(&identity.user), &denied);
            return Decision::Deny(denied);
        }
        audit::token_used(asked.ctx, &m.token.name);
        return Decision::Allow(Allow {
            via: Via::Token,
            identity: Some(identity),
            set_cookies: Vec::new(),
            token_in_authorization: presented.in_authorization,
            source: Some(crate::assertion::Source::Token),
            session: None,
        });
    }

    let jar = cookies::request_cookies(asked.headers);
    match sessions.verify(&jar) {
        Some(Ok(verified)) => {
            metrics::session_verified("valid");
            let identity = verified.claims.identity();
            let source = crate::assertion::Source::Session {
                idp: verified.claims.idp,
                auth_time: verified.claims.auth_time,
                exp: verified.claims.exp,
            };
            if let Err(denied) = policy::authorize(
                config,
                &identity,
                asked.ctx.client_ip,
                false,
                rules.as_deref(),
            ) {
                audit::access_denied(asked.ctx, Some(&identity.user), &denied);
                return Decision::Deny(denied);
            }
            if let Some(max_age) = rules.as_deref().and_then(policy::rules::max_auth_age)
                && !policy::fresh::signed_in_within(
                    verified.claims.idp_auth_time,
                    max_age,
                    config.idp_clock_skew(),
                    crate::clock::now(),
                )
            {
                audit::reauth_required(asked.ctx, &identity.user, max_age.as_secs());
                return Decision::NeedLogin(need_login(config, asked, true));
            }
            let set_cookies = verified
                .renewal
                .into_iter()
                .flatten()
                .chain(login_loop::clear_if_present(&jar, sessions.attrs()))
                .collect();
            Decision::Allow(Allow {
                via: Via::Session,
                identity: Some(identity),
                set_cookies,
                token_in_authorization: presented.in_authorization,
                source: Some(source),
                session: Some(verified.claims),
            })
        }
        other => {
            if let Some(Err(e)) = other {
                metrics::session_verified(e.metric_label());
                audit::session_rejected(asked.ctx, &e.to_string());
            }
            Decision::NeedLogin(need_login(config, asked, false))
        }
    }
}

fn need_login(config: &Config, asked: &Asked<'_>, reauth: bool) -> NeedLogin {
    NeedLogin {
        return_to: safe_return_path(
            Some(&asked.target.path_and_query()),
            &config.public_origin(),
        ),
        navigation: policy::is_navigation(&asked.method, asked.headers),
        reauth,
        form: policy::form_post(&asked.method, asked.headers),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use http::{HeaderMap, HeaderValue, Request};

    use super::*;
    use crate::config::HeaderFamily;
    use crate::gate::original::Original;
    use crate::identity::IdpKind;
    use crate::request_ctx::RequestCtx;
    use crate::session::KeyRing;

    const TOKEN: &str = "unit-test-token";

    struct Fixture {
        config: Config,
        sessions: Sessions,
    }

    fn fixture(extra: &str) -> Fixture {
        let hash = hex::encode(policy::tokens::sha256(TOKEN));
        let config = crate::config::from_yaml_str(&format!(
            "domain: app.test\nupstream:\n  url: http://127.0.0.1:1\npassthrough:\n  paths:\n    - prefix: /public/\n    - prefix: /hooks/\n      methods: [POST]\n  tokens:\n    - name: backup\n      sha256: {hash}\n{extra}"
        ))
        .unwrap();
        let sessions = Sessions::new(&config, Arc::new(KeyRing::generate()));
        Fixture { config, sessions }
    }

    fn ctx() -> RequestCtx<'static> {
        RequestCtx {
            request_id: "unit",
            // A client connecting directly: no proxy vouches for it.
            peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            peer_trusted: false,
            client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        }
    }

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn proxied(f: &Fixture, method: &str, target: &str, headers: &[(&str, &str)]) -> Decision {
        let req = request(method, target, headers);
        decide(&f.config, &f.sessions, &Asked::proxied(&req, ctx()))
    }

    fn asked_about(f: &Fixture, headers: &[(&str, &str)]) -> Decision {
        let req = request("GET", "/.portcullis/auth", headers);
        let orig = Original::read(req.headers(), f.config.forward_auth_headers);
        let asked = Asked::forward_auth(&req, f.config.forward_auth_headers, &orig, ctx());
        decide(&f.config, &f.sessions, &asked)
    }

    fn session_cookie(f: &Fixture, groups: &[&str]) -> String {
        let id = Identity {
            subject: "s".into(),
            user: "alice".into(),
            email: Some("alice@example.com".into()),
            groups: groups
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            ..Default::default()
        };
        let set = f.sessions.mint(&id, IdpKind::Oidc, &[]).unwrap();
        set[0].split(';').next().unwrap().to_string()
    }

    fn kind(d: &Decision) -> String {
        match d {
            Decision::Own(rest) => format!("own:{rest}"),
            Decision::ServerOptions => "options".into(),
            Decision::Allow(a) => format!("allow:{:?}", a.via),
            Decision::NeedLogin(_) => "login".into(),
            Decision::Deny(d) => format!("deny:{:?}", d.why),
            Decision::Refuse(r) => format!("refuse:{r:?}"),
        }
    }

    #[test]
    fn canonical_passthrough_paths_are_let_in_without_identity() {
        let f = fixture("");
        let d = proxied(&f, "GET", "/public/a/b.css?x=1", &[]);
        let Decision::Allow(a) = d else {
            panic!("{d:?}")
        };
        assert_eq!(a.via, Via::Passthrough);
        assert!(a.identity.is_none());
        assert!(!a.token_in_authorization);
        assert_eq!(
            kind(&proxied(&f, "POST", "/hooks/x", &[])),
            "allow:Passthrough"
        );
        assert_eq!(kind(&proxied(&f, "GET", "/hooks/x", &[])), "login");
    }

    #[test]
    fn non_canonical_paths_are_protected_in_both_directions() {
        let f = fixture("");
        let mut failures = Vec::new();
        for p in [
            "/public/../admin",
            "/admin/../public/x",
            "/admin/..;/public/x",
            "/admin/%2e%2e/public/x",
            "/admin\\..\\public/x",
            "//public/x",
            "/public//x",
            "/%70ublic/x",
            "/public/%78",
            "/public/a%3fb",
            "/public;x/y",
            "/public/x/.",
            "/public%2Fx",
            "/public/x.",
            "http://app.test/admin/../public/x",
        ] {
            let d = proxied(&f, "GET", p, &[]);
            if kind(&d) != "login" {
                failures.push(format!("{p}: {}", kind(&d)));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn need_login_comes_back_to_the_raw_path_and_knows_browsers() {
        let f = fixture("");
        let d = proxied(
            &f,
            "GET",
            "/reports?id=7",
            &[("accept", "text/html"), ("cookie", "a=1")],
        );
        assert!(matches!(
            &d,
            Decision::NeedLogin(n) if n.navigation && n.return_to == "/reports?id=7"
                && n.login_url() == "/.portcullis/login?rd=%2Freports%3Fid%3D7"
        ));
        let d = proxied(&f, "GET", "/x", &[("accept", "application/json")]);
        assert!(matches!(&d, Decision::NeedLogin(n) if !n.navigation));
    }

    #[test]
    fn own_endpoints_only_in_canonical_form_and_only_in_proxy_mode() {
        let f = fixture("");
        assert_eq!(
            kind(&proxied(&f, "GET", "/.portcullis/health", &[])),
            "own:health"
        );
        for p in [
            "/public/../.portcullis/logout",
            "/.portcullis/../admin",
            "/.portcullis/./logout",
            "//.portcullis/logout",
            "/%2Eportcullis/logout",
        ] {
            assert_eq!(
                kind(&proxied(&f, "GET", p, &[])),
                "refuse:AmbiguousReserved",
                "{p}"
            );
        }
        // Forward-auth: the app's path like any other.
        let d = asked_about(
            &f,
            &[
                ("x-original-uri", "/.portcullis/logout"),
                ("x-original-method", "GET"),
            ],
        );
        assert_eq!(kind(&d), "login");
    }

    #[test]
    fn tunnels_and_asterisk_form() {
        let f = fixture("");
        assert_eq!(kind(&proxied(&f, "OPTIONS", "*", &[])), "options");
        assert_eq!(kind(&proxied(&f, "GET", "*", &[])), "refuse:AsteriskForm");
        assert_eq!(
            kind(&proxied(&f, "CONNECT", "app.test:443", &[])),
            "refuse:Tunnel"
        );
        let d = asked_about(
            &f,
            &[("x-original-uri", "*"), ("x-original-method", "OPTIONS")],
        );
        assert_eq!(kind(&d), "refuse:AsteriskForm");
        let d = asked_about(
            &f,
            &[
                ("x-original-uri", "/public/x"),
                ("x-original-method", "CONNECT"),
            ],
        );
        assert_eq!(kind(&d), "refuse:Tunnel");
    }

    #[test]
    fn tokens_let_in_and_never_leave_on_any_route() {
        let f = fixture("");
        let bearer = format!("Bearer {TOKEN}");
        let d = proxied(&f, "GET", "/api", &[("authorization", &bearer)]);
        let Decision::Allow(a) = d else {
            panic!("{d:?}")
        };
        assert_eq!(a.via, Via::Token);
        assert_eq!(a.identity.unwrap().user, "backup");
        assert!(a.token_in_authorization);
        // On a passthrough path the token is still not the app's.
        let d = proxied(&f, "GET", "/public/x", &[("authorization", &bearer)]);
        assert!(
            matches!(d, Decision::Allow(a) if a.via == Via::Passthrough && a.token_in_authorization)
        );
        // The app's own Basic credentials are.
        let d = proxied(
            &f,
            "GET",
            "/public/x",
            &[("authorization", "Basic YXBwOnB3")],
        );
        assert!(matches!(d, Decision::Allow(a) if !a.token_in_authorization));
        // Through the product header, Authorization stays the app's.
        let d = proxied(
            &f,
            "GET",
            "/api",
            &[
                ("x-portcullis-authorization", &bearer),
                ("authorization", "Bearer app-token"),
            ],
        );
        assert!(
            matches!(d, Decision::Allow(a) if a.via == Via::Token && !a.token_in_authorization)
        );
        assert_eq!(
            kind(&proxied(
                &f,
                "GET",
                "/api",
                &[("authorization", "Bearer nope")]
            )),
            "login"
        );
    }

    #[test]
    fn tokens_are_held_to_the_address_rule() {
        let f = fixture("access:\n  allowed_ip_ranges: [203.0.113.0/24]\n");
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(
            kind(&proxied(&f, "GET", "/api", &[("authorization", &bearer)])),
            "deny:ClientIp"
        );
    }

    #[test]
    fn sessions_are_verified_and_authorised() {
        let f = fixture("access:\n  allowed_groups: [admins]\n");
        let good = session_cookie(&f, &["admins"]);
        let d = proxied(&f, "GET", "/x", &[("cookie", &good)]);
        let Decision::Allow(a) = d else {
            panic!("{d:?}")
        };
        assert_eq!(a.via, Via::Session);
        assert_eq!(a.identity.unwrap().user, "alice");
        let outsider = session_cookie(&f, &["staff"]);
        assert_eq!(
            kind(&proxied(&f, "GET", "/x", &[("cookie", &outsider)])),
            "deny:Identity"
        );
        let forged = format!("{good}x");
        assert_eq!(
            kind(&proxied(&f, "GET", "/x", &[("cookie", &forged)])),
            "login"
        );
    }

    #[test]
    fn an_aging_session_is_renewed_and_a_loop_counter_cleared() {
        let f = fixture("");
        let now = crate::session::now();
        let id = Identity {
            subject: "s".into(),
            user: "alice".into(),
            ..Default::default()
        };
        let mut claims = f.sessions.claims_for(&id, IdpKind::Oidc, now - 2000);
        claims.exp = now + 600;
        let cookie = format!(
            "{}={}; __Host-portcullis_loop=2.{now}",
            f.sessions.cookie_name(),
            f.sessions.encode(&claims).unwrap()
        );
        let d = proxied(&f, "GET", "/x", &[("cookie", &cookie)]);
        let Decision::Allow(a) = d else {
            panic!("{d:?}")
        };
        assert_eq!(a.set_cookies.len(), 2, "{:?}", a.set_cookies);
        assert!(a.set_cookies[0].starts_with("__Host-portcullis_session="));
        assert!(!a.set_cookies[0].contains("Max-Age=0"));
        assert!(a.set_cookies[1].starts_with("__Host-portcullis_loop=; Max-Age=0"));
    }

    fn cookie_signed_in_at(f: &Fixture, idp_auth_time: Option<u64>) -> String {
        let id = Identity {
            subject: "s".into(),
            user: "alice".into(),
            groups: vec!["admins".into()],
            ..Default::default()
        };
        let refs = crate::session::LoginRefs {
            idp_auth_time,
            ..Default::default()
        };
        let set = f
            .sessions
            .mint_login(&id, IdpKind::Oidc, &refs, &[])
            .unwrap();
        set[0].split(';').next().unwrap().to_string()
    }

    #[test]
    fn max_auth_age_sends_an_old_sign_in_back_and_lets_a_recent_one_in() {
        let f = fixture(
            "oidc:\n  issuer: http://127.0.0.1:1\n  client_id: c\n  client_secret: s\n  clock_skew: 5s\naccess:\n  rules:\n    - description: Admin console\n      paths: [{prefix: /admin/}]\n      max_auth_age: 60s\n",
        );
        let now = crate::session::now();
        let html = [("accept", "text/html")];
        let mut failures = Vec::new();
        for (at, path, want) in [
            // Recent, old beyond the skew, unknown, from the future.
            (Some(now - 30), "/admin/x", "allow:Session"),
            (Some(now - 64), "/admin/x", "allow:Session"),
            (Some(now - 66), "/admin/x", "reauth"),
            (None, "/admin/x", "reauth"),
            (Some(now + 3600), "/admin/x", "reauth"),
            // Encodings and dot segments cannot leave the rule.
            (Some(now - 600), "/public/../admin/x", "reauth"),
            (Some(now - 600), "/%61dmin/x", "reauth"),
            (Some(now - 600), "/admin/%2e/x", "reauth"),
            // Other paths do not ask.
            (Some(now - 600), "/reports/x", "allow:Session"),
            (None, "/reports/x", "allow:Session"),
        ] {
            let cookie = cookie_signed_in_at(&f, at);
            let headers = [html[0], ("cookie", cookie.as_str())];
            let d = proxied(&f, "GET", path, &headers);
            let got = match &d {
                Decision::NeedLogin(n) if n.reauth && n.navigation => "reauth".to_string(),
                other => kind(other),
            };
            if got != want {
                failures.push(format!("{at:?} {path}: {got}, want {want}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        // A script is told, not redirected; forward-auth asks the same.
        let cookie = cookie_signed_in_at(&f, Some(now - 600));
        let d = proxied(
            &f,
            "GET",
            "/admin/x",
            &[("accept", "application/json"), ("cookie", &cookie)],
        );
        assert!(
            matches!(&d, Decision::NeedLogin(n) if n.reauth && !n.navigation),
            "{d:?}"
        );
        let d = asked_about(
            &f,
            &[
                ("x-original-uri", "/admin/x"),
                ("x-original-method", "GET"),
                ("cookie", &cookie),
            ],
        );
        assert!(matches!(&d, Decision::NeedLogin(n) if n.reauth), "{d:?}");
        // Tokens carry no sign-in: the address lists are all that binds them.
        let d = proxied(
            &f,
            "GET",
            "/admin/x",
            &[("authorization", &format!("Bearer {TOKEN}"))],
        );
        assert_eq!(kind(&d), "allow:Token");
    }

    #[test]
    fn strict_host_refuses_other_hosts() {
        let f = fixture("strict_host: true\ndomain_aliases: [app.internal]\n");
        for (target, host) in [
            ("/public/x", "app.test"),
            ("/public/x", "app.internal"),
            ("/public/x", "APP.TEST:443"),
        ] {
            assert_eq!(
                kind(&proxied(&f, "GET", target, &[("host", host)])),
                "allow:Passthrough",
                "{host}"
            );
        }
        for (target, host) in [
            ("/public/x", "evil.example"),
            ("http://evil.example/public/x", "app.test"),
            ("/.portcullis/health", "evil.example"),
        ] {
            assert_eq!(
                kind(&proxied(&f, "GET", target, &[("host", host)])),
                "refuse:MisdirectedHost",
                "{target} {host}"
            );
        }
        assert_eq!(
            kind(&proxied(&f, "GET", "/public/x", &[])),
            "refuse:MisdirectedHost"
        );
        // Off by default.
        let f = fixture("");
        assert_eq!(
            kind(&proxied(
                &f,
                "GET",
                "/public/x",
                &[("host", "evil.example")]
            )),
            "allow:Passthrough"
        );
    }

    #[test]
    fn forward_auth_believes_its_family_only() {
        let f = fixture("forward_auth:\n  headers: forwarded\n");
        assert_eq!(f.config.forward_auth_headers, HeaderFamily::Forwarded);
        let d = asked_about(
            &f,
            &[
                ("x-forwarded-uri", "/public/x"),
                ("x-forwarded-method", "GET"),
            ],
        );
        assert_eq!(kind(&d), "allow:Passthrough");
        let d = asked_about(
            &f,
            &[
                ("x-forwarded-uri", "/admin"),
                ("x-forwarded-method", "GET"),
                ("x-original-uri", "/public/x"),
            ],
        );
        assert!(matches!(
            d,
            Decision::Refuse(Refusal::Unreadable(OriginalError::Conflict { .. }))
        ));
        let d = asked_about(&f, &[("x-original-uri", "/public/x")]);
        assert!(matches!(
            d,
            Decision::Refuse(Refusal::Unreadable(OriginalError::Missing { .. }))
        ));
        // Strict host reads the family's host header.
        let f = fixture("strict_host: true\nforward_auth:\n  headers: forwarded\n");
        let d = asked_about(
            &f,
            &[
                ("x-forwarded-uri", "/public/x"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-host", "evil.example"),
                ("host", "app.test"),
            ],
        );
        assert_eq!(kind(&d), "refuse:MisdirectedHost");
    }

    #[test]
    fn refusals_say_what_was_wrong() {
        assert!(Refusal::MisdirectedHost.reason().contains("strict_host"));
        let mut h = HeaderMap::new();
        h.insert("x-original-uri", HeaderValue::from_static("/x"));
        assert!(
            Refusal::Unreadable(Original::read(&h, HeaderFamily::Nginx).unwrap_err())
                .reason()
                .contains("x-original-method")
        );
    }
}
