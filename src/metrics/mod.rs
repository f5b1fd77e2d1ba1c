//! Prometheus metrics (OpenMetrics text) at `/.portcullis/metrics`, or on a
//! separate listen address that the public host never reaches.
//!
//! This file owns the registry and the recording functions: the counters
//! live for the whole process, across configuration reloads, in one
//! registry built on first use. The server records with the small
//! functions below; nothing here knows about HTTP requests beyond labels.
//! [`answer`] turns the registry into an HTTP answer and says who may read
//! it on the main listener; [`listener`] serves it on `metrics.listen`.
//! Label values are always from a short fixed list, never user input, so
//! the number of series stays bounded.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

mod answer;
mod listener;

pub use answer::{allowed, response};
pub use listener::serve_separate;

type Labels = Vec<(&'static str, &'static str)>;

struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    logins_ok: Family<Labels, Counter>,
    logins_failed: Family<Labels, Counter>,
    sessions: Family<Labels, Counter>,
    upstream_seconds: Histogram,
    upstream_errors: Family<Labels, Counter>,
    reloads: Family<Labels, Counter>,
    idp_refreshes: Family<Labels, Counter>,
    idp_last_ok: Gauge,
    idp_age: Gauge<f64, AtomicU64>,
    connections_open: Gauge,
    connections_max: Gauge,
    connections_timed_out: Family<Labels, Counter>,
    saml_verify_refused: Family<Labels, Counter>,
    saml_logouts: Family<Labels, Counter>,
    revocations: Family<Labels, Counter>,
    revoked_requests: Counter,
    revocation_list: Gauge,
    long_lived_closed: Family<Labels, Counter>,
    revocation_store_up: Gauge,
    /// Unix seconds of the last successful IdP metadata load; 0: never.
    idp_loaded_at: AtomicI64,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::with_prefix("portcullis");
        let requests = Family::<Labels, Counter>::default();
        r.register(
            "requests",
            "Requests by outcome: forwarded (with a session), passthrough, token, login_redirect, unauthorized (401), forbidden (403), server_error (5xx from Portcullis), own (Portcullis' endpoints), other",
            requests.clone(),
        );
        let logins_ok = Family::<Labels, Counter>::default();
        r.register(
            "logins_succeeded",
            "Completed logins by identity provider kind",
            logins_ok.clone(),
        );
        let logins_failed = Family::<Labels, Counter>::default();
        r.register(
            "logins_failed",
            "Failed logins by reason",
            logins_failed.clone(),
        );
        let sessions = Family::<Labels, Counter>::default();
        r.register(
            "session_verifications",
            "Session cookie verifications by result",
            sessions.clone(),
        );
        let upstream_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 13));
        r.register_with_unit(
            "upstream_response",
            "Time until the upstream's response headers arrived",
            Unit::Seconds,
            upstream_seconds.clone(),
        );
        let upstream_errors = Family::<Labels, Counter>::default();
        r.register(
            "upstream_errors",
            "Requests the upstream did not answer, by kind",
            upstream_errors.clone(),
        );
        let reloads = Family::<Labels, Counter>::default();
        r.register(
            "config_reloads",
            "Configuration reloads (SIGHUP) by result",
            reloads.clone(),
        );
        let idp_refreshes = Family::<Labels, Counter>::default();
        r.register(
            "idp_metadata_refreshes",
            "Identity provider metadata/discovery loads by result",
            idp_refreshes.clone(),
        );
        let idp_last_ok = Gauge::default();
        idp_last_ok.set(-1);
        r.register(
            "idp_metadata_last_refresh_success",
            "1 if the last IdP metadata/discovery load succeeded, 0 if it failed, -1 before the first",
            idp_last_ok.clone(),
        );
        let idp_age = Gauge::<f64, AtomicU64>::default();
        idp_age.set(-1.0);
        r.register_with_unit(
            "idp_metadata_age",
            "Age of the IdP metadata/discovery in use; -1 when none is loaded",
            Unit::Seconds,
            idp_age.clone(),
        );
        let connections_open = Gauge::default();
        r.register(
            "connections_open",
            "Client connections open now (WebSocket tunnels included)",
            connections_open.clone(),
        );
        let connections_max = Gauge::default();
        r.register(
            "connections_max",
            "Client connections served at once at most (connections.max, or fewer if the open-files limit is lower); more wait in the listen backlog",
            connections_max.clone(),
        );
        let connections_timed_out = Family::<Labels, Counter>::default();
        r.register(
            "connections_timed_out",
            "Client connections closed by Portcullis by reason: header_read_timeout (a request's headers took too long), idle_timeout (kept alive without a request)",
            connections_timed_out.clone(),
        );
        let saml_verify_refused = Family::<Labels, Counter>::default();
        r.register(
            "saml_verifications_refused",
            "SAML responses refused before signature verification because a budget was spent, by budget: transaction, client, global",
            saml_verify_refused.clone(),
        );
        let saml_logouts = Family::<Labels, Counter>::default();
        r.register(
            "saml_idp_logouts",
            "IdP-initiated SAML LogoutRequests by outcome: ended, no_session, ignored, refused",
            saml_logouts.clone(),
        );
        let revocations = Family::<Labels, Counter>::default();
        r.register(
            "revocations",
            "Revocations that came into force on this instance, by source: cli",
            revocations.clone(),
        );
        let revoked_requests = Counter::default();
        r.register(
            "revoked_requests",
            "Requests whose session cookie verified but was revoked",
            revoked_requests.clone(),
        );
        let revocation_list = Gauge::default();
        r.register(
            "revocation_list_size",
            "Revocation entries in force on this instance",
            revocation_list.clone(),
        );
        let long_lived_closed = Family::<Labels, Counter>::default();
        r.register(
            "long_lived_closed",
            "WebSockets and streaming responses closed because their session ended, by connection (websocket, stream) and reason (revoked, expired)",
            long_lived_closed.clone(),
        );
        let revocation_store_up = Gauge::default();
        r.register(
            "revocation_store_up",
            "1 while the shared revocation store (Redis, revocation.redis_url) is reachable, else 0 (always 0 without one)",
            revocation_store_up.clone(),
        );
        r.register(
            "build",
            "Portcullis version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry: r,
            requests,
            logins_ok,
            logins_failed,
            sessions,
            upstream_seconds,
            upstream_errors,
            reloads,
            idp_refreshes,
            idp_last_ok,
            idp_age,
            connections_open,
            connections_max,
            connections_timed_out,
            saml_verify_refused,
            saml_logouts,
            revocations,
            revoked_requests,
            revocation_list,
            long_lived_closed,
            revocation_store_up,
            idp_loaded_at: AtomicI64::new(0),
        }
    }
}

