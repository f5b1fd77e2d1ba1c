//! Micro-benchmarks of the per-request work: session cookie verification
//! (cold, first sight of a cookie, repeated), session minting, path
//! normalisation, and the whole decision for one request (spoofed headers
//! out, the gate's decision, request rewritten for the upstream)
//! on a realistic browser request behind nginx, with no revocations and
//! with 100,000.
//!
//! `cargo bench --bench gate`; results and how to read them in
//! docs/performance.md.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use portcullis::config::Config;
use portcullis::gate::{self, Asked, Decision};
use portcullis::identity::{Identity, IdpKind};
use portcullis::policy;
use portcullis::proxy::headers::StripRules;
use portcullis::proxy::{Forward, UpstreamClient};
use portcullis::request_ctx::RequestCtx;
use portcullis::revocation::{Entry, Revocations, Target, entry::Source};
use portcullis::session::{KeyRing, Sessions};

const TOKEN: &str = "monitoring-token-0123456789abcdef";

fn config_with(extra: &str) -> Config {
    let token_hash = hex::encode(portcullis::policy::tokens::sha256(TOKEN));
    portcullis::config::from_yaml_str(&format!(
        "domain: app.example.com
upstream:
  url: http://127.0.0.1:9
passthrough:
  paths:
    - exact: /healthz
    - prefix: /static/
    - glob: /assets/**/*.css
  tokens:
    - name: prometheus
      sha256: {token_hash}
access:
  allowed_groups: [staff, admins]
headers:
  extra:
    department: X-Department
{extra}"
    ))
    .expect("bench config is valid")
}

fn alice() -> Identity {
    Identity {
        subject: "248289761001".into(),
        user: "alice".into(),
        email: Some("alice@example.com".into()),
        name: Some("Alice Example".into()),
        preferred_username: Some("alice".into()),
        groups: vec![
            "staff".into(),
            "admins".into(),
            "grafana-editors".into(),
            "vpn-users".into(),
        ],
        extra: [("department".to_string(), "Engineering".to_string())].into(),
        role: None,
    }
}

struct Fixture {
    config: Config,
    sessions: Sessions,
    upstream: UpstreamClient,
    own: StripRules,
    /// `name=value` of a freshly minted session cookie.
    cookie: String,
    token: String,
    /// Set when the fixture's config enables `assertion`.
    assertions: Option<portcullis::assertion::Assertions>,
    /// Keeps the assertion key file alive.
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    fixture_with("")
}

fn fixture_with(extra: &str) -> Fixture {
    fixture_revoking(extra, Arc::new(Revocations::in_memory()))
}

fn fixture_revoking(extra: &str, revocations: Arc<Revocations>) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let extra = extra.replace(
        "ASSERTION_KEYS",
        &dir.path().join("a.json").display().to_string(),
    );
    let config = config_with(&extra);
    let assertions = config.assertion.clone().map(|a| {
        portcullis::assertion::Assertions::new(a, &config.public_origin()).expect("assertion keys")
    });
    let sessions =
        Sessions::new(&config, Arc::new(KeyRing::generate())).with_revocations(revocations);
    let set = sessions
        .mint(&alice(), IdpKind::Oidc, &[])
        .expect("session mints");
    let cookie = set[0].split(';').next().unwrap_or_default().to_string();
    let token = cookie
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let upstream = UpstreamClient::new(&config).expect("upstream client builds");
    let own = StripRules::new(&config);
    Fixture {
        config,
        sessions,
        upstream,
        own,
        cookie,
        token,
        assertions,
        _dir: dir,
    }
}

