//! `saml:` as read: one SAML 2.0 IdP per instance. Checked in
//! `config::saml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saml {
    /// Where the IdP publishes its metadata (fetched at start, refreshed,
    /// cached on disk). Exactly one of this and `idp_metadata_file`.
    pub idp_metadata_url: Option<String>,
    /// How often the metadata URL is fetched again (key rollover).
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub idp_metadata_refresh: Duration,
    /// IdP metadata saved from the IdP's admin console.
    pub idp_metadata_file: Option<PathBuf>,
    /// PEM certificate that must have signed the metadata (optional; for
    /// metadata fetched from a URL that is not otherwise trusted).
    pub idp_metadata_signing_cert_file: Option<PathBuf>,
    /// Defaults to `https://DOMAIN/.portcullis/saml/metadata`.
    pub sp_entity_id: Option<String>,
    /// SP private key (PEM); generated on first start if absent.
    pub sp_key_file: Option<PathBuf>,
    /// SP certificate (PEM); generated on first start if absent.
    pub sp_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub sign_requests: bool,
    /// `emailAddress`, `persistent`, `transient`, `unspecified` or a URN.
    pub nameid_format: Option<String>,
    #[serde(default = "default_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    #[serde(default)]
    pub allow_idp_initiated: bool,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default)]
    pub acs_verify_limit: AcsVerifyLimit,
}

/// How many ACS signature verifications may run: for all clients together,
/// per client address (IPv6: per /64) and per login transaction. Each
/// response is charged to its transaction, then its client, then the
/// shared budget (see `idp::saml::budget`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcsVerifyLimit {
    /// Verifications a second, all clients together.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// How many may come at once before `rate` applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Verifications a second for one client address.
    #[serde(default = "default_client_rate")]
    pub per_client_rate: f64,
    #[serde(default = "default_client_burst")]
    pub per_client_burst: u32,
    /// Verifications one login transaction may cause in its lifetime.
    #[serde(default = "default_per_transaction")]
    pub per_transaction: u32,
}

fn default_rate() -> f64 {
    20.0
}
fn default_burst() -> u32 {
    40
}
fn default_client_rate() -> f64 {
    1.0
}
fn default_client_burst() -> u32 {
    10
}
fn default_per_transaction() -> u32 {
    3
}

impl Default for AcsVerifyLimit {
    fn default() -> Self {
        AcsVerifyLimit {
            rate: default_rate(),
            burst: default_burst(),
            per_client_rate: default_client_rate(),
            per_client_burst: default_client_burst(),
            per_transaction: default_per_transaction(),
        }
    }
}

/// Overrides of the built-in attribute aliases: each is one attribute name
/// or a list, the first one present wins.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    pub user: Option<OneOrMany>,
    pub email: Option<OneOrMany>,
    pub name: Option<OneOrMany>,
    pub groups: Option<OneOrMany>,
    /// Identity attribute name -> SAML attribute name(s), for `headers.extra`.
    #[serde(default)]
    pub extra: BTreeMap<String, OneOrMany>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(in crate::config) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

fn default_refresh() -> Duration {
    Duration::from_secs(3600)
}

fn default_skew() -> Duration {
    Duration::from_secs(60)
}
