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

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn a_navigating_form_post_is_a_form_of_its_encoding() {
        let browser = |ct| {
            headers(&[
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document"),
                ("content-type", ct),
            ])
        };
        let post = |h: &HeaderMap| form_post(&Method::POST, h);
        assert_eq!(post(&browser(FORM)), Some(FormPost::UrlEncoded));
        assert_eq!(
            post(&browser("Multipart/Form-Data; boundary=x")),
            Some(FormPost::Multipart)
        );
        assert_eq!(
            post(&browser("application/x-www-form-urlencoded;charset=UTF-8")),
            Some(FormPost::UrlEncoded)
        );
        // No `Sec-Fetch-Dest` from a navigation means a document.
        let h = headers(&[("sec-fetch-mode", "navigate"), ("content-type", FORM)]);
        assert_eq!(post(&h), Some(FormPost::UrlEncoded));
        // An older browser: no Fetch Metadata, but it asks for HTML.
        let h = headers(&[("accept", "text/html,*/*"), ("content-type", FORM)]);
        assert_eq!(post(&h), Some(FormPost::UrlEncoded));
    }

    #[test]
    fn what_is_not_a_navigating_form_post_is_not_kept() {
        let nav = [
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = nav.to_vec();
            all.extend_from_slice(extra);
            headers(&all)
        };
        let form = with(&[("content-type", FORM)]);
        let refused = [
            ("GET", Method::GET, form.clone()),
            ("PUT", Method::PUT, form.clone()),
            (
                "JSON",
                Method::POST,
                with(&[("content-type", "application/json")]),
            ),
            ("no Content-Type", Method::POST, with(&[])),
            (
                "text/plain",
                Method::POST,
                with(&[("content-type", "text/plain")]),
            ),
            (
                "a script's fetch",
                Method::POST,
                headers(&[("sec-fetch-mode", "cors"), ("content-type", FORM)]),
            ),
            (
                "a navigation into an iframe",
                Method::POST,
                headers(&[
                    ("sec-fetch-mode", "navigate"),
                    ("sec-fetch-dest", "iframe"),
                    ("content-type", FORM),
                ]),
            ),
            (
                "an XMLHttpRequest without Fetch Metadata",
                Method::POST,
                headers(&[
                    ("accept", "text/html"),
                    ("x-requested-with", "XMLHttpRequest"),
                    ("content-type", FORM),
                ]),
            ),
            (
                "no Fetch Metadata, not asking for HTML",
                Method::POST,
                headers(&[("accept", "application/json"), ("content-type", FORM)]),
            ),
            (
                "no Fetch Metadata, no Accept",
                Method::POST,
                headers(&[("content-type", FORM)]),
            ),
        ];
        let kept: Vec<_> = refused
            .iter()
            .filter(|(_, m, h)| form_post(m, h).is_some())
            .map(|(what, _, _)| *what)
            .collect();
        assert!(kept.is_empty(), "taken for a person's form: {kept:?}");
    }

    #[test]
    fn json_is_wanted_only_when_asked_for_without_html() {
        assert!(wants_json(&headers(&[("accept", "application/json")])));
        assert!(!wants_json(&headers(&[(
            "accept",
            "text/html,application/json;q=0.9"
        )])));
        assert!(!wants_json(&headers(&[("accept", "text/html")])));
        assert!(!wants_json(&headers(&[("accept", "*/*")])));
        assert!(!wants_json(&HeaderMap::new()));
    }

    #[test]
    fn a_token_stands_for_its_name_and_groups() {
        let token = crate::config::Token {
            name: "ci-bot".into(),
            sha256: [0; 32],
            groups: vec!["deployers".into(), "readers".into()],
        };
        let m = TokenMatch {
            token: &token,
            source: TokenSource::Authorization,
        };
        let id = token_identity(&m);
        assert_eq!(id.subject, "token:ci-bot");
        assert_eq!(id.user, "ci-bot");
        assert_eq!(id.groups, ["deployers", "readers"]);
        assert_eq!(id.email, None);
        assert_eq!(id.role, None);
    }
}
