//! `assertion:` as read: whether forwarded requests carry a signed identity
//! assertion, in which header, for which audience, with which key file and
//! algorithm. Checked in `config::assertion`.

use std::path::PathBuf;
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
pub struct Assertion {
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

impl Default for Assertion {
    fn default() -> Self {
        Assertion {
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

/// The header an assertion travels in unless `assertion.header` says.
pub const DEFAULT_HEADER: &str = "x-portcullis-assertion";

impl Assertion {
    /// The header name to strip from every request, enabled or not: an app
    /// that verifies assertions must never get a client's copy.
    pub fn header_name(&self) -> Option<HeaderName> {
        HeaderName::from_bytes(self.header.as_deref().unwrap_or(DEFAULT_HEADER).as_bytes()).ok()
    }
}
