//! The checked `metrics:` section ([`Metrics`]) and its checks; the YAML
//! form is `raw::Metrics`. The counters themselves live in the top-level
//! `metrics` module.

use std::net::IpAddr;

use ipnet::IpNet;

use super::FieldError;
use super::raw;

/// The checked `metrics:` section.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub enabled: bool,
    pub listen: Option<std::net::SocketAddr>,
    pub allowed_ip_ranges: Vec<IpNet>,
}

/// Checks the section, adding one error per bad field to `errs`.
pub(super) fn validate(raw: &raw::Metrics, errs: &mut Vec<FieldError>) -> Option<Metrics> {
    let before = errs.len();
    let mut add = |field: String, message: String| errs.push(FieldError { field, message });
    let listen = match &raw.listen {
        None => None,
        Some(s) => {
            if let Ok(a) = s.trim().parse() {
                Some(a)
            } else {
                add(
                    "metrics.listen".to_string(),
                    format!("`{s}` is not an address: use `IP:PORT`, e.g. `127.0.0.1:9180`"),
                );
                None
            }
        }
    };
    let mut ranges = Vec::new();
    for (i, s) in raw.allowed_ip_ranges.iter().enumerate() {
        let s = s.trim();
        match s
            .parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(n) => ranges.push(n),
            Err(_) => add(
                format!("metrics.allowed_ip_ranges[{i}]"),
                format!("`{s}` is not a CIDR range: write e.g. `127.0.0.0/8` or `192.0.2.7`"),
            ),
        }
    }
    (errs.len() == before).then_some(Metrics {
        enabled: raw.enabled,
        listen,
        allowed_ip_ranges: ranges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation_names_fields() {
        let c = raw::Metrics {
            enabled: true,
            listen: Some("nope".into()),
            allowed_ip_ranges: vec!["10.0.0.0/8".into(), "x".into()],
        };
        let mut errs = Vec::new();
        assert!(validate(&c, &mut errs).is_none());
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["metrics.listen", "metrics.allowed_ip_ranges[1]"]);
    }
}
