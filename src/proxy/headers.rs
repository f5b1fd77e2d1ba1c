//! Header rules between the client and the upstream: spoofed identity
//! headers out (first, for every request), hop-by-hop headers out,
//! `X-Forwarded-*` set honestly, identity headers in.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::Config;
use crate::identity::Identity;

/// Stripped whatever the configuration says: the default identity names
/// (an app may still read them after the operator renamed ours), the names
/// other gates use for the same purpose, and headers that make common
/// frameworks route or dispatch differently from the path and method
/// Portcullis judged (`X-Original-URL` in Symfony/IIS, method overrides).
const ALWAYS_STRIPPED: &[&str] = &[
    "x-real-ip",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-name",
    "x-forwarded-access-token",
    "remote-user",
    "x-remote-user",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-access-token",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Lower-cased names, with `_` read as `-`, of every header Portcullis sets
/// itself. A client copy of any of them, in any case or spelling, is dropped.
#[derive(Debug, Clone)]
pub struct OwnHeaders {
    names: Vec<String>,
}

impl OwnHeaders {
    pub fn new(config: &Config) -> OwnHeaders {
        let mut names: Vec<String> = config
            .headers
            .all()
            .map(|h| h.as_str().replace('_', "-"))
            .chain(ALWAYS_STRIPPED.iter().map(|s| s.to_string()))
            .collect();
        names.sort();
        names.dedup();
        OwnHeaders { names }
    }

    /// Removes spoofed identity headers, whatever their case or `_`/`-`.
    pub fn strip_spoofed(&self, headers: &mut HeaderMap) {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| {
                let n = k.as_str();
                // HeaderName is already lower case.
                self.names.iter().any(|own| {
                    own.len() == n.len()
                        && own
                            .bytes()
                            .zip(n.bytes())
                            .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
                })
            })
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus those named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // The listed names are removed by `&str` (looked up without building a
    // `HeaderName`); the values are cheap clones of the request's bytes.
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderValue> = headers
            .get_all(header::CONNECTION)
            .iter()
            .cloned()
            .collect();
        for value in &listed {
            let Ok(value) = value.to_str() else { continue };
            for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                headers.remove(name);
            }
        }
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Sets `X-Forwarded-For/-Proto/-Host` and `X-Real-IP`. A trusted proxy's
/// values are kept (its `X-Forwarded-For` extended); anyone else's replaced.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: IpAddr,
    peer_trusted: bool,
    client_ip: IpAddr,
    scheme: &str,
    host: Option<&HeaderValue>,
) {
    let xff = if peer_trusted {
        let prior: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if prior.is_empty() {
            peer.to_string()
        } else {
            format!("{}, {}", prior.join(", "), peer)
        }
    } else {
        // Nothing this peer says about the original request is believed:
        // every `X-Forwarded-*` (Prefix, Port, Ssl, Uri, …) and `Forwarded`.
        remove_matching(headers, |n| {
            n.starts_with("x-forwarded-") || n.starts_with("x_forwarded_") || n == "forwarded"
        });
        peer.to_string()
    };
    // `_` spellings are read as the real thing by CGI-style apps and are
    // never what a proxy sends.
    remove_matching(headers, |n| n.starts_with("x_forwarded_"));
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert(
            "x-forwarded-proto",
            HeaderValue::from_static(if scheme == "https" { "https" } else { "http" }),
        );
    }
    if !headers.contains_key("x-forwarded-host")
        && let Some(h) = host
    {
        headers.insert("x-forwarded-host", h.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&client_ip.to_string()) {
        headers.insert("x-real-ip", v);
    }
}

