//! The checked `saml:` section ([`Saml`]) and its checks: [`validate`]
//! turns `raw::Saml` (what YAML and `PORTCULLIS_SAML__*` variables give)
//! into it, naming the field of every problem.

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::FieldError;
use super::raw;
use super::raw::Scheme;
use super::raw::saml::OneOrMany;

/// Used as written: the limits need no check beyond their types.
pub use super::raw::saml::AcsVerifyLimit;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataSource {
    Url { url: Url, refresh: Duration },
    File(PathBuf),
}

/// Attribute names to look for, in order; `None` keeps the built-in list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeOverrides {
    pub user: Option<Vec<String>>,
    pub email: Option<Vec<String>>,
    pub name: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub extra: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone)]
pub struct Saml {
    pub metadata: MetadataSource,
    /// The last good IdP metadata fetched from the URL.
    pub metadata_cache_file: PathBuf,
    pub metadata_signing_cert_file: Option<PathBuf>,
    pub sp_entity_id: String,
    pub acs_url: String,
    pub slo_url: String,
    pub sp_metadata_url: String,
    pub sp_key_file: PathBuf,
    pub sp_cert_file: PathBuf,
    pub sign_requests: bool,
    /// Full URN.
    pub nameid_format: Option<String>,
    pub clock_skew: Duration,
    pub allow_idp_initiated: bool,
    pub attributes: AttributeOverrides,
    pub acs_verify_limit: AcsVerifyLimit,
}

pub const NAMEID_FORMATS: [(&str, &str); 4] = [
    (
        "emailAddress",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    ),
    (
        "persistent",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    ),
    (
        "transient",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    ),
    (
        "unspecified",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    ),
];

/// Plain http is accepted only from this host itself: anyone on the path
/// could otherwise swap the IdP's keys.
fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