/// How a request ended, for `portcullis_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Forwarded,
    Passthrough,
    Token,
    LoginRedirect,
    Unauthorized,
    Forbidden,
    ServerError,
    Own,
    Other,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Passthrough => "passthrough",
            Outcome::Token => "token",
            Outcome::LoginRedirect => "login_redirect",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::ServerError => "server_error",
            Outcome::Own => "own",
            Outcome::Other => "other",
        }
    }
}

/// Marker put in the extensions of a response that came from the upstream,
/// so the request can be counted as forwarded (whatever its status).
#[derive(Debug, Clone, Copy)]
pub struct FromUpstream;

/// Which way the router sent a request, before anything answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Own,
    Passthrough,
    Token,
    Session,
}

/// Classifies a finished request: an upstream answer counts by route; an
/// answer Portcullis made itself counts by its status.
pub fn classify(route: RouteKind, status: http::StatusCode, from_upstream: bool) -> Outcome {
    if from_upstream {
        return match route {
            RouteKind::Passthrough => Outcome::Passthrough,
            RouteKind::Token => Outcome::Token,
            RouteKind::Session | RouteKind::Own => Outcome::Forwarded,
        };
    }
    match status.as_u16() {
        401 => Outcome::Unauthorized,
        403 => Outcome::Forbidden,
        500..=599 => Outcome::ServerError,
        302 | 303 if route == RouteKind::Session => Outcome::LoginRedirect,
        _ if route == RouteKind::Own => Outcome::Own,
        _ => Outcome::Other,
    }
}

pub fn request(outcome: Outcome) {
    METRICS
        .requests
        .get_or_create(&vec![("outcome", outcome.label())])
        .inc();
}

pub fn login_succeeded(idp: &'static str) {
    METRICS.logins_ok.get_or_create(&vec![("idp", idp)]).inc();
}

/// `reason` must be a fixed code (e.g. a page code), never free text.
pub fn login_failed(reason: &'static str) {
    METRICS
        .logins_failed
        .get_or_create(&vec![("reason", reason)])
        .inc();
}

/// `result`: `valid`, or the kind of refusal.
pub fn session_verified(result: &'static str) {
    METRICS
        .sessions
        .get_or_create(&vec![("result", result)])
        .inc();
}

/// `budget`: `transaction`, `client` or `global`.
pub fn saml_verify_refused(budget: &'static str) {
    METRICS
        .saml_verify_refused
        .get_or_create(&vec![("budget", budget)])
        .inc();
}

/// `source`: where a revocation came from (`cli`, …).
pub fn revocation_added(source: &'static str) {
    METRICS
        .revocations
        .get_or_create(&vec![("source", source)])
        .inc();
}

pub fn revoked_request() {
    METRICS.revoked_requests.inc();
}

