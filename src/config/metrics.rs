//! `metrics:` in the YAML ([`MetricsConfig`]) and its checked form
//! ([`MetricsSettings`]): whether metrics are served, on which address, and
//! to which clients. The counters themselves live in the top-level `metrics` module.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

/// `metrics:` in the YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
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

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: None,
            allowed_ip_ranges: loopback(),
        }
    }
}

/// The checked `metrics:` section.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub listen: Option<std::net::SocketAddr>,
    pub allowed_ip_ranges: Vec<IpNet>,
}

impl MetricsConfig {
    /// Checks the section; each error is `(field, message)`.
    pub fn validate(&self) -> Result<MetricsSettings, Vec<(String, String)>> {
        let mut errs = Vec::new();
        let listen = match &self.listen {
            None => None,
            Some(s) => match s.trim().parse() {
                Ok(a) => Some(a),
                Err(_) => {
                    errs.push((
                        "metrics.listen".to_string(),
                        format!("`{s}` is not an address: use `IP:PORT`, e.g. `127.0.0.1:9180`"),
                    ));
                    None
                }
            },
        };
        let mut ranges = Vec::new();
        for (i, s) in self.allowed_ip_ranges.iter().enumerate() {
            let s = s.trim();
            match s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            {
                Ok(n) => ranges.push(n),
                Err(_) => errs.push((
                    format!("metrics.allowed_ip_ranges[{i}]"),
                    format!("`{s}` is not a CIDR range: write e.g. `127.0.0.0/8` or `192.0.2.7`"),
                )),
            }
        }
        if errs.is_empty() {
            Ok(MetricsSettings {
                enabled: self.enabled,
                listen,
                allowed_ip_ranges: ranges,
            })
        } else {
            Err(errs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation_names_fields() {
        let c = MetricsConfig {
            enabled: true,
            listen: Some("nope".into()),
            allowed_ip_ranges: vec!["10.0.0.0/8".into(), "x".into()],
        };
        let errs = c.validate().unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["metrics.listen", "metrics.allowed_ip_ranges[1]"]);
    }
}
