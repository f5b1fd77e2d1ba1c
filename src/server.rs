//! Proxy mode: strip spoofed headers, work out the client, take the gate's
//! decision ([`crate::gate::decide`]) and render it — forward, serve an own
//! endpoint, start a login, or refuse. Connections are accepted and served
//! by `connections`.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::audit;
use crate::config::Config;
use crate::gate::respond::{self, append_set_cookie};
use crate::gate::{self, Asked, Decision, Via};
use crate::identity::Identity;
use crate::idp::{Completed, EndpointOutcome, Login, LoginCtx};
use crate::pages::{Page, PageKind, redirect};
use crate::policy::{self, return_to::safe_return_path};
use crate::proxy::headers::StripRules;
use crate::proxy::{Forward, ProxyError, UpstreamClient};
use crate::request_ctx::RequestCtx;
use crate::session::{Sessions, Transactions, cookies};
use crate::{Body, login_loop, metrics};

/// Everything a request needs, built once at start.
pub struct App {
    pub config: Config,
    pub sessions: Sessions,
    pub upstream: UpstreamClient,
    pub login: Login,
    pub transactions: Transactions,
    own_headers: StripRules,
    /// `None` unless `assertion.enabled`.
    assertions: Option<crate::assertion::Assertions>,
}

impl App {
    pub fn new(
        config: Config,
        sessions: Sessions,
        transactions: Transactions,
        upstream: UpstreamClient,
        login: Login,
    ) -> App {
        let own_headers = StripRules::new(&config);
        App {
            config,
            sessions,
            upstream,
            login,
            transactions,
            own_headers,
            assertions: None,
        }
    }

    /// Signs an identity assertion onto every forwarded authenticated
    /// request.
    pub fn with_assertions(mut self, assertions: Option<crate::assertion::Assertions>) -> App {
        self.assertions = assertions;
        self
    }

    pub async fn handle(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let request_id = crate::random_id(8);
        // Step 2 of the request flow (docs/design.md), before anything
        // looks at the headers.
        self.own_headers.strip_spoofed(req.headers_mut());
        let rq = Rq {
            ctx: RequestCtx::read(
                &request_id,
                peer.ip(),
                req.headers(),
                &self.config.access.trusted_proxies,
            ),
            json: policy::wants_json(req.headers()),
        };

        let decision = gate::decide(&self.config, &self.sessions, &Asked::proxied(&req, rq.ctx));
        let route_kind = match &decision {
            Decision::Own(_) | Decision::ServerOptions => metrics::RouteKind::Own,
            Decision::Allow(a) => match a.via {
                Via::Passthrough => metrics::RouteKind::Passthrough,
                Via::Token => metrics::RouteKind::Token,
                Via::Session => metrics::RouteKind::Session,
            },
            Decision::NeedLogin(_) | Decision::Deny(_) | Decision::Refuse(_) => {
                metrics::RouteKind::Session
            }
        };
        let mut resp = match decision {
            Decision::Own(rest) => self.own_endpoint(&rest, req, &rq).await,
            Decision::ServerOptions => respond::server_options(),
            Decision::Allow(allow) => self.allow(req, &rq, allow).await,
            Decision::NeedLogin(gate::NeedLogin {
                form: Some(form),
                ref return_to,
                ..
            }) => self.keep_form(req, &rq, return_to, form).await,
            Decision::NeedLogin(need) if need.navigation => {
                self.start_login(req.headers(), &rq, &need.return_to).await
            }
            Decision::NeedLogin(need) => {
                respond::login_required(&self.config, &need, rq.ctx.request_id, rq.json)
            }
            Decision::Deny(denied) => self.page(&respond::forbidden(&denied), &rq),
            Decision::Refuse(why) => {
                respond::refused(&self.config, &why, rq.ctx.request_id, rq.json)
            }
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().entry("x-request-id").or_insert(v);
        }
        let from_upstream = resp
            .extensions_mut()
            .remove::<metrics::FromUpstream>()
            .is_some();
        metrics::request(metrics::classify(route_kind, resp.status(), from_upstream));
        resp
    }