/// What Chromium sends for a page load, as nginx passes it on (plus one
/// spoofed identity header, which must go).
fn browser_headers(cookie: &str, path_kind: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |n: &'static str, v: &str| {
        h.append(
            HeaderName::from_static(n),
            HeaderValue::from_str(v).expect("valid header"),
        );
    };
    put("host", "app.example.com");
    put("x-real-ip", "203.0.113.7");
    put("x-forwarded-for", "203.0.113.7");
    put("x-forwarded-proto", "https");
    put("connection", "close");
    put(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    );
    put(
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    );
    put("accept-language", "en-GB,en;q=0.9,de;q=0.8");
    put("accept-encoding", "gzip, deflate, br, zstd");
    put("sec-fetch-site", "same-origin");
    put("sec-fetch-mode", "navigate");
    put("sec-fetch-dest", "document");
    put("sec-fetch-user", "?1");
    put("upgrade-insecure-requests", "1");
    put("referer", "https://app.example.com/d/overview?orgId=1");
    put("x_forwarded_user", "admin");
    match path_kind {
        "token" => put("authorization", &format!("Bearer {TOKEN}")),
        _ => put(
            "cookie",
            &format!(
                "_ga=GA1.2.1234567890.1700000000; theme=dark; {cookie}; grafana_session_expiry=1700003600"
            ),
        ),
    }
    h
}

fn request(headers: &HeaderMap, path: &str) -> Request<()> {
    let mut req = Request::new(());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = path.parse().expect("valid path");
    *req.headers_mut() = headers.clone();
    req
}

/// The work `App::handle` does for a request before the upstream is called,
/// in the same order, with the library's own functions.
fn decide(f: &Fixture, mut req: Request<()>, peer: IpAddr) -> Option<Request<()>> {
    let request_id = portcullis::random_id(8);
    f.own.strip_spoofed(req.headers_mut());
    let ctx = RequestCtx::read(
        &request_id,
        peer,
        req.headers(),
        &f.config.access.trusted_proxies,
    );
    let _json = policy::wants_json(req.headers());
    let Decision::Allow(allow) = gate::decide(&f.config, &f.sessions, &Asked::proxied(&req, ctx))
    else {
        return None;
    };
    let assertion = match (&f.assertions, &allow.identity, allow.source) {
        (Some(a), Some(id), Some(source)) => a
            .for_identity(id, source, portcullis::session::now())
            .ok()
            .map(|v| (a.header(), v)),
        _ => None,
    };
    let session = allow.session.map(|claims| {
        let ends_at = f.sessions.ends_at(&claims);
        portcullis::proxy::SessionBound::new(claims, ends_at, f.sessions.revocations().clone())
    });
    let fwd = Forward {
        assertion: assertion.as_ref().map(|(n, v)| (*n, v)),
        ctx,
        identity: allow.identity.as_ref(),
        strip_authorization: allow.token_in_authorization,
        session: session.as_ref(),
    };
    f.upstream
        .rewrite_request(&f.config, &mut req, &fwd, None)
        .ok()?;
    Some(req)
}

fn sessions(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("session");
    g.bench_function("verify_cold_full_check", |b| {
        b.iter(|| f.sessions.decode(black_box(&f.token)));
    });
    // A cookie never seen before: full check, then remembered (a steady
    // stream of new cookies, so the cache is full and evicting).
    let now = portcullis::session::now();
    let base = f.sessions.claims_for(&alice(), IdpKind::Oidc, now);
    let counter = AtomicU64::new(0);
    g.bench_function("verify_first_sight", |b| {
        b.iter_batched(
            || {
                let mut claims = base.clone();
                claims.sub = format!("user-{}", counter.fetch_add(1, Ordering::Relaxed));
                f.sessions.encode(&claims).unwrap_or_default()
            },
            |token| f.sessions.verify_token(black_box(&token), &[], now).is_ok(),
            BatchSize::SmallInput,
        );
    });
    let jar = [(f.sessions.cookie_name(), f.token.as_str())];
    g.bench_function("verify_repeated", |b| {
        b.iter(|| f.sessions.verify(black_box(&jar)).map(|r| r.is_ok()));
    });
    // What the assertion cache saves: one signature (ES256) per request.
    let asserted = fixture_with("assertion:\n  enabled: true\n  key_file: ASSERTION_KEYS\n");
    if let Some(a) = &asserted.assertions {
        let id = alice();
        let source = portcullis::assertion::Source::Session {
            idp: IdpKind::Oidc,
            auth_time: now,
            exp: now + 3600,
        };
        g.bench_function("assertion_sign_uncached", |b| {
            b.iter(|| a.mint(black_box(&id), source, now).is_ok());
        });
    }
    g.bench_function("mint", |b| {
        let id = alice();
        b.iter(|| f.sessions.mint(black_box(&id), IdpKind::Oidc, &[]));
    });
    g.finish();
}

