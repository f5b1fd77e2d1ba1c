//! Property tests of the other parsers a request meets before the app: the
//! `Cookie` header and the session chunk joiner, the return-to check, and
//! the forward-auth header family.
//!
//! `PROPTEST_CASES=100000 cargo test --test fuzz_request` runs longer.

mod fuzz_support;

use fuzz_support::{config, hostile, path};
use http::header::COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use percent_encoding::percent_decode_str;
use portcullis::config::HeaderFamily;
use portcullis::gate::original::{Original, OriginalError};
use portcullis::policy::return_to::safe_return_path;
use portcullis::session::cookies::{read_chunked, request_cookies, strip_own_cookies};
use proptest::prelude::*;

const SESSION: &str = "__Host-portcullis_session";
const ORIGIN: &str = "https://app.example.com";

/// Cookie names around the session's: the session and its chunks, their
/// unprefixed twins, near misses, internal cookies and the app's own.
fn cookie_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(SESSION.to_string()),
        6 => (0u8..10).prop_map(|i| format!("{SESSION}_{i}")),
        1 => Just("portcullis_session".to_string()),
        1 => Just("portcullis_session_0".to_string()),
        1 => Just(format!("{SESSION}_x")),
        1 => Just(format!("{SESSION}_01")),
        1 => Just(format!("{SESSION}2")),
        1 => Just(format!(" {SESSION}_1 ")),
        1 => Just("__Host-portcullis_txn_ab".to_string()),
        1 => Just("portcullis_loop".to_string()),
        2 => "[A-Za-z0-9_-]{1,12}",
    ]
}

/// The jar as a model: the session is the cookie of that name, else the
/// chunks `_0`, `_1`, … in order up to the first missing one (eight at
/// most); the first copy of a name counts.
fn model_session(jar: &[(String, String)]) -> Option<String> {
    let first = |n: &str| {
        jar.iter()
            .find(|(k, _)| k.trim() == n)
            .map(|(_, v)| v.clone())
    };
    if let Some(v) = first(SESSION) {
        return Some(v);
    }
    let mut out = String::new();
    for i in 0..8 {
        match first(&format!("{SESSION}_{i}")) {
            Some(v) => out.push_str(&v),
            None => break,
        }
    }
    (!out.is_empty()).then_some(out)
}

fn is_portcullis_cookie(name: &str) -> bool {
    let base = name.strip_prefix("__Host-").unwrap_or(name);
    base == "portcullis_session"
        || base
            .strip_prefix("portcullis_session_")
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        || base.starts_with("portcullis_")
}

/// Pieces of return-to values that lead elsewhere.
const RETURN_PIECES: &[&str] = &[
    "/",
    "//",
    "\\",
    "/\\",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "%252f",
    "%25252f",
    "https:",
    "http:",
    "https://",
    "https://app.example.com",
    "http://app.example.com",
    "https://app.example.com:443",
    "https://app.example.com.evil.example",
    "evil.example",
    "@",
    "@evil.example",
    "\t",
    " ",
    "\n",
    "%09",
    "%0a",
    "%00",
    ".portcullis",
    "/.portcullis/",
    "..",
    "?",
    "#",
    "javascript:",
    "data:",
    ":",
    "x",
    "%",
    "%zz",
    "é",
    "%e2%80%8b",
    "\u{3000}",
    "\u{ff0f}",
];