    /// Renders `Allow`: the signed assertion (when enabled), the session
    /// binding, the forward, the renewed cookie.
    async fn allow(
        &self,
        req: Request<Incoming>,
        rq: &Rq<'_>,
        allow: gate::Allow,
    ) -> Response<Body> {
        let assertion = match (&self.assertions, &allow.identity, allow.source) {
            (Some(a), Some(id), Some(source)) => {
                match a.for_identity(id, source, crate::clock::now()) {
                    Ok(v) => Some((a.header(), v)),
                    Err(e) => {
                        // Fail closed: the app trusts the assertion,
                        // not the plain headers.
                        tracing::error!(request_id = rq.ctx.request_id, error = %e, "identity assertion not signed");
                        audit::assertion_failed(rq.ctx, &id.user, &e.kid);
                        return self.page(&Page::new(PageKind::AssertionUnavailable), rq);
                    }
                }
            }
            _ => None,
        };
        let assertion = assertion.as_ref().map(|(n, v)| (*n, v));
        let session = allow.session.map(|claims| {
            let ends_at = self.sessions.ends_at(&claims);
            crate::proxy::SessionBound::new(claims, ends_at, self.sessions.revocations().clone())
        });
        let mut resp = self
            .forward(
                req,
                rq,
                allow.identity.as_ref(),
                allow.token_in_authorization,
                assertion,
                session.as_ref(),
            )
            .await;
        for c in &allow.set_cookies {
            append_set_cookie(&mut resp, c);
        }
        resp
    }

    async fn start_login(
        &self,
        headers: &http::HeaderMap,
        rq: &Rq<'_>,
        return_to: &str,
    ) -> Response<Body> {
        let fresh = policy::fresh::required_for_return(&self.config.access, return_to);
        self.start_login_for(headers, rq, return_to, fresh).await
    }

    /// [`Self::start_login`], asking for a sign-in no older than `fresh`.
    async fn start_login_for(
        &self,
        headers: &http::HeaderMap,
        rq: &Rq<'_>,
        return_to: &str,
        fresh: Option<std::time::Duration>,
    ) -> Response<Body> {
        if !self.login.is_configured() {
            return self.page(&Page::new(PageKind::NoIdentityProvider), rq);
        }
        let jar = cookies::request_cookies(headers);
        if let Some(rounds) = login_loop::is_looping(&jar, &self.config.login, crate::clock::now())
        {
            audit::login_loop(rq.ctx, rounds);
            return self.page(&Page::new(PageKind::LoginLoop), rq);
        }
        let ctx = LoginCtx {
            request: rq.ctx,
            request_cookies: &jar,
            transactions: &self.transactions,
            sessions: &self.sessions,
        };
        match self.login.start(ctx, return_to, fresh).await {
            Ok(mut resp) => {
                audit::login_started(rq.ctx, self.login.name());
                for c in self.transactions.evict_if_crowded(&jar) {
                    append_set_cookie(&mut resp, &c);
                }
                resp
            }
            Err(page) => {
                metrics::login_failed(page.kind.code());
                audit::login_failed(rq.ctx, page.kind.code());
                self.page(&page, rq)
            }
        }
    }

