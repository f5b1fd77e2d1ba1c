//! The checked `oidc:` section ([`Oidc`]) and its checks; the YAML form is
//! `raw::Oidc`.

use std::time::Duration;

use url::Url;

use super::FieldError;
use super::raw;

/// Used as written: the claim names need no check beyond their types.
pub use super::raw::oidc::{Claims, ResponseMode, TokenEndpointAuth};

/// Checked OIDC settings.
#[derive(Clone)]
pub struct Oidc {
    /// Exactly as configured: ID tokens must carry this very string (a URL
    /// parser would add a trailing `/`).
    pub issuer: String,
    pub discovery: bool,
    pub authorization_endpoint: Option<Url>,
    pub token_endpoint: Option<Url>,
    pub userinfo_endpoint: Option<Url>,
    pub jwks_uri: Option<Url>,
    pub end_session_endpoint: Option<Url>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub token_endpoint_auth: TokenEndpointAuth,
    pub scopes: Vec<String>,
    pub claims: Claims,
    pub userinfo: bool,
    pub extra_auth_params: Vec<(String, String)>,
    pub allowed_algorithms: Vec<String>,
    pub pkce: bool,
    pub clock_skew: Duration,
    pub allowed_email_domains: Vec<String>,
    pub allow_unverified_email: bool,
    pub logout_at_provider: bool,
    pub response_mode: ResponseMode,
    pub refresh_interval: Duration,
    pub timeout: Duration,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

const KNOWN_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    "HS256", "HS384", "HS512",
];

