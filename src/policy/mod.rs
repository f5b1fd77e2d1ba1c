//! Pure rules the gate's decision is made of: passthrough path
//! rules, path normalisation, tokens, access rules, roles, client address,
//! return URLs, and how to tell a browser navigation from a script.

pub mod access;
/// Path normalisation lives below `config` (which checks rule paths with
/// it); re-exported here where the rules use it.
pub use crate::path;
pub mod client_ip;
pub mod fresh;
pub mod return_to;
pub mod roles;
pub mod rules;
pub mod tokens;

use std::net::IpAddr;

use http::{HeaderMap, Method, header};

use crate::config::{Config, PathRule};
use crate::identity::Identity;
pub use access::{Denial, Denied};
pub use rules::Selected;
pub use tokens::{Presented, TokenMatch, TokenSource};

/// Whether a passthrough rule lets a request for `path` through without
/// identity. `path` must already be in its normal form
/// ([`path::is_canonical`]): a path that is not is never passthrough, so
/// the path a rule matched is byte for byte the path the app receives.
pub fn passthrough_rule_matches(config: &Config, method: &Method, path: &str) -> bool {
    config
        .passthrough
        .paths
        .iter()
        .any(|r| rule_matches(r, method, path))
}

fn rule_matches(rule: &PathRule, method: &Method, norm: &str) -> bool {
    if !rule.methods.is_empty() && !rule.methods.contains(method) {
        return false;
    }
    rule.kind.matches(norm)
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

/// Access rules for an authenticated request, under each rule that
/// applies (`rules::applicable`; `None`: none can be chosen): an identity
/// that can travel in headers, then the client address, then the identity
/// allow list. Tokens were configured explicitly by the operator, so of
/// the lists only the address applies to them.
pub fn authorize(
    config: &Config,
    identity: &Identity,
    client: IpAddr,
    is_token: bool,
    applicable: Option<&[Selected<'_>]>,
) -> Result<(), Denial> {
    let denial = |why, rule: Option<&Selected<'_>>| Denial {
        why,
        rule: rule.map_or_else(|| "none".into(), Selected::name),
        description: rule.and_then(|r| r.description().map(str::to_string)),
    };
    access::check_header_safe(identity).map_err(|w| denial(w, None))?;
    let Some(applicable) = applicable else {
        return Err(denial(Denied::UnplaceablePath, None));
    };
    for rule in applicable {
        let lists = match rule {
            Selected::Default => access::Lists::from(&config.access),
            Selected::Rule(_, r) => access::Lists::from(*r),
        };
        access::check_ip(lists, client).map_err(|w| denial(w, Some(rule)))?;
        if !is_token {
            access::check_identity(lists, identity).map_err(|w| denial(w, Some(rule)))?;
        }
    }
    Ok(())
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

/// How a form a person submitted was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormPost {
    UrlEncoded,
    Multipart,
}

/// A form a person submitted by navigating (not a script's POST): what a
/// session that ended must not lose (it is kept in the browser while they
/// sign in again). Anything else (JSON, no `Content-Type`, a script) is not
/// a form.
pub fn form_post(method: &Method, headers: &HeaderMap) -> Option<FormPost> {
    if method != Method::POST {
        return None;
    }
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let navigating = match get("sec-fetch-mode") {
        Some(mode) => {
            mode == "navigate" && get("sec-fetch-dest").unwrap_or("document") == "document"
        }
        None => {
            !headers.contains_key("x-requested-with")
                && get(header::ACCEPT.as_str()).is_some_and(|a| a.contains("text/html"))
        }
    };
    if !navigating {
        return None;
    }
    let media = get(header::CONTENT_TYPE.as_str())?
        .split(';')
        .next()?
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/x-www-form-urlencoded" => Some(FormPost::UrlEncoded),
        "multipart/form-data" => Some(FormPost::Multipart),
        _ => None,
    }
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

    fn r(path: &str) -> bool {
        r_m(&Method::GET, path)
    }

    fn r_m(m: &Method, path: &str) -> bool {
        passthrough_rule_matches(&config(), m, path)
    }

    #[test]
    fn rules_by_kind() {
        assert!(r("/healthz"));
        assert!(!r("/healthz/"));
        assert!(r("/public/a/b"));
        assert!(!r("/publicx/"));
        assert!(!r("/public"));
        assert!(r("/assets/x/y/site.css"));
        assert!(!r("/assets/site.js"));
    }

    #[test]
    fn method_restricted_rules() {
        assert!(r_m(&Method::POST, "/hooks/x"));
        assert!(!r_m(&Method::GET, "/hooks/x"));
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
