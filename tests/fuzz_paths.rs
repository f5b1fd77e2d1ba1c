//! Property tests of path handling: the normal form, passthrough rule
//! matching, and the differential test of issue 9: whatever the gate lets
//! through anonymously is read under a passthrough rule by every kind of
//! router behind it, on exactly what is forwarded.
//!
//! `PROPTEST_CASES=100000 cargo test --test fuzz_paths` runs longer.

mod fuzz_support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, LazyLock};

use fuzz_support::{config, path};
use http::{HeaderValue, Method, Request};
use percent_encoding::percent_decode_str;
use portcullis::config::{Config, HeaderFamily};
use portcullis::gate::original::Original;
use portcullis::gate::{Asked, Decision, Via, decide};
use portcullis::policy::path::{is_canonical, normalise};
use portcullis::request_ctx::RequestCtx;
use portcullis::session::{KeyRing, Sessions};
use proptest::prelude::*;

const RULES: &str = "passthrough:\n  paths:\n    - prefix: /public/\n    - exact: /healthz\n    - glob: /assets/**/*.css\n    - prefix: /hooks/\n      methods: [POST]\n";

struct Gate {
    config: Config,
    sessions: Sessions,
}

fn gate(extra: &str) -> Gate {
    let config = portcullis::config::from_yaml_str(&format!(
        "domain: app.test\nupstream:\n  url: http://127.0.0.1:1\n{RULES}{extra}"
    ))
    .expect("the test configuration is valid");
    let sessions = Sessions::new(&config, Arc::new(KeyRing::generate()));
    Gate { config, sessions }
}

/// Built once: the properties run hundreds of requests against them.
static PROXY: LazyLock<Gate> = LazyLock::new(|| gate(""));
static FORWARDED: LazyLock<Gate> = LazyLock::new(|| gate("forward_auth:\n  headers: forwarded\n"));

fn ctx() -> RequestCtx<'static> {
    RequestCtx {
        request_id: "fuzz",
        // A client connecting directly: no proxy vouches for it.
        peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        peer_trusted: false,
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    }
}

/// The rules of `RULES`, written again from their meaning, applied to what
/// a router read.
#[allow(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "the gate's globs are case-sensitive, so the model is too"
)]
fn allowed_by_rules(method: &Method, read: &str) -> bool {
    read.starts_with("/public/")
        || read == "/healthz"
        || (read.starts_with("/assets/") && read.ends_with(".css"))
        || (read.starts_with("/hooks/") && method == Method::POST)
}

/// A router that resolves dot segments, reads `\` as `/` and drops
/// `;params`, as Tomcat, Spring, IIS and most frameworks do.
fn resolve(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let unified = p.replace('\\', "/");
    for seg in unified.split('/') {
        match seg.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let last = unified.rsplit('/').next().unwrap_or("");
    let trailing = matches!(last.split(';').next().unwrap_or(""), "" | "." | "..");
    let mut s = format!("/{}", out.join("/"));
    if trailing && s.len() > 1 {
        s.push('/');
    }
    s
}

fn decode(p: &str) -> String {
    percent_decode_str(p).decode_utf8_lossy().into_owned()
}

/// Every way a router behind Portcullis may read a raw path: byte for byte
/// (raw prefix routers), decoded once or twice, resolved before or after
/// decoding.
fn readings(raw: &str) -> Vec<(&'static str, String)> {
    vec![
        ("raw", raw.to_string()),
        ("resolved", resolve(raw)),
        ("decoded", decode(raw)),
        ("decoded, resolved", resolve(&decode(raw))),
        ("resolved, decoded", decode(&resolve(raw))),
        ("decoded twice, resolved", resolve(&decode(&decode(raw)))),
    ]
}

/// The request target forms a client may send for `path`.
fn target() -> impl Strategy<Value = String> {
    (
        path(),
        prop_oneof![Just(""), Just("?next=/admin"), Just("?../admin"), Just("?")],
        prop_oneof![Just(""), Just("http://app.test"), Just("http://evil.test")],
    )
        .prop_map(|(p, q, abs)| format!("{abs}{p}{q}"))
}

fn method() -> impl Strategy<Value = Method> {
    proptest::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::HEAD,
        Method::OPTIONS,
    ])
}