proptest! {
    #![proptest_config(config())]

    /// Any bytes in `Cookie` headers: no panic, and every pair read is a
    /// name and value with no separator in them.
    #[test]
    fn any_cookie_header_is_read_without_panic(headers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..3)) {
        let mut h = HeaderMap::new();
        for raw in &headers {
            if let Ok(v) = HeaderValue::from_bytes(raw) {
                h.append(COOKIE, v);
            }
        }
        for (n, v) in request_cookies(&h) {
            prop_assert!(!n.contains(';') && !n.contains('=') && !v.contains(';'), "{n:?}={v:?}");
        }
        let _ = read_chunked(&request_cookies(&h), SESSION);
        strip_own_cookies(&mut h, "portcullis_session");
    }

    /// The joiner reads the session exactly as the model says: never a
    /// value of another cookie, never chunks out of order.
    #[test]
    fn the_chunk_joiner_reads_only_the_sessions_cookies(
        jar in proptest::collection::vec((cookie_name(), "[A-Za-z0-9_.-]{0,6}"), 0..12),
        split in any::<bool>(),
    ) {
        // Values are tagged with their position, so the result names the
        // cookies it came from.
        let jar: Vec<(String, String)> = jar
            .into_iter()
            .enumerate()
            .map(|(i, (n, v))| (n, format!("<{i}{v}>")))
            .collect();
        let mut h = HeaderMap::new();
        let line = |pairs: &[(String, String)]| pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ");
        if split && jar.len() > 1 {
            let (a, b) = jar.split_at(jar.len() / 2);
            h.append(COOKIE, HeaderValue::from_str(&line(a)).unwrap());
            h.append(COOKIE, HeaderValue::from_str(&line(b)).unwrap());
        } else if !jar.is_empty() {
            h.append(COOKIE, HeaderValue::from_str(&line(&jar)).unwrap());
        }
        let got = read_chunked(&request_cookies(&h), SESSION);
        prop_assert_eq!(&got, &model_session(&jar), "jar {:?}", jar);

        // What goes upstream: every foreign pair, in order and unchanged;
        // none of Portcullis' own.
        strip_own_cookies(&mut h, "portcullis_session");
        let sent: Vec<String> = h
            .get_all(COOKIE)
            .iter()
            .flat_map(|v| v.to_str().unwrap().split("; ").map(str::to_string).collect::<Vec<_>>())
            .collect();
        let foreign: Vec<String> = jar
            .iter()
            .filter(|(n, _)| !is_portcullis_cookie(n.trim()))
            .map(|(n, v)| format!("{}={v}", n.trim()))
            .collect();
        prop_assert_eq!(sent, foreign);
    }

    /// Whatever is asked for, the way back is a path on this origin: a
    /// browser resolving it from any page of the app stays on the app, as
    /// it does after one or two more decodings by the app, and it never
    /// loops into Portcullis' own endpoints.
    #[test]
    fn the_return_path_is_always_same_origin(raw in hostile(RETURN_PIECES, 8), base in path()) {
        let r = safe_return_path(Some(&raw), ORIGIN);
        prop_assert!(r.starts_with('/') && !r.starts_with("//"), "{raw:?} -> {r:?}");
        prop_assert!(!r.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\'), "{raw:?} -> {r:?}");
        let origin = url::Url::parse(ORIGIN).unwrap();
        // The page the browser is on: any page of the app.
        let page = origin.join(&base).ok().filter(|u| u.origin() == origin.origin()).unwrap_or(origin);
        let mut view = r.clone();
        for _ in 0..3 {
            let landed = page.join(&view);
            prop_assert!(
                landed.as_ref().is_ok_and(|u| u.origin().ascii_serialization() == ORIGIN),
                "{raw:?} -> {r:?} read as {view:?} lands on {landed:?}"
            );
            view = percent_decode_str(&view).decode_utf8_lossy().into_owned();
        }
        let path = r.split('?').next().unwrap_or("/");
        prop_assert!(
            !portcullis::policy::path::normalise(path).is_some_and(|n| n.starts_with("/.portcullis/")),
            "{raw:?} -> {r:?} loops into Portcullis"
        );
    }

    /// The check does not refuse what is plainly fine.
    #[test]
    fn plain_same_origin_paths_come_back_unchanged(
        segs in proptest::collection::vec("[A-Za-z0-9_-]{1,8}", 0..4),
        query in proptest::option::of("[a-z]{1,5}=(%2F|%20|%3F|[A-Za-z0-9]){0,4}"),
        absolute in any::<bool>(),
    ) {
        let mut p = format!("/{}", segs.join("/"));
        if let Some(q) = &query {
            p = format!("{p}?{q}");
        }
        let asked = if absolute { format!("{ORIGIN}{p}") } else { p.clone() };
        let r = safe_return_path(Some(&asked), ORIGIN);
        // A query that decodes to `//` or a space is refused on purpose
        // (an app may decode once more); the rest come back unchanged.
        let decoded = percent_decode_str(&p).decode_utf8_lossy().into_owned();
        if !decoded.contains("//") && !decoded.contains(' ') {
            prop_assert_eq!(r, p);
        }
    }

    /// Forward-auth questions of every shape: the answer is read only from
    /// the configured family, a disagreeing copy of the other is refused,
    /// and the path is the header's, byte for byte.
    #[test]
    fn forward_auth_believes_one_family(
        ours_uri in proptest::option::of(path()),
        ours_uri_twice in any::<bool>(),
        ours_method in proptest::option::of(proptest::sample::select(vec!["GET", "POST", "OPTIONS", "CONNECT", "G E T", ""])),
        theirs_uri in proptest::collection::vec(prop_oneof![path(), Just("SAME".to_string())], 0..3),
        theirs_method in proptest::option::of(proptest::sample::select(vec!["GET", "POST", "SAME"])),
        forwarded in any::<bool>(),
    ) {
        let (family, ours, theirs) = if forwarded {
            (HeaderFamily::Forwarded, ("x-forwarded-uri", "x-forwarded-method"), ("x-original-uri", "x-original-method"))
        } else {
            (HeaderFamily::Nginx, ("x-original-uri", "x-original-method"), ("x-forwarded-uri", "x-forwarded-method"))
        };
        let mut h = HeaderMap::new();
        let mut put = |name: &'static str, v: &str| {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(HeaderName::from_static(name), v);
            }
        };
        if let Some(u) = &ours_uri {
            put(ours.0, u);
            if ours_uri_twice {
                put(ours.0, u);
            }
        }
        if let Some(m) = ours_method {
            put(ours.1, m);
        }
        for u in &theirs_uri {
            put(theirs.0, if u == "SAME" { ours_uri.as_deref().unwrap_or("/") } else { u });
        }
        if let Some(m) = theirs_method {
            put(theirs.1, if m == "SAME" { ours_method.unwrap_or("GET") } else { m });
        }
        let believed: Vec<&str> = h.get_all(ours.0).iter().filter_map(|v| v.to_str().ok()).collect();
        let result = Original::read(&h, family);
        match &result {
            Ok(o) => {
                prop_assert_eq!(believed.len(), 1, "read without exactly one {}", ours.0);
                let v = believed[0].trim();
                if v.starts_with('/') {
                    prop_assert_eq!(o.path_and_query.as_str(), v, "the path is not the header's");
                }
                let m = h.get(ours.1).and_then(|v| v.to_str().ok()).map(str::trim);
                prop_assert_eq!(Some(o.method.as_str()), m);
                // Every copy of the other family says the same.
                for t in h.get_all(theirs.0).iter().filter_map(|v| v.to_str().ok()) {
                    let t = t.trim();
                    prop_assert!(!t.starts_with('/') || !v.starts_with('/') || t == v, "{} {t:?} disagrees with {v:?} and was not refused", theirs.0);
                }
                for t in h.get_all(theirs.1).iter().filter_map(|v| v.to_str().ok()) {
                    prop_assert_eq!(t.trim(), o.method.as_str());
                }
                prop_assert!(o.method != Method::from_bytes(b"G E T").unwrap_or(Method::GET) || m == Some("GET"));
            }
            Err(OriginalError::Missing { header, .. }) => {
                prop_assert!(*header == ours.0 || *header == ours.1, "missing {header}, which is not of the believed family");
            }
            Err(_) => {}
        }
    }
}