/// http is allowed only for a provider on this machine (tests, demos).
fn provider_url(raw: &str, field: &str, errs: &mut Vec<FieldError>) -> Option<Url> {
    let err = |m: String| FieldError {
        field: field.to_string(),
        message: m,
    };
    match Url::parse(raw) {
        Ok(u) if u.scheme() == "https" => Some(u),
        Ok(u) if u.scheme() == "http" && is_loopback(&u) => Some(u),
        Ok(_) => {
            errs.push(err(format!("`{raw}` must be an https:// URL (plain http only for a provider on 127.0.0.1 or localhost)")));
            None
        }
        Err(e) => {
            errs.push(err(format!("`{raw}` is not a URL ({e})")));
            None
        }
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

pub(super) fn validate(raw: &raw::Oidc, errs: &mut Vec<FieldError>) -> Option<Oidc> {
    let before = errs.len();
    let mut add = |field: &str, message: String| {
        errs.push(FieldError {
            field: format!("oidc.{field}"),
            message,
        });
    };
    let mut url_errs = Vec::new();
    let issuer = provider_url(&raw.issuer, "oidc.issuer", &mut url_errs);
    let mut opt = |v: &Option<String>, f: &str| {
        v.as_deref()
            .and_then(|s| provider_url(s, &format!("oidc.{f}"), &mut url_errs))
    };
    let authorization_endpoint = opt(&raw.authorization_endpoint, "authorization_endpoint");
    let token_endpoint = opt(&raw.token_endpoint, "token_endpoint");
    let userinfo_endpoint = opt(&raw.userinfo_endpoint, "userinfo_endpoint");
    let jwks_uri = opt(&raw.jwks_uri, "jwks_uri");
    let end_session_endpoint = opt(&raw.end_session_endpoint, "end_session_endpoint");
    if !raw.discovery {
        for (v, f) in [
            (&raw.authorization_endpoint, "authorization_endpoint"),
            (&raw.token_endpoint, "token_endpoint"),
            (&raw.jwks_uri, "jwks_uri"),
        ] {
            if v.is_none() {
                add(f, "is required when `discovery: false`; copy it from the provider's documentation".into());
            }
        }
    }
    if raw.client_id.trim().is_empty() {
        add(
            "client_id",
            "is required: the client id registered at the provider".into(),
        );
    }
    let client_secret = match (&raw.client_secret, &raw.client_secret_file) {
        (Some(s), None) => Some(s.clone()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(s) => Some(s.trim().to_string()),
            Err(e) => {
                add(
                    "client_secret_file",
                    format!(
                        "cannot read `{}`: {e}; check the path and that the portcullis user may read it",
                        path.display()
                    ),
                );
                None
            }
        },
        (None, None) => {
            add(
                "client_secret",
                "is required (or `client_secret_file`): Portcullis is a confidential client".into(),
            );
            None
        }
        (Some(_), Some(_)) => {
            add(
                "client_secret",
                "set only one of `client_secret` and `client_secret_file`".into(),
            );
            None
        }
    };
    if !raw.scopes.iter().any(|s| s == "openid") {
        add("scopes", "must include `openid`".into());
    }
    for (i, alg) in raw.allowed_algorithms.iter().enumerate() {
        if alg.eq_ignore_ascii_case("none") {
            add(
                &format!("allowed_algorithms[{i}]"),
                "`none` is never allowed: an unsigned ID token proves nothing".into(),
            );
        } else if !KNOWN_ALGORITHMS.contains(&alg.as_str()) {
            add(
                &format!("allowed_algorithms[{i}]"),
                format!(
                    "`{alg}` is not a JWS algorithm; use one of {}",
                    KNOWN_ALGORITHMS.join(", ")
                ),
            );
        }
    }
    if raw.allowed_algorithms.is_empty() {
        add(
            "allowed_algorithms",
            "must list at least one algorithm, e.g. RS256".into(),
        );
    }
    if raw.clock_skew > Duration::from_secs(600) {
        add(
            "clock_skew",
            "must be at most 10m; fix the clocks (NTP) instead".into(),
        );
    }
    for reserved in [
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "redirect_uri",
        "client_id",
        "response_type",
        "scope",
        "response_mode",
    ] {
        if raw.extra_auth_params.contains_key(reserved) {
            add(
                &format!("extra_auth_params.{reserved}"),
                "is set by Portcullis itself and cannot be overridden".into(),
            );
        }
    }
    errs.append(&mut url_errs);
    if errs.len() != before {
        return None;
    }
    issuer?;
    Some(Oidc {
        issuer: raw.issuer.trim().to_string(),
        discovery: raw.discovery,
        authorization_endpoint,
        token_endpoint,
        userinfo_endpoint,
        jwks_uri,
        end_session_endpoint,
        client_id: raw.client_id.clone(),
        client_secret,
        token_endpoint_auth: raw.token_endpoint_auth,
        scopes: raw.scopes.clone(),
        claims: raw.claims.clone(),
        userinfo: raw.userinfo,
        extra_auth_params: raw.extra_auth_params.clone().into_iter().collect(),
        allowed_algorithms: raw.allowed_algorithms.clone(),
        pkce: raw.pkce,
        clock_skew: raw.clock_skew,
        allowed_email_domains: raw
            .allowed_email_domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .collect(),
        allow_unverified_email: raw.allow_unverified_email,
        logout_at_provider: raw.logout_at_provider,
        response_mode: raw.response_mode,
        refresh_interval: raw.refresh_interval.max(Duration::from_secs(60)),
        timeout: raw.timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::super::from_yaml_str;

    const BASE: &str = "domain: app.example.com\nupstream:\n  url: http://127.0.0.1:3000\n";

    fn yaml(oidc: &str) -> String {
        format!(
            "{BASE}oidc:\n  issuer: https://idp.example.com\n  client_id: portcullis\n  client_secret: s3cret\n{oidc}"
        )
    }

    /// The fields named by the errors, with their messages.
    fn errors(oidc: &str) -> Vec<(String, String)> {
        match from_yaml_str(&yaml(oidc)) {
            Ok(_) => vec![],
            Err(e) => e
                .fields()
                .into_iter()
                .map(|f| (f.field, f.message))
                .collect(),
        }
    }

    fn fields(oidc: &str) -> Vec<String> {
        errors(oidc).into_iter().map(|(f, _)| f).collect()
    }

    fn checked(oidc: &str) -> super::Oidc {
        from_yaml_str(&yaml(oidc))
            .unwrap_or_else(|e| panic!("{e}"))
            .oidc
            .expect("oidc section")
    }

    #[test]
    fn defaults_are_the_asymmetric_algorithms_pkce_and_a_minute_of_skew() {
        let o = checked("");
        assert_eq!(
            o.allowed_algorithms,
            [
                "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                "EdDSA"
            ]
        );
        assert!(o.pkce);
        assert_eq!(o.clock_skew.as_secs(), 60);
        assert!(!o.allow_unverified_email);
        assert_eq!(o.scopes, ["openid", "email", "profile"]);
    }

    #[test]
    fn alg_none_is_refused_in_any_spelling() {
        let mut failures = Vec::new();
        for none in ["none", "None", "NONE"] {
            let e = errors(&format!("  allowed_algorithms: [RS256, {none}]\n"));
            let ok = e.len() == 1
                && e[0].0 == "oidc.allowed_algorithms[1]"
                && e[0].1.contains("`none` is never allowed");
            if !ok {
                failures.push(format!("{none}: {e:?}"));
            }
        }
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn hmac_only_when_listed() {
        // Not among the defaults: an ID token signed with the client secret
        // is refused unless the operator lists an HMAC algorithm.
        let o = checked("");
        assert!(!o.allowed_algorithms.iter().any(|a| a.starts_with("HS")));
        let o = checked("  allowed_algorithms: [HS256]\n");
        assert_eq!(o.allowed_algorithms, ["HS256"]);
    }

    #[test]
    fn unknown_or_no_algorithms_are_refused() {
        let e = errors("  allowed_algorithms: [RS256, rs256, HS1]\n");
        let f: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            f,
            ["oidc.allowed_algorithms[1]", "oidc.allowed_algorithms[2]"]
        );
        assert!(e[0].1.contains("use one of RS256"), "{}", e[0].1);
        assert_eq!(
            fields("  allowed_algorithms: []\n"),
            ["oidc.allowed_algorithms"]
        );
    }

    #[test]
    fn plain_http_only_for_a_provider_on_this_machine() {
        let with_issuer = |issuer: &str| {
            format!(
                "{BASE}oidc:\n  issuer: {issuer}\n  client_id: portcullis\n  client_secret: s3cret\n"
            )
        };
        let mut failures = Vec::new();
        for ok in [
            "https://idp.example.com",
            "https://idp.example.com/realms/x/",
            "http://127.0.0.1:9000",
            "http://127.8.9.10",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            if let Err(e) = from_yaml_str(&with_issuer(ok)) {
                failures.push(format!("{ok} refused: {e}"));
            }
        }
        for bad in [
            "http://idp.example.com",
            "http://10.0.0.5",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "http://[::ffff:10.0.0.1]",
            "ftp://127.0.0.1",
            "idp.example.com",
        ] {
            let got = match from_yaml_str(&with_issuer(bad)) {
                Ok(_) => vec![],
                Err(e) => e.fields(),
            };
            let named = got.len() == 1 && got[0].field == "oidc.issuer";
            if !named {
                failures.push(format!("{bad}: {got:?}"));
            }
        }
        // Each endpoint is held to the same rule.
        for field in [
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "jwks_uri",
            "end_session_endpoint",
        ] {
            let got = fields(&format!("  {field}: http://idp.example.com/x\n"));
            if got != [format!("oidc.{field}")] {
                failures.push(format!("{field}: {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        let (_, message) = &errors("  token_endpoint: http://idp.example.com/token\n")[0];
        assert!(message.contains("must be an https:// URL"), "{message}");
    }

    #[test]
    fn the_issuer_is_kept_exactly_as_written() {
        // ID tokens must carry this very string: no trailing slash added.
        assert_eq!(checked("").issuer, "https://idp.example.com");
        let o = from_yaml_str(&format!(
            "{BASE}oidc:\n  issuer: https://idp.example.com/tenant/\n  client_id: c\n  client_secret: s\n"
        ))
        .unwrap()
        .oidc
        .unwrap();
        assert_eq!(o.issuer, "https://idp.example.com/tenant/");
    }

    #[test]
    fn without_discovery_the_endpoints_are_required() {
        assert_eq!(
            fields("  discovery: false\n"),
            [
                "oidc.authorization_endpoint",
                "oidc.token_endpoint",
                "oidc.jwks_uri"
            ]
        );
        let o = checked(
            "  discovery: false\n  authorization_endpoint: https://idp.example.com/auth\n  token_endpoint: https://idp.example.com/token\n  jwks_uri: https://idp.example.com/jwks\n",
        );
        assert_eq!(
            o.jwks_uri.map(|u| u.to_string()).as_deref(),
            Some("https://idp.example.com/jwks")
        );
    }

    #[test]
    fn exactly_one_client_secret() {
        let none =
            format!("{BASE}oidc:\n  issuer: https://idp.example.com\n  client_id: portcullis\n");
        let e = from_yaml_str(&none).unwrap_err().fields();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "oidc.client_secret");
        assert!(
            e[0].message.contains("confidential client"),
            "{}",
            e[0].message
        );
        assert_eq!(
            fields("  client_secret_file: /nonexistent/portcullis/secret\n"),
            ["oidc.client_secret"],
            "both given"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-the-file\n").unwrap();
        let o = from_yaml_str(&format!(
            "{BASE}oidc:\n  issuer: https://idp.example.com\n  client_id: portcullis\n  client_secret_file: {}\n",
            file.display()
        ))
        .unwrap()
        .oidc
        .unwrap();
        assert_eq!(o.client_secret.as_deref(), Some("from-the-file"));
        let missing = from_yaml_str(&format!(
            "{BASE}oidc:\n  issuer: https://idp.example.com\n  client_id: portcullis\n  client_secret_file: {}\n",
            dir.path().join("nope").display()
        ))
        .unwrap_err()
        .fields();
        assert_eq!(missing[0].field, "oidc.client_secret_file");
    }

    #[test]
    fn client_id_and_openid_scope_are_required() {
        let blank = format!(
            "{BASE}oidc:\n  issuer: https://idp.example.com\n  client_id: ' '\n  client_secret: s\n"
        );
        let e = from_yaml_str(&blank).unwrap_err().fields();
        assert_eq!(e[0].field, "oidc.client_id");
        assert_eq!(fields("  scopes: [email, profile]\n"), ["oidc.scopes"]);
    }

    #[test]
    fn clock_skew_is_at_most_ten_minutes() {
        assert_eq!(checked("  clock_skew: 10m\n").clock_skew.as_secs(), 600);
        assert_eq!(fields("  clock_skew: 601s\n"), ["oidc.clock_skew"]);
    }

    #[test]
    fn flow_parameters_cannot_be_overridden() {
        let mut failures = Vec::new();
        for p in [
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "client_id",
            "response_type",
            "scope",
            "response_mode",
        ] {
            let got = fields(&format!("  extra_auth_params:\n    {p}: x\n"));
            if got != [format!("oidc.extra_auth_params.{p}")] {
                failures.push(format!("{p}: {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{failures:?}");
        let o = checked("  extra_auth_params:\n    prompt: login\n");
        assert_eq!(o.extra_auth_params, [("prompt".into(), "login".into())]);
    }

    #[test]
    fn email_domains_are_normalised_and_refresh_is_at_least_a_minute() {
        let o = checked(
            "  allowed_email_domains: ['@Example.COM', ' corp.example ']\n  refresh_interval: 5s\n",
        );
        assert_eq!(o.allowed_email_domains, ["example.com", "corp.example"]);
        assert_eq!(o.refresh_interval.as_secs(), 60);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert_eq!(
            fields("  alowed_algorithms: [RS256]\n"),
            ["oidc.alowed_algorithms"]
        );
    }
}