fn remove_matching(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|k| doomed(k.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

/// An identity value that cannot be a header (control characters). The
/// access rules refuse such identities before anything is forwarded; this
/// is the last line, so that a value is never silently left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an identity value contains control characters and cannot be sent as a header")]
pub struct NotHeaderSafe;

/// Adds the identity headers, all or none: on an error the caller must not
/// forward (some headers may already be set).
pub fn set_identity(
    headers: &mut HeaderMap,
    config: &Config,
    id: &Identity,
) -> Result<(), NotHeaderSafe> {
    if !id.is_header_safe() {
        return Err(NotHeaderSafe);
    }
    let h = &config.headers;
    let mut failed = false;
    let mut put = |name: &HeaderName, value: &str| match HeaderValue::from_bytes(value.as_bytes()) {
        Ok(v) => {
            headers.insert(name.clone(), v);
        }
        Err(_) => failed = true,
    };
    put(&h.user, &id.user);
    if let Some(e) = &id.email {
        put(&h.email, e);
    }
    // A group containing the separator would read as several groups
    // upstream (`x,admins`); it is left out of the header, with a warning.
    let (clean, ambiguous): (Vec<&String>, Vec<&String>) = id
        .groups
        .iter()
        .partition(|g| !g.contains(h.groups_separator.as_str()));
    if !ambiguous.is_empty() {
        tracing::warn!(
            user = %id.user,
            left_out = ambiguous.len(),
            "groups containing the groups separator were left out of the groups header; set headers.groups_separator to a character group names do not contain"
        );
    }
    if !clean.is_empty() {
        let joined = clean
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(&h.groups_separator);
        put(&h.groups, &joined);
    }
    put(
        &h.preferred_username,
        id.preferred_username.as_deref().unwrap_or(&id.user),
    );
    if let Some(n) = &id.name {
        put(&h.name, n);
    }
    for (attr, name) in &h.extra {
        if let Some(v) = id.extra.get(attr) {
            put(name, v);
        }
    }
    if failed { Err(NotHeaderSafe) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::from_yaml_str("domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\nheaders:\n  extra:\n    department: X-Dept\n").unwrap()
    }

    #[test]
    fn strips_identity_headers_in_any_spelling() {
        let own = OwnHeaders::new(&config());
        let mut h = HeaderMap::new();
        for n in [
            "x-forwarded-email",
            "X-Forwarded-User",
            "x_forwarded_email",
            "X_FORWARDED_GROUPS",
            "x-dept",
            "x_dept",
            "x-real-ip",
            "x-other",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("admin@x"),
            );
        }
        own.strip_spoofed(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-other"]);
    }

    #[test]
    fn routing_overrides_and_foreign_identity_names_are_stripped() {
        let renamed = crate::config::from_yaml_str(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\nheaders:\n  user: Remote-User-Name\n",
        )
        .unwrap();
        let own = OwnHeaders::new(&renamed);
        let mut h = HeaderMap::new();
        for n in [
            "remote-user-name",
            "x-forwarded-user",
            "remote-user",
            "x-original-url",
            "x_rewrite_url",
            "x-http-method-override",
            "x-auth-request-email",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("admin"),
            );
        }
        own.strip_spoofed(&mut h);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn ambiguous_groups_are_left_out_of_the_header() {
        let mut h = HeaderMap::new();
        let id = Identity {
            subject: "s".into(),
            user: "u".into(),
            groups: vec!["staff".into(), "x,admins".into()],
            ..Default::default()
        };
        set_identity(&mut h, &config(), &id).unwrap();
        assert_eq!(h["x-forwarded-groups"], "staff");
    }

    #[test]
    fn untrusted_forwarded_headers_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        h.insert("x-forwarded-proto", "http".parse().unwrap());
        h.insert("x-forwarded-prefix", "//evil.example".parse().unwrap());
        h.insert("x_forwarded_for", "10.0.0.1".parse().unwrap());
        h.insert("forwarded", "for=10.0.0.1".parse().unwrap());
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        set_forwarded(&mut h, peer, false, peer, "https", None);
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(h.get("x-forwarded-prefix").is_none());
        assert!(h.get("x_forwarded_for").is_none());
        assert!(h.get("forwarded").is_none());
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        set_forwarded(
            &mut h,
            peer,
            true,
            "203.0.113.9".parse().unwrap(),
            "https",
            None,
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
        assert_eq!(h["x-real-ip"], "203.0.113.9");
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic eA=="),
            ("upgrade", "h2c"),
            ("x-app", "kept"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        remove_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-app"]);
    }

    #[test]
    fn identity_values_cannot_inject_headers() {
        let mut h = HeaderMap::new();
        let id = Identity {
            subject: "s".into(),
            user: "alice\r\nX-Admin: 1".into(),
            name: Some("Zoë".into()),
            ..Default::default()
        };
        assert_eq!(set_identity(&mut h, &config(), &id), Err(NotHeaderSafe));
        assert!(h.is_empty(), "nothing set, not even the safe values: {h:?}");
        let id = Identity {
            subject: "s".into(),
            user: "alice".into(),
            name: Some("Zoë".into()),
            ..Default::default()
        };
        set_identity(&mut h, &config(), &id).unwrap();
        assert_eq!(h["x-forwarded-user"], "alice");
        assert_eq!(h["x-forwarded-name"].as_bytes(), "Zoë".as_bytes());
    }

    #[test]
    fn every_identity_value_reaches_its_header() {
        let mut h = HeaderMap::new();
        let id = Identity {
            subject: "s".into(),
            user: "alice".into(),
            email: Some("alice@example.com".into()),
            name: Some("Alice Example".into()),
            preferred_username: Some("al".into()),
            groups: vec!["admins".into(), "staff".into()],
            extra: [("department".to_string(), "R&D".to_string())].into(),
        };
        set_identity(&mut h, &config(), &id).unwrap();
        let got: Vec<(&str, &str)> = h
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("x-forwarded-user", "alice"),
                ("x-forwarded-email", "alice@example.com"),
                ("x-forwarded-groups", "admins,staff"),
                ("x-forwarded-preferred-username", "al"),
                ("x-forwarded-name", "Alice Example"),
                ("x-dept", "R&D"),
            ]
        );
        // Without a preferred_username, the user name stands in.
        let mut h = HeaderMap::new();
        let plain = Identity {
            preferred_username: None,
            ..id
        };
        set_identity(&mut h, &config(), &plain).unwrap();
        assert_eq!(h["x-forwarded-preferred-username"], "alice");
    }
}
