//! The decision for each request, in the order DESIGN.md gives: Portcullis'
//! own endpoints, passthrough paths, bearer tokens, else a session is needed;
//! and, once someone is known, the access rules.

pub mod access;
pub mod client_ip;
pub mod path;
pub mod return_to;
pub mod tokens;

use std::net::IpAddr;

use http::{HeaderMap, Method, header};

use crate::config::{Config, PathRule, PathRuleKind};
use crate::identity::Identity;
pub use access::Denied;
pub use tokens::{TokenMatch, TokenSource};

/// Where a request goes before any session is looked at.
#[derive(Debug)]
pub enum Route<'a> {
    /// Under the reserved prefix; the rest of the path (e.g. `health`).
    Own(String),
    /// A passthrough path: forwarded without identity, no login.
    Passthrough,
    /// A passthrough bearer token: forwarded with the token's identity.
    Token(TokenMatch<'a>),
    /// Everything else needs a valid session.
    Session,
}

pub fn route<'a>(
    config: &'a Config,
    method: &Method,
    raw_path: &str,
    headers: &HeaderMap,
) -> Route<'a> {
    if let Some(norm) = path::normalise(raw_path) {
        if let Some(rest) = norm.strip_prefix(crate::RESERVED_PREFIX) {
            return Route::Own(rest.to_string());
        }
        if config
            .passthrough
            .paths
            .iter()
            .any(|r| rule_matches(r, method, &norm))
        {
            return Route::Passthrough;
        }
    }
    match tokens::find(
        &config.passthrough.tokens,
        headers,
        &config.passthrough.token_header,
    ) {
        Some(m) => Route::Token(m),
        None => Route::Session,
    }
}

fn rule_matches(rule: &PathRule, method: &Method, norm: &str) -> bool {
    if !rule.methods.is_empty() && !rule.methods.contains(method) {
        return false;
    }
    match &rule.kind {
        PathRuleKind::Exact(p) => norm == p,
        PathRuleKind::Prefix(p) => norm.starts_with(p.as_str()),
        PathRuleKind::Glob(g) => g.is_match(norm),
    }
}

/// The identity a passthrough token stands for.
pub fn token_identity(m: &TokenMatch<'_>) -> Identity {
    Identity {
        subject: format!("token:{}", m.token.name),
        user: m.token.name.clone(),
        groups: m.token.groups.clone(),
        ..Default::default()
    }
}

/// Access rules for an authenticated request: an identity that can travel
/// in headers, then the client address, then the identity allow list.
/// Tokens were configured explicitly by the operator, so of the rules only
/// the address applies to them.
pub fn authorize(
    config: &Config,
    identity: &Identity,
    client: IpAddr,
    is_token: bool,
) -> Result<(), Denied> {
    access::check_header_safe(identity)?;
    access::check_ip(&config.access, client)?;
    if is_token {
        return Ok(());
    }
    access::check_identity(&config.access, identity)
}

/// A top-level browser navigation (which may be sent to the IdP), as
/// opposed to a script or API call (which gets 401, never a redirect).
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(mode) = get("sec-fetch-mode") {
        let dest = get("sec-fetch-dest").unwrap_or("document");
        return mode == "navigate" && matches!(dest, "document" | "iframe" | "frame");
    }
    if headers.contains_key("x-requested-with") {
        return false;
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// Whether the client prefers a JSON answer.
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json") && !a.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::from_yaml_str(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\npassthrough:\n  paths:\n    - exact: /healthz\n    - prefix: /public/\n    - glob: /assets/**/*.css\n    - prefix: /hooks/\n      methods: [post]\n",
        )
        .unwrap()
    }

    fn r(path: &str) -> &'static str {
        r_m(Method::GET, path)
    }

    fn r_m(m: Method, path: &str) -> &'static str {
        let c = config();
        match route(&c, &m, path, &HeaderMap::new()) {
            Route::Own(_) => "own",
            Route::Passthrough => "pass",
            Route::Token(_) => "token",
            Route::Session => "session",
        }
    }

    #[test]
    fn passthrough_rules_match_normalised_path_only() {
        assert_eq!(r("/healthz"), "pass");
        assert_eq!(r("/healthz/"), "session");
        assert_eq!(r("/public/a/b"), "pass");
        assert_eq!(r("/assets/x/y/site.css"), "pass");
        assert_eq!(r("/assets/site.js"), "session");
        for attack in [
            "/public/../admin",
            "/public%2F..%2Fadmin",
            "/public/%2e%2e/admin",
            "/public/..;/admin",
            "/public\\..\\admin",
            "//public/../admin",
            "/public/./../admin",
            "/publicx/",
            "/assets/../admin/x.css/../../admin",
        ] {
            assert_eq!(r(attack), "session", "{attack}");
        }
    }

    #[test]
    fn method_restricted_rules() {
        assert_eq!(r_m(Method::POST, "/hooks/x"), "pass");
        assert_eq!(r_m(Method::GET, "/hooks/x"), "session");
    }

    #[test]
    fn reserved_prefix() {
        assert_eq!(r("/.portcullis/health"), "own");
        assert_eq!(r("/public/../.portcullis/logout"), "own");
    }

    #[test]
    fn navigation_detection() {
        let mut h = HeaderMap::new();
        h.insert("accept", "text/html,application/xhtml+xml".parse().unwrap());
        assert!(is_navigation(&Method::GET, &h));
        assert!(!is_navigation(&Method::POST, &h));
        h.insert("x-requested-with", "XMLHttpRequest".parse().unwrap());
        assert!(!is_navigation(&Method::GET, &h));
        let mut h = HeaderMap::new();
        h.insert("accept", "*/*".parse().unwrap());
        h.insert("sec-fetch-mode", "cors".parse().unwrap());
        assert!(!is_navigation(&Method::GET, &h));
        h.insert("sec-fetch-mode", "navigate".parse().unwrap());
        h.insert("sec-fetch-dest", "document".parse().unwrap());
        assert!(is_navigation(&Method::GET, &h));
        let mut h = HeaderMap::new();
        h.insert("accept", "application/json".parse().unwrap());
        assert!(!is_navigation(&Method::GET, &h));
        assert!(wants_json(&h));
    }
}