pub(super) fn validate(
    raw: &raw::Saml,
    domain: &str,
    scheme: Scheme,
    state_dir: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<Saml> {
    let mut add = |field: &str, message: String| {
        errs.push(FieldError {
            field: format!("saml.{field}"),
            message,
        });
    };
    let metadata = match (&raw.idp_metadata_url, &raw.idp_metadata_file) {
        (Some(u), None) => match Url::parse(u) {
            Ok(url)
                if url.scheme() == "https"
                    || (url.scheme() == "http" && is_loopback_host(&url)) =>
            {
                if raw.idp_metadata_refresh < Duration::from_secs(1) {
                    add(
                        "idp_metadata_refresh",
                        "must be at least 1s; `1h` is a good value".into(),
                    );
                }
                Some(MetadataSource::Url {
                    url,
                    refresh: raw.idp_metadata_refresh,
                })
            }
            Ok(_) => {
                add(
                    "idp_metadata_url",
                    format!(
                        "`{u}` must be an https:// URL (plain http only on localhost), or download the metadata and use `idp_metadata_file`"
                    ),
                );
                None
            }
            Err(e) => {
                add(
                    "idp_metadata_url",
                    format!(
                        "`{u}` is not a URL ({e}); copy the metadata URL from the IdP's admin console"
                    ),
                );
                None
            }
        },
        (None, Some(f)) => {
            if let Err(e) = std::fs::metadata(f) {
                add(
                    "idp_metadata_file",
                    format!(
                        "cannot read `{}`: {e}; check the path and that the portcullis user may read it",
                        f.display()
                    ),
                );
            }
            Some(MetadataSource::File(f.clone()))
        }
        _ => {
            add(
                "idp_metadata_url",
                "set exactly one of `idp_metadata_url` and `idp_metadata_file` (the IdP's SAML metadata)".into(),
            );
            None
        }
    };
    let origin = format!("{}://{domain}", scheme.as_str());
    let prefix = crate::RESERVED_PREFIX;
    let sp_metadata_url = format!("{origin}{prefix}saml/metadata");
    let sp_entity_id = match raw.sp_entity_id.as_deref().map(str::trim) {
        None => sp_metadata_url.clone(),
        Some("") => {
            add(
                "sp_entity_id",
                "must not be empty; leave it out to use the default".into(),
            );
            String::new()
        }
        Some(s) => s.to_string(),
    };
    let nameid_format = match raw.nameid_format.as_deref() {
        None => None,
        Some(f) if f.starts_with("urn:") => Some(f.to_string()),
        Some(f) => {
            if let Some((_, urn)) = NAMEID_FORMATS.iter().find(|(short, _)| short == &f) {
                Some((*urn).to_string())
            } else {
                add(
                    "nameid_format",
                    format!(
                        "`{f}` is not a NameID format: use emailAddress, persistent, transient, unspecified or a full `urn:` value"
                    ),
                );
                None
            }
        }
    };
    if raw.clock_skew > Duration::from_secs(600) {
        add(
            "clock_skew",
            "must be at most 10m; fix the clocks (NTP) rather than widening the window".into(),
        );
    }
    let lim = &raw.acs_verify_limit;
    for (field, value) in [("rate", lim.rate), ("per_client_rate", lim.per_client_rate)] {
        if !(value.is_finite() && value > 0.0 && value <= 10_000.0) {
            add(
                &format!("acs_verify_limit.{field}"),
                format!(
                    "`{value}` must be a number of verifications a second above 0 and at most 10000"
                ),
            );
        }
    }
    for (field, value) in [
        ("burst", lim.burst),
        ("per_client_burst", lim.per_client_burst),
        ("per_transaction", lim.per_transaction),
    ] {
        if !(1..=100_000).contains(&value) {
            add(
                &format!("acs_verify_limit.{field}"),
                format!("`{value}` must be between 1 and 100000"),
            );
        }
    }
    let mut attributes = AttributeOverrides::default();
    let a = raw.attributes.clone();
    let mut names = |field: &str, v: Option<OneOrMany>| -> Option<Vec<String>> {
        let v = v?.into_vec();
        if v.is_empty() || v.iter().any(|s| s.trim().is_empty()) {
            add(
                &format!("attributes.{field}"),
                "must name at least one SAML attribute, none empty".into(),
            );
        }
        Some(v)
    };
    attributes.user = names("user", a.user);
    attributes.email = names("email", a.email);
    attributes.name = names("name", a.name);
    attributes.groups = names("groups", a.groups);
    for (k, v) in a.extra {
        if let Some(v) = names(&format!("extra.{k}"), Some(v)) {
            attributes.extra.push((k, v));
        }
    }
    if raw.sp_key_file.is_some() != raw.sp_cert_file.is_some() {
        errs.push(FieldError {
            field: "saml.sp_key_file".into(),
            message: "set both `sp_key_file` and `sp_cert_file`, or neither (then a pair is generated in the state directory)".into(),
        });
    }
    Some(Saml {
        metadata: metadata?,
        metadata_cache_file: state_dir.join("saml-idp-metadata.xml"),
        metadata_signing_cert_file: raw.idp_metadata_signing_cert_file.clone(),
        sp_entity_id,
        acs_url: format!("{origin}{prefix}saml/acs"),
        slo_url: format!("{origin}{prefix}saml/slo"),
        sp_metadata_url,
        sp_key_file: raw
            .sp_key_file
            .clone()
            .unwrap_or_else(|| state_dir.join("saml-sp.key")),
        sp_cert_file: raw
            .sp_cert_file
            .clone()
            .unwrap_or_else(|| state_dir.join("saml-sp.crt")),
        sign_requests: raw.sign_requests,
        nameid_format,
        clock_skew: raw.clock_skew,
        allow_idp_initiated: raw.allow_idp_initiated,
        attributes,
        acs_verify_limit: raw.acs_verify_limit.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::from_yaml_str;
    use super::*;

    const MIN: &str = "domain: app.example.com\nupstream:\n  url: http://127.0.0.1:3000\n";

    fn fields(yaml: &str) -> Vec<String> {
        match from_yaml_str(yaml) {
            Ok(_) => vec![],
            Err(e) => e.fields().into_iter().map(|f| f.field).collect(),
        }
    }

    #[test]
    fn defaults_follow_the_domain() {
        let c = from_yaml_str(&format!(
            "{MIN}state_dir: /var/lib/p\nsaml:\n  idp_metadata_url: https://idp.example.com/md\n"
        ))
        .unwrap();
        let s = c.saml.unwrap();
        assert_eq!(
            s.sp_entity_id,
            "https://app.example.com/.portcullis/saml/metadata"
        );
        assert_eq!(s.acs_url, "https://app.example.com/.portcullis/saml/acs");
        assert_eq!(s.clock_skew, Duration::from_secs(60));
        assert!(!s.sign_requests && !s.allow_idp_initiated);
        assert_eq!(s.sp_key_file, PathBuf::from("/var/lib/p/saml-sp.key"));
        assert_eq!(
            s.metadata_cache_file,
            PathBuf::from("/var/lib/p/saml-idp-metadata.xml")
        );
        assert!(
            matches!(s.metadata, MetadataSource::Url { refresh, .. } if refresh == Duration::from_secs(3600))
        );
    }

    #[test]
    fn acs_verify_limit_defaults_and_bounds() {
        let c = from_yaml_str(&format!(
            "{MIN}saml:\n  idp_metadata_url: https://idp.example.com/md\n"
        ))
        .unwrap();
        let l = c.saml.unwrap().acs_verify_limit;
        // The documented defaults (docs/saml.md).
        assert_eq!(
            (
                l.rate,
                l.burst,
                l.per_client_rate,
                l.per_client_burst,
                l.per_transaction
            ),
            (20.0, 40, 1.0, 10, 3)
        );
        let c = from_yaml_str(&format!(
            "{MIN}saml:\n  idp_metadata_url: https://i/md\n  acs_verify_limit:\n    per_client_rate: 0.5\n    per_transaction: 1\n"
        ))
        .unwrap();
        let l = c.saml.unwrap().acs_verify_limit;
        assert_eq!(
            (l.per_client_rate, l.per_transaction, l.burst),
            (0.5, 1, 40)
        );
        let mut bad = Vec::new();
        for (k, v) in [
            ("rate", "0"),
            ("rate", "-1"),
            ("rate", "20000"),
            ("per_client_rate", "0"),
            ("burst", "0"),
            ("per_client_burst", "0"),
            ("per_transaction", "0"),
            ("per_transaction", "1000000"),
        ] {
            let got = fields(&format!(
                "{MIN}saml:\n  idp_metadata_url: https://i/md\n  acs_verify_limit:\n    {k}: {v}\n"
            ));
            if got != vec![format!("saml.acs_verify_limit.{k}")] {
                bad.push(format!("{k}: {v} -> {got:?}"));
            }
        }
        assert!(
            fields(&format!(
                "{MIN}saml:\n  idp_metadata_url: https://i/md\n  acs_verify_limit:\n    per_ip: 3\n"
            ))
            .len()
                == 1,
            "unknown keys are refused"
        );
        assert!(bad.is_empty(), "{bad:#?}");
    }

    #[test]
    fn needs_exactly_one_metadata_source() {
        assert_eq!(
            fields(&format!("{MIN}saml:\n  sign_requests: true\n")),
            vec!["saml.idp_metadata_url"]
        );
        assert_eq!(
            fields(&format!(
                "{MIN}saml:\n  idp_metadata_url: https://i/md\n  idp_metadata_file: /x\n"
            )),
            vec!["saml.idp_metadata_url"]
        );
    }

    #[test]
    fn plain_http_metadata_only_on_loopback() {
        assert_eq!(
            fields(&format!(
                "{MIN}saml:\n  idp_metadata_url: http://idp.example.com/md\n"
            )),
            vec!["saml.idp_metadata_url"]
        );
        assert!(
            fields(&format!(
                "{MIN}saml:\n  idp_metadata_url: http://127.0.0.1:8080/md\n"
            ))
            .is_empty()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_their_field() {
        assert_eq!(
            fields(&format!(
                "{MIN}saml:\n  idp_metadata_url: https://i/md\n  allow_idp_initated: true\n"
            )),
            vec!["saml.allow_idp_initated"]
        );
        let f = fields(&format!(
            "{MIN}saml:\n  idp_metadata_url: https://i/md\n  nameid_format: email\n  clock_skew: 1h\n  attributes:\n    groups: []\n"
        ));
        assert_eq!(
            f,
            vec![
                "saml.nameid_format",
                "saml.clock_skew",
                "saml.attributes.groups"
            ]
        );
        assert_eq!(
            fields(&format!(
                "{MIN}saml:\n  idp_metadata_url: https://i/md\n  sp_key_file: /k\n"
            )),
            vec!["saml.sp_key_file"]
        );
    }

    #[test]
    fn overrides_and_nameid_shortcuts() {
        let c = from_yaml_str(&format!(
            "{MIN}saml:\n  idp_metadata_url: https://i/md\n  nameid_format: persistent\n  attributes:\n    user: employeeNumber\n    groups: [memberOf, roles]\n    extra:\n      cost_center: costCenter\n"
        ))
        .unwrap();
        let s = c.saml.unwrap();
        assert_eq!(
            s.nameid_format.as_deref(),
            Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
        );
        assert_eq!(s.attributes.user, Some(vec!["employeeNumber".to_string()]));
        assert_eq!(
            s.attributes.groups,
            Some(vec!["memberOf".to_string(), "roles".to_string()])
        );
        assert_eq!(
            s.attributes.extra,
            vec![("cost_center".to_string(), vec!["costCenter".to_string()])]
        );
    }
}
