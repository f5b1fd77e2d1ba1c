//! The checked `assertion:` section ([`Assertion`]) and its checks; the
//! YAML form is `raw::Assertion`. Minting lives in the top-level
//! `assertion` module.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;

use super::raw;
pub use super::raw::assertion::{AssertionAlg, DEFAULT_HEADER};

/// The checked `assertion:` section; `None` in `Config` when disabled.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub header: HeaderName,
    pub audience: String,
    pub algorithm: AssertionAlg,
    pub key_file: PathBuf,
    pub lifetime: Duration,
    pub publish_ahead: Duration,
}

/// Checks the section even when it is off, so a typo is caught before
/// someone turns it on.
pub(super) fn validate(
    raw: &raw::Assertion,
    domain: &str,
    state_dir: &Path,
    errs: &mut Vec<super::FieldError>,
) -> Option<Assertion> {
    let mut add = |field: &str, message: String| {
        errs.push(super::FieldError {
            field: format!("assertion.{field}"),
            message,
        });
    };
    let header = raw.header_name();
    if header.is_none() {
        add(
                "header",
                "is not a valid header name: use letters, digits and `-`, e.g. `X-Portcullis-Assertion`".into(),
            );
    }
    if raw.lifetime < Duration::from_secs(10) || raw.lifetime > Duration::from_secs(300) {
        add(
            "lifetime",
            "must be between 10s and 5m, e.g. `2m`: apps should see a short-lived assertion".into(),
        );
    }
    if raw.audience.as_deref().is_some_and(|a| a.trim().is_empty()) {
        add(
            "audience",
            "must not be empty; leave it out to use the domain".into(),
        );
    }
    if !raw.enabled {
        return None;
    }
    Some(Assertion {
        header: header?,
        audience: raw.audience.clone().unwrap_or_else(|| domain.to_string()),
        algorithm: raw.algorithm,
        key_file: raw
            .key_file
            .clone()
            .unwrap_or_else(|| state_dir.join("assertion-keys.json")),
        lifetime: raw.lifetime,
        publish_ahead: raw.publish_ahead,
    })
}

#[cfg(test)]
mod tests {
    fn fields(extra: &str) -> Vec<String> {
        match crate::config::from_yaml_str(&format!(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\n{extra}"
        )) {
            Ok(_) => Vec::new(),
            Err(e) => e.fields().into_iter().map(|f| f.field).collect(),
        }
    }

    #[test]
    fn defaults_and_bounds() {
        let c = crate::config::from_yaml_str(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\nassertion:\n  enabled: true\n",
        )
        .unwrap();
        let a = c.assertion.unwrap();
        assert_eq!(a.header.as_str(), "x-portcullis-assertion");
        assert_eq!(a.audience, "a.example.com");
        assert_eq!(a.lifetime.as_secs(), 120);
        assert_eq!(
            fields("assertion:\n  lifetime: 6m\n"),
            vec!["assertion.lifetime"]
        );
        assert_eq!(
            fields("assertion:\n  header: \"a b\"\n"),
            vec!["assertion.header"]
        );
        assert_eq!(fields("assertion:\n  algorithm: HS256\n").len(), 1);
        assert!(fields("").is_empty());
    }
}