pub fn revocation_list_size(entries: usize) {
    METRICS
        .revocation_list
        .set(i64::try_from(entries).unwrap_or(i64::MAX));
}

/// `connection`: `websocket` or `stream`; `reason`: `revoked` or `expired`.
pub fn long_lived_closed(connection: &'static str, reason: &'static str) {
    METRICS
        .long_lived_closed
        .get_or_create(&vec![("connection", connection), ("reason", reason)])
        .inc();
}

/// Whether the shared revocation store (Redis) is reachable.
pub fn revocation_store_up(up: bool) {
    METRICS.revocation_store_up.set(i64::from(up));
}

/// `outcome`: `ended`, `no_session`, `ignored` or `refused`.
pub fn saml_idp_logout(outcome: &'static str) {
    METRICS
        .saml_logouts
        .get_or_create(&vec![("outcome", outcome)])
        .inc();
}

pub fn upstream_answered(elapsed: Duration) {
    METRICS.upstream_seconds.observe(elapsed.as_secs_f64());
}

pub fn connection_opened() {
    METRICS.connections_open.inc();
}

pub fn connection_closed() {
    METRICS.connections_open.dec();
}

pub fn connections_max(max: usize) {
    METRICS
        .connections_max
        .set(i64::try_from(max).unwrap_or(i64::MAX));
}

/// `reason`: `header_read_timeout` or `idle_timeout`.
pub fn connection_timed_out(reason: &'static str) {
    METRICS
        .connections_timed_out
        .get_or_create(&vec![("reason", reason)])
        .inc();
}

/// `kind`: `timeout`, `unreachable`, `bad_request`.
pub fn upstream_failed(kind: &'static str) {
    METRICS
        .upstream_errors
        .get_or_create(&vec![("kind", kind)])
        .inc();
}

pub fn config_reloaded(ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    METRICS
        .reloads
        .get_or_create(&vec![("result", result)])
        .inc();
}

/// Hook for the IdP flavours: call after each metadata/discovery load.
/// `loaded_at` is when the document in use was fetched (unix seconds).
pub fn idp_metadata_refreshed(ok: bool, loaded_at: Option<u64>) {
    let m = &*METRICS;
    m.idp_last_ok.set(i64::from(ok));
    m.idp_refreshes
        .get_or_create(&vec![("result", if ok { "ok" } else { "failed" })])
        .inc();
    if let Some(t) = loaded_at {
        m.idp_loaded_at
            .store(i64::try_from(t).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

/// The exposition text.
pub fn render() -> String {
    let m = &*METRICS;
    let loaded = m.idp_loaded_at.load(Ordering::Relaxed);
    if loaded > 0 {
        let now = i64::try_from(crate::clock::now()).unwrap_or(i64::MAX);
        #[allow(
            clippy::cast_precision_loss,
            reason = "a count of seconds is exact in f64 below 2^53"
        )]
        m.idp_age.set(now.saturating_sub(loaded).max(0) as f64);
    }
    let mut out = String::new();
    if encode(&mut out, &m.registry).is_err() {
        // Writing to a String cannot fail; keep the answer well-formed.
        out = "# EOF\n".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn classification() {
        use RouteKind::*;
        assert_eq!(classify(Session, StatusCode::OK, true), Outcome::Forwarded);
        assert_eq!(
            classify(Session, StatusCode::UNAUTHORIZED, true),
            Outcome::Forwarded,
            "the app's own 401 is still a forwarded request"
        );
        assert_eq!(
            classify(Passthrough, StatusCode::OK, true),
            Outcome::Passthrough
        );
        assert_eq!(classify(Token, StatusCode::OK, true), Outcome::Token);
        assert_eq!(
            classify(Session, StatusCode::FOUND, false),
            Outcome::LoginRedirect
        );
        assert_eq!(
            classify(Session, StatusCode::UNAUTHORIZED, false),
            Outcome::Unauthorized
        );
        assert_eq!(
            classify(Token, StatusCode::FORBIDDEN, false),
            Outcome::Forbidden
        );
        assert_eq!(
            classify(Passthrough, StatusCode::BAD_GATEWAY, false),
            Outcome::ServerError
        );
        assert_eq!(classify(Own, StatusCode::OK, false), Outcome::Own);
        assert_eq!(classify(Own, StatusCode::FOUND, false), Outcome::Own);
    }

    #[test]
    fn exposition_has_the_families_and_ends_with_eof() {
        request(Outcome::Forwarded);
        session_verified("valid");
        upstream_answered(Duration::from_millis(12));
        let text = render();
        assert!(text.contains("portcullis_requests_total{outcome=\"forwarded\"}"));
        assert!(text.contains("# TYPE portcullis_upstream_response_seconds histogram"));
        assert!(text.contains("portcullis_idp_metadata_age_seconds -1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
