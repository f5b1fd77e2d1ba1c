//! `metrics:` as read: whether metrics are served, on which address, and to
//! which clients. Checked in `config::metrics`.

use serde::Deserialize;

/// `metrics:` in the YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Serve metrics at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A separate `IP:PORT` for metrics only (e.g. `127.0.0.1:9180`). When
    /// set, `/.portcullis/metrics` on the main listener answers 404.
    #[serde(default)]
    pub listen: Option<String>,
    /// Clients allowed to read `/.portcullis/metrics` on the main listener
    /// (the client address after trusted proxies). Through the public host
    /// the client is a visitor, so only local scrapers get in by default.
    #[serde(default = "loopback")]
    pub allowed_ip_ranges: Vec<String>,
}

fn yes() -> bool {
    true
}

fn loopback() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enabled: true,
            listen: None,
            allowed_ip_ranges: loopback(),
        }
    }
}
