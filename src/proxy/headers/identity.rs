//! Identity headers in: what Portcullis tells the upstream about the user.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::Config;
use crate::identity::Identity;

/// Adds the identity headers. Values that cannot be a header (control
/// characters) are left out rather than risking header injection.
pub fn set_identity(headers: &mut HeaderMap, config: &Config, id: &Identity) {
    let h = &config.headers;
    let mut put = |name: &HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.insert(name.clone(), v);
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::from_yaml_str(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\n",
        )
        .unwrap()
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
        set_identity(&mut h, &config(), &id);
        assert_eq!(h["x-forwarded-groups"], "staff");
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
        set_identity(&mut h, &config(), &id);
        assert!(h.get("x-forwarded-user").is_none());
        assert_eq!(h["x-forwarded-name"].as_bytes(), "Zoë".as_bytes());
    }
}
