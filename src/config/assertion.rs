//! `assertion:` in the YAML ([`AssertionConfig`]) and its checked form
//! ([`AssertionSettings`]): whether forwarded requests carry a signed
//! identity assertion, in which header, for which audience, with which key
//! file and algorithm. Minting lives in the top-level `assertion` module.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

/// The signature algorithms an assertion key may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
pub enum AssertionAlg {
    #[default]
    ES256,
    EdDSA,
    RS256,
}

impl AssertionAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            AssertionAlg::ES256 => "ES256",
            AssertionAlg::EdDSA => "EdDSA",
            AssertionAlg::RS256 => "RS256",
        }
    }
}

/// `assertion:` in the YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Default `X-Portcullis-Assertion`.
    pub header: Option<String>,
    /// The `aud` claim; default the domain.
    pub audience: Option<String>,
    /// Algorithm of keys `portcullis keys assertion --rotate` and a first
    /// start create; keys already in the file keep their own.
    #[serde(default)]
    pub algorithm: AssertionAlg,
    /// Default `STATE_DIR/assertion-keys.json`, created on first start.
    pub key_file: Option<PathBuf>,
    /// How long an assertion is valid; at most 5m.
    #[serde(default = "lifetime", with = "humantime_serde")]
    pub lifetime: Duration,
    /// A new key is published this long before it signs, so apps that
    /// cache the key set have fetched it first.
    #[serde(default = "publish_ahead", with = "humantime_serde")]
    pub publish_ahead: Duration,
}

impl Default for AssertionConfig {
    fn default() -> Self {
        AssertionConfig {
            enabled: false,
            header: None,
            audience: None,
            algorithm: AssertionAlg::default(),
            key_file: None,
            lifetime: lifetime(),
            publish_ahead: publish_ahead(),
        }
    }
}

fn lifetime() -> Duration {
    Duration::from_secs(120)
}

fn publish_ahead() -> Duration {
    Duration::from_secs(600)
}

/// The checked `assertion:` section; `None` in `Config` when disabled.
#[derive(Debug, Clone)]
pub struct AssertionSettings {
    pub header: HeaderName,
    pub audience: String,
    pub algorithm: AssertionAlg,
    pub key_file: PathBuf,
    pub lifetime: Duration,
    pub publish_ahead: Duration,
}

pub const DEFAULT_HEADER: &str = "x-portcullis-assertion";

impl AssertionConfig {
    /// The header name to strip from every request, enabled or not: an app
    /// that verifies assertions must never get a client's copy.
    pub fn header_name(&self) -> Option<HeaderName> {
        HeaderName::from_bytes(self.header.as_deref().unwrap_or(DEFAULT_HEADER).as_bytes()).ok()
    }

    pub fn validate(
        &self,
        domain: &str,
        state_dir: &Path,
        errs: &mut Vec<super::FieldError>,
    ) -> Option<AssertionSettings> {
        let mut add = |field: &str, message: String| {
            errs.push(super::FieldError {
                field: format!("assertion.{field}"),
                message,
            })
        };
        let header = self.header_name();
        if header.is_none() {
            add(
                "header",
                "is not a valid header name: use letters, digits and `-`, e.g. `X-Portcullis-Assertion`".into(),
            );
        }
        if self.lifetime < Duration::from_secs(10) || self.lifetime > Duration::from_secs(300) {
            add(
                "lifetime",
                "must be between 10s and 5m, e.g. `2m`: apps should see a short-lived assertion"
                    .into(),
            );
        }
        if self
            .audience
            .as_deref()
            .is_some_and(|a| a.trim().is_empty())
        {
            add(
                "audience",
                "must not be empty; leave it out to use the domain".into(),
            );
        }
        if !self.enabled {
            return None;
        }
        Some(AssertionSettings {
            header: header?,
            audience: self.audience.clone().unwrap_or_else(|| domain.to_string()),
            algorithm: self.algorithm,
            key_file: self
                .key_file
                .clone()
                .unwrap_or_else(|| state_dir.join("assertion-keys.json")),
            lifetime: self.lifetime,
            publish_ahead: self.publish_ahead,
        })
    }
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
