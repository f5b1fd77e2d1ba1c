//! Identity headers in: what Portcullis tells the upstream about the user.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::Config;
use crate::identity::Identity;

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
    if let Some(r) = &id.role {
        put(&h.role, r);
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
        crate::config::from_yaml_str(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\nheaders:\n  extra:\n    department: X-Dept\n",
        )
        .unwrap()
    }

    #[derive(Clone, Default)]
    struct Logged(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Logged {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The identity headers for `groups`, and what setting them logged.
    fn groups_header(groups: &[&str]) -> (Option<String>, String) {
        let log = Logged::default();
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let mut h = HeaderMap::new();
        let id = Identity {
            subject: "s".into(),
            user: "u".into(),
            groups: groups.iter().map(|g| (*g).to_string()).collect(),
            ..Default::default()
        };
        tracing::subscriber::with_default(subscriber, || {
            set_identity(&mut h, &config(), &id).unwrap();
        });
        let header = h
            .get("x-forwarded-groups")
            .map(|v| v.to_str().unwrap().to_string());
        let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        (header, logged)
    }

    #[test]
    fn ambiguous_groups_are_left_out_of_the_header_with_a_warning() {
        let (header, logged) = groups_header(&["staff", "x,admins"]);
        assert_eq!(header.as_deref(), Some("staff"));
        assert!(logged.contains("WARN"), "{logged}");
        assert!(logged.contains("left_out=1"), "{logged}");
        assert!(logged.contains("headers.groups_separator"), "{logged}");
        // Clean groups: all of them, and nothing to warn about.
        let (header, logged) = groups_header(&["staff", "admins"]);
        assert_eq!(header.as_deref(), Some("staff,admins"));
        assert_eq!(logged, "");
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
            role: Some("editor".into()),
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
                ("x-forwarded-role", "editor"),
                ("x-dept", "R&D"),
            ]
        );
        // Without a preferred_username, the user name stands in.
        let mut h = HeaderMap::new();
        let plain = Identity {
            preferred_username: None,
            role: None,
            ..id
        };
        set_identity(&mut h, &config(), &plain).unwrap();
        assert_eq!(h["x-forwarded-preferred-username"], "alice");
        // Without roles configured, no role header.
        assert!(!h.contains_key("x-forwarded-role"));
    }
}