    /// A form a person submitted after their session ended: kept in the
    /// browser while they sign in again (`crate::resubmit`), the login
    /// started at once, as fresh as the form's own path asks, and coming
    /// back to the page that sends the form again. A form that cannot be
    /// kept gets a page that says so.
    async fn keep_form(
        &self,
        req: Request<Incoming>,
        rq: &Rq<'_>,
        return_to: &str,
        form: policy::FormPost,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        // Only a target the login could return to: anything
        // `safe_return_path` rewrote is not sent again.
        let same = parts
            .uri
            .path_and_query()
            .map(http::uri::PathAndQuery::as_str)
            == Some(return_to);
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let kept = if same {
            crate::resubmit::keep(form, &content_type, body).await
        } else {
            Err(crate::resubmit::NotKept::Unreturnable)
        };
        let form = match kept {
            Ok(f) => f,
            Err(why) => {
                audit::form_not_kept(rq.ctx, &why.to_string());
                return self.page(
                    &crate::resubmit::not_kept_page(&respond::login_url(return_to)),
                    rq,
                );
            }
        };
        let fresh = policy::fresh::required_for_return(&self.config.access, return_to);
        let login = self
            .start_login_for(&parts.headers, rq, crate::RESUBMIT_PATH, fresh)
            .await;
        // No IdP, a login loop, an IdP that is down: that page, and the
        // form is not kept.
        let Some(idp_url) = (login.status() == StatusCode::FOUND)
            .then(|| login.headers().get(header::LOCATION))
            .flatten()
            .and_then(|v| v.to_str().ok())
        else {
            return login;
        };
        audit::form_kept(rq.ctx, form.fields.len());
        let mut resp = self.page(&crate::resubmit::keep_page(return_to, &form, idp_url), rq);
        for c in login.headers().get_all(header::SET_COOKIE) {
            resp.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        resp
    }

    async fn own_endpoint(
        &self,
        rest: &str,
        req: Request<Incoming>,
        rq: &Rq<'_>,
    ) -> Response<Body> {
        match rest {
            "health" => json_response(StatusCode::OK, r#"{"status":"ok"}"#),
            "resubmit" if req.method() == Method::GET => {
                self.page(&crate::resubmit::resubmit_page(), rq)
            }
            "jwks.json" => match &self.assertions {
                Some(a) => {
                    let mut resp = json_response(StatusCode::OK, "");
                    *resp.body_mut() = crate::full_body(bytes::Bytes::from(a.jwks()));
                    // Apps may cache the set; a new key is published
                    // `assertion.publish_ahead` (10m by default) before it
                    // signs.
                    resp.headers_mut().insert(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("public, max-age=300"),
                    );
                    resp
                }
                None => self.page(&Page::new(PageKind::NotFound), rq),
            },
            "auth" => crate::forward_auth::answer(
                &self.config,
                &self.own_headers,
                &self.sessions,
                &req,
                rq.ctx,
                rq.json,
            ),
            "metrics" if metrics::allowed(&self.config.metrics, rq.ctx.client_ip) => {
                metrics::response()
            }
            "login" => {
                let rd = query_param(req.uri().query(), "rd");
                let return_to = safe_return_path(rd.as_deref(), &self.config.public_origin());
                self.start_login(req.headers(), rq, &return_to).await
            }
            "logout" if req.method() == Method::GET || req.method() == Method::POST => {
                self.logout(&req, rq)
            }
            r if r.starts_with("scim/v2/") && self.config.scim.is_some() => match &self.config.scim
            {
                Some(scim) => {
                    let rest = &r[crate::scim::PATH.len() + 1..];
                    crate::scim::answer(
                        &self.config,
                        scim,
                        self.sessions.revocations(),
                        rest,
                        req,
                        rq.ctx,
                    )
                    .await
                }
                None => self.page(&Page::new(PageKind::NotFound), rq),
            },
            // Where the IdP sends the browser after its own logout.
            "signed-out" => signed_out_page(&self.config, rq.ctx.request_id),
            _ => {
                let owned = {
                    let jar = cookies::request_cookies(req.headers());
                    // The flavour parses what it needs; cookies are passed
                    // as owned strings to keep the request movable.
                    jar.iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect::<Vec<_>>()
                };
                let view: Vec<(&str, &str)> = owned
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let ctx = LoginCtx {
                    request: rq.ctx,
                    request_cookies: &view,
                    transactions: &self.transactions,
                    sessions: &self.sessions,
                };
                match self.login.endpoint(rest, ctx, req).await {
                    Some(EndpointOutcome::Respond(resp)) => resp,
                    Some(EndpointOutcome::EndSession(mut resp)) => {
                        for c in self.sessions.clear(&view) {
                            append_set_cookie(&mut resp, &c);
                        }
                        resp
                    }
                    Some(EndpointOutcome::Refused(page) | EndpointOutcome::Show(page)) => {
                        self.page(&page, rq)
                    }
                    Some(EndpointOutcome::LoggedIn(done)) => self.complete_login(&done, &view, rq),
                    Some(EndpointOutcome::Failed {
                        page,
                        reason,
                        set_cookies,
                    }) => {
                        metrics::login_failed(page.kind.code());
                        audit::login_failed(rq.ctx, &reason);
                        let mut resp = self.page(&page, rq);
                        for c in &set_cookies {
                            append_set_cookie(&mut resp, c);
                        }
                        resp
                    }
                    None => self.page(&Page::new(PageKind::NotFound), rq),
                }
            }
        }
    }

    /// The role, the access rules and a fresh sign-in where the page needs
    /// one; then the session cookie, and back where the user was.
    fn complete_login(
        &self,
        done: &Completed,
        jar: &[(&str, &str)],
        rq: &Rq<'_>,
    ) -> Response<Body> {
        let idp_name = match done.idp {
            crate::identity::IdpKind::Oidc => "oidc",
            crate::identity::IdpKind::Saml => "saml",
        };
        // A refusal still clears the login transaction (`set_cookies`).
        let refuse = |page: &Page| {
            let mut resp = self.page(page, rq);
            for c in &done.set_cookies {
                append_set_cookie(&mut resp, c);
            }
            resp
        };
        if !done.identity.is_header_safe() {
            // Fail closed: a value that cannot be a header would otherwise be
            // left out silently, and the upstream would see less than we know.
            audit::login_failed(rq.ctx, "identity from the IdP contains control characters");
            return refuse(&Page::new(PageKind::LoginFailed));
        }
        // The role, chosen once here and kept in the session: the access
        // rules below may require one.
        let mut identity = done.identity.clone();
        match policy::roles::choose(&self.config.roles, &identity, done.idp) {
            policy::roles::Chosen::Off => {}
            policy::roles::Chosen::Role(r) => identity.role = Some(r),
            policy::roles::Chosen::NoMatch => {
                metrics::login_failed(PageKind::NoRole.code());
                audit::login_failed(
                    rq.ctx,
                    "no entry of roles matches the user and default_role is not set; operator fix: give the user a group, address or domain a role names, or set default_role",
                );
                return refuse(&Page::new(PageKind::NoRole));
            }
        }
        // The rules of the page the login returns to: a rule may open a
        // path to users the default rule leaves out.
        let back_to = done.return_to.split(['?', '#']).next().unwrap_or("/");
        let rules = policy::rules::applicable(&self.config.access, &http::Method::GET, back_to);
        if let Err(denied) = policy::authorize(
            &self.config,
            &identity,
            rq.ctx.client_ip,
            false,
            rules.as_deref(),
        ) {
            audit::access_denied(rq.ctx, Some(&identity.user), &denied);
            return refuse(&respond::forbidden(&denied));
        }
        // The page needs a recent sign-in: what the IdP reports now is
        // checked, so an IdP that ignored the request for one (or repeats
        // an old sign-in) cannot satisfy the rule. No session is minted.
        if let Some(max_age) = rules.as_deref().and_then(policy::rules::max_auth_age)
            && !policy::fresh::signed_in_within(
                done.refs.idp_auth_time,
                max_age,
                self.config.idp_clock_skew(),
                crate::clock::now(),
            )
        {
            let reason = match done.refs.idp_auth_time {
                Some(_) => format!(
                    "the IdP reported a sign-in older than max_auth_age ({} s); operator fix: the IdP must honour prompt=login/max_age (OIDC) or ForceAuthn (SAML) for this application",
                    max_age.as_secs()
                ),
                None => format!(
                    "the IdP reported no sign-in time, so max_auth_age ({} s) cannot be met; operator fix: the IdP must send auth_time (OIDC) or AuthnInstant (SAML)",
                    max_age.as_secs()
                ),
            };
            tracing::warn!(request_id = rq.ctx.request_id, user = %identity.user, "{reason}");
            metrics::login_failed(PageKind::FreshSignInNotConfirmed.code());
            audit::login_failed(rq.ctx, &reason);
            return refuse(&Page::new(PageKind::FreshSignInNotConfirmed));
        }
        // `session.groups`: only what the app needs goes into the cookie;
        // the groups the access rules name always stay.
        let groups_dropped = self.config.session.groups.as_ref().map_or(0, |f| {
            f.retain(&mut identity.groups, |g| {
                self.config.access.named_groups().any(|n| n == g)
            })
        });
        let set = match self
            .sessions
            .mint_login(&identity, done.idp, &done.refs, jar)
        {
            Ok(set) => set,
            Err(e) => {
                metrics::login_failed(PageKind::TooLarge.code());
                audit::login_failed(rq.ctx, &e.to_string());
                return refuse(&Page::new(PageKind::TooLarge));
            }
        };
        metrics::login_succeeded(idp_name);
        audit::login_succeeded(
            rq.ctx,
            &identity.user,
            idp_name,
            identity.groups.len(),
            groups_dropped,
            identity.role.as_deref(),
        );
        let rounds = login_loop::count(jar, &self.config.login, crate::clock::now());
        let mut resp = redirect(&done.return_to);
        let hint = done
            .id_token_hint
            .as_deref()
            .map(|t| self.sessions.logout_hint_cookie(t));
        for c in done.set_cookies.iter().chain(set.iter()).chain(hint.iter()) {
            append_set_cookie(&mut resp, c);
        }
        append_set_cookie(&mut resp, &rounds.set_cookie(self.sessions.attrs()));
        resp
    }

    fn logout(&self, req: &Request<Incoming>, rq: &Rq<'_>) -> Response<Body> {
        let jar = cookies::request_cookies(req.headers());
        let session = match self.sessions.verify(&jar) {
            Some(Ok(v)) => Some(v.claims),
            _ => None,
        };
        audit::logout(rq.ctx, session.as_ref().map(|c| c.user.as_str()));
        let rd = query_param(req.uri().query(), "rd");
        // Without `rd`, the IdP's answer ends on the signed-out page.
        let back = rd
            .as_deref()
            .map(|r| safe_return_path(Some(r), &self.config.public_origin()))
            .unwrap_or_default();
        let mut resp = match (
            &rd,
            self.login
                .logout_redirect(&back, session.as_deref(), self.sessions.logout_hint(&jar)),
        ) {
            (_, Some(idp_url)) => redirect(&idp_url),
            (Some(_), None) => redirect(&safe_return_path(
                rd.as_deref(),
                &self.config.public_origin(),
            )),
            (None, None) => signed_out_page(&self.config, rq.ctx.request_id),
        };
        for c in self.sessions.clear(&jar) {
            append_set_cookie(&mut resp, &c);
        }
        resp
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        rq: &Rq<'_>,
        identity: Option<&Identity>,
        strip_authorization: bool,
        assertion: Option<(&http::HeaderName, &HeaderValue)>,
        session: Option<&crate::proxy::SessionBound>,
    ) -> Response<Body> {
        let fwd = Forward {
            assertion,
            session,
            ctx: rq.ctx,
            identity,
            strip_authorization,
        };
        let started = std::time::Instant::now();
        match self.upstream.forward(&self.config, req, fwd).await {
            Ok(mut resp) => {
                metrics::upstream_answered(started.elapsed());
                resp.extensions_mut().insert(metrics::FromUpstream);
                resp
            }
            Err(ProxyError::Timeout) => {
                metrics::upstream_failed("timeout");
                tracing::warn!(request_id = rq.ctx.request_id, "upstream timed out");
                self.page(&Page::new(PageKind::GatewayTimeout), rq)
            }
            Err(ProxyError::Unreachable) => {
                metrics::upstream_failed("unreachable");
                tracing::warn!(request_id = rq.ctx.request_id, "upstream unreachable");
                self.page(&Page::new(PageKind::BadGateway), rq)
            }
            Err(ProxyError::BadRequest(why)) => {
                metrics::upstream_failed("bad_request");
                tracing::info!(request_id = rq.ctx.request_id, why, "bad request");
                self.page(&Page::new(PageKind::BadRequest), rq)
            }
        }
    }

    fn page(&self, page: &Page, rq: &Rq<'_>) -> Response<Body> {
        page.render(&self.config.pages, rq.ctx.request_id, rq.json)
    }
}

/// Per-request facts computed once.
struct Rq<'a> {
    ctx: RequestCtx<'a>,
    /// The client asked for JSON answers rather than pages.
    json: bool,
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn json_response(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(crate::full_body(bytes::Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn signed_out_page(config: &Config, request_id: &str) -> Response<Body> {
    Page::new(PageKind::SignedOut).render(&config.pages, request_id, false)
}