/// What the gate decided about `forwarded` (the raw path the app will
/// receive), judged against every router's reading.
fn judge(decision: &Decision, method: &Method, forwarded: &str) -> Result<(), TestCaseError> {
    match decision {
        Decision::Allow(a) if a.via == Via::Passthrough => {
            prop_assert!(a.identity.is_none());
            for (how, read) in readings(forwarded) {
                prop_assert!(
                    allowed_by_rules(method, &read),
                    "anonymous {method} {forwarded:?}, read {how} as {read:?}, is under no passthrough rule"
                );
                prop_assert!(
                    !read.starts_with("/.portcullis/"),
                    "anonymous {forwarded:?}, read {how} as {read:?}, is Portcullis' own"
                );
            }
        }
        Decision::Own(rest) => {
            for (how, read) in readings(forwarded) {
                prop_assert!(
                    read.starts_with("/.portcullis/"),
                    "own endpoint {rest:?} from {forwarded:?}, read {how} as {read:?}, is the app's"
                );
            }
        }
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// The normal form has no dot segment, `//`, `\` or `;`, is its own
    /// normal form, and reads to a decoding router as the raw path does.
    #[test]
    fn the_normal_form_is_a_fixed_point_without_dot_segments(raw in path()) {
        if let Some(n) = normalise(&raw) {
            prop_assert!(n.starts_with('/'), "{raw:?} -> {n:?}");
            prop_assert!(!n.contains("//") && !n.contains('\\') && !n.contains(';'), "{raw:?} -> {n:?}");
            prop_assert!(
                n.split('/').all(|s| s != "." && s != ".."),
                "{raw:?} -> {n:?} keeps a dot segment"
            );
            prop_assert_eq!(normalise(&n), Some(n.clone()), "not idempotent for {:?}", raw);
            prop_assert!(is_canonical(&n));
            prop_assert_eq!(
                resolve(&decode(&raw)),
                resolve(&decode(&n)),
                "the rules would match another path than a decoding router reads, for {:?}",
                raw
            );
        } else {
            prop_assert!(!is_canonical(&raw));
        }
    }

    /// Arbitrary text, not only the hostile pieces: no panic, and a
    /// canonical path is what normalising it gives.
    #[test]
    fn normalising_any_text_never_panics(raw in any::<String>()) {
        let n = normalise(&raw);
        prop_assert_eq!(is_canonical(&raw), n.as_deref() == Some(raw.as_str()));
    }

    /// Proxy mode: whatever is let in anonymously is forwarded as a raw
    /// path that every router reads under a passthrough rule, and an own
    /// endpoint is one for every router.
    #[test]
    fn proxy_passthrough_is_passthrough_for_every_router(t in target(), m in method()) {
        let g = &*PROXY;
        let Ok(req) = Request::builder().method(m.clone()).uri(t.as_str()).header("host", "app.test").body(()) else {
            // hyper answers 400 to a target `http` cannot parse.
            return Ok(());
        };
        let d = decide(&g.config, &g.sessions, &Asked::proxied(&req, ctx()));
        judge(&d, &m, req.uri().path())?;
    }

    /// Forward-auth (both header families): the same, on the URI the front
    /// proxy describes and then forwards itself.
    #[test]
    fn forward_auth_passthrough_is_passthrough_for_every_router(
        t in target(),
        m in method(),
        forwarded_family in any::<bool>(),
    ) {
        let (family, uri, method_header) = if forwarded_family {
            (HeaderFamily::Forwarded, "x-forwarded-uri", "x-forwarded-method")
        } else {
            (HeaderFamily::Nginx, "x-original-uri", "x-original-method")
        };
        let g = if forwarded_family { &*FORWARDED } else { &*PROXY };
        prop_assert_eq!(g.config.forward_auth_headers, family);
        let Ok(v) = HeaderValue::from_str(&t) else { return Ok(()) };
        let mut req = Request::builder().method("GET").uri("/.portcullis/auth").body(()).unwrap();
        req.headers_mut().insert(uri, v);
        req.headers_mut().insert(method_header, HeaderValue::from_str(m.as_str()).unwrap());
        let orig = Original::read(req.headers(), family);
        let asked = Asked::forward_auth(&req, family, &orig, ctx());
        let d = decide(&g.config, &g.sessions, &asked);
        match &orig {
            Ok(o) => {
                prop_assert!(!matches!(d, Decision::Own(_)), "forward-auth never serves own endpoints");
                let pq = o.path_and_query.as_str();
                let forwarded = pq.split_once('?').map_or(pq, |(p, _)| p);
                judge(&d, &m, forwarded)?;
            }
            Err(_) => prop_assert!(matches!(d, Decision::Refuse(_)), "{t:?}: {d:?}"),
        }
    }

    /// The other direction: plain paths under a rule are let in, plain
    /// paths outside every rule need a login (a gate refusing everything
    /// would pass the properties above).
    #[test]
    fn plain_paths_are_decided_by_the_rules(
        segs in proptest::collection::vec("[a-z0-9][a-z0-9_-]{0,8}", 1..4),
        top in proptest::sample::select(vec!["public", "admin", "hooks", "assets", "api"]),
        m in method(),
    ) {
        let g = &*PROXY;
        let p = format!("/{top}/{}", segs.join("/"));
        let req = Request::builder().method(m.clone()).uri(p.as_str()).body(()).unwrap();
        let d = decide(&g.config, &g.sessions, &Asked::proxied(&req, ctx()));
        let passthrough = matches!(&d, Decision::Allow(a) if a.via == Via::Passthrough);
        prop_assert_eq!(passthrough, allowed_by_rules(&m, &p), "{} {}: {:?}", m, p, d);
        if !passthrough {
            prop_assert!(matches!(d, Decision::NeedLogin(_)), "{m} {p}: {d:?}");
        }
    }
}