fn decision(c: &mut Criterion) {
    let cached = fixture();
    // The same, with the verified-cookie cache off: every request runs the
    // full signature check, as before the cache existed.
    let uncached = fixture_with("session:\n  verify_cache_size: 0\n");
    // With the signed identity assertion (cached per identity).
    let asserted = fixture_with("assertion:\n  enabled: true\n  key_file: ASSERTION_KEYS\n");
    let peer: IpAddr = "127.0.0.1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let mut g = c.benchmark_group("decision");
    for (name, path, kind, f) in [
        (
            "session",
            "/d/overview?orgId=1&refresh=30s",
            "session",
            &cached,
        ),
        (
            "session_with_assertion",
            "/d/overview?orgId=1&refresh=30s",
            "session",
            &asserted,
        ),
        (
            "session_cache_off",
            "/d/overview?orgId=1&refresh=30s",
            "session",
            &uncached,
        ),
        (
            "passthrough",
            "/static/js/app.4f2a9c.js",
            "session",
            &cached,
        ),
        ("token", "/api/metrics", "token", &cached),
    ] {
        let headers = browser_headers(&f.cookie, kind);
        // Sanity: the decision forwards, with identity where expected.
        let out = decide(f, request(&headers, path), peer);
        assert!(out.is_some(), "{name}: request is forwarded");
        g.bench_function(name, |b| {
            b.iter_batched(
                || request(&headers, path),
                |req| decide(f, req, peer).is_some(),
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

/// 100,000 revocations in force, none of them alice's: 50,000 sessions,
/// 25,000 users, 25,000 subjects, and an "everyone before" from an hour ago.
fn long_list() -> Arc<Revocations> {
    let list = Revocations::in_memory();
    let now = portcullis::session::sid::now_ms();
    let entry = |i: usize, target: Target| Entry {
        target,
        at_ms: now - 1000 * 3600 + i as u64,
        source: Source::Cli,
        by: "bench".into(),
    };
    let mut entries: Vec<Entry> = (0..50_000)
        .map(|i| {
            entry(
                i,
                Target::Session(portcullis::session::sid::new(now - i as u64)),
            )
        })
        .collect();
    entries.extend((0..25_000).map(|i| entry(i, Target::User(format!("user-{i}")))));
    entries.extend((0..24_999).map(|i| entry(i, Target::Subject(format!("sub-{i}")))));
    entries.push(entry(0, Target::All));
    let added = list.add_many(&entries).unwrap_or(0);
    assert_eq!(added, 100_000);
    Arc::new(list)
}

/// The whole decision for a session request with no revocations and with
/// 100,000: side by side, the cost of the per-request check.
fn revocation(c: &mut Criterion) {
    let none = fixture();
    let long = fixture_revoking("", long_list());
    let peer: IpAddr = "127.0.0.1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let path = "/d/overview?orgId=1&refresh=30s";
    let mut g = c.benchmark_group("revocation");
    for (name, f) in [("decision_none", &none), ("decision_100k", &long)] {
        let headers = browser_headers(&f.cookie, "session");
        assert!(
            decide(f, request(&headers, path), peer).is_some(),
            "{name}: forwarded"
        );
        g.bench_function(name, |b| {
            b.iter_batched(
                || request(&headers, path),
                |req| decide(f, req, peer).is_some(),
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

fn paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("path");
    for (name, p) in [
        ("plain", "/d/overview/panel/12"),
        (
            "dots_and_escapes",
            "/static/../api/%7Euser/./x;jsessionid=1//y",
        ),
    ] {
        g.bench_function(name, |b| b.iter(|| policy::path::normalise(black_box(p))));
    }
    g.finish();
}

criterion_group!(benches, sessions, decision, revocation, paths);
criterion_main!(benches);
