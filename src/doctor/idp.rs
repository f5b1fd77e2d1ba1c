//! The identity provider as doctor sees it from this machine: reachable,
//! its discovery document or metadata valid, the issuer the configured one,
//! signing certificates not expiring, the OIDC client and redirect URI
//! accepted, and this machine's clock agreeing with the IdP's `Date`.

use std::time::{Duration, SystemTime};

use base64::Engine;
use serde_json::Value;

use super::Check;
use crate::config::Config;
use crate::config::oidc::{Oidc, TokenEndpointAuth};
use crate::config::saml::{MetadataSource, Saml};

/// A certificate expiring sooner than this is a warning.
const EXPIRY_WARN: Duration = Duration::from_secs(30 * 86400);
/// A clock further off than this is a warning (a failure beyond the
/// configured `clock_skew`, where logins start to fail).
const CLOCK_WARN: Duration = Duration::from_secs(30);

pub async fn checks(config: &Config) -> Vec<Check> {
    if let Some(o) = &config.oidc {
        return oidc(config, o).await;
    }
    if let Some(s) = &config.saml {
        return saml(s).await;
    }
    vec![Check::warn(
        "idp",
        "no identity provider is configured: only passthrough paths and tokens work",
        "add an `oidc:` or `saml:` section (`portcullis new` writes one)",
    )]
}

struct Fetched {
    status: u16,
    date: Option<SystemTime>,
    body: String,
}

fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .map_err(|e| e.to_string())
}

async fn read(resp: reqwest::Response) -> Result<Fetched, String> {
    let status = resp.status().as_u16();
    let date = resp
        .headers()
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| chrono::DateTime::parse_from_rfc2822(s).ok())
        .map(SystemTime::from);
    let body = resp.text().await.map_err(|e| e.to_string())?;
    Ok(Fetched { status, date, body })
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Fetched, String> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| crate::idp::oidc::provider::error_chain(&e))?;
    read(resp).await
}

fn clock(date: Option<SystemTime>, skew: Duration, from: &str) -> Check {
    let Some(date) = date else {
        return Check::warn(
            "clock",
            format!("{from} sent no Date header; the clock offset is unknown"),
            "make sure NTP runs on this machine (`timedatectl`)",
        );
    };
    let now = SystemTime::now();
    let (off, sign) = match date.duration_since(now) {
        Ok(d) => (d, "ahead of"),
        Err(e) => (e.duration(), "behind"),
    };
    // The Date header has whole seconds.
    let secs = off.as_secs();
    let msg = format!("the IdP's clock is {secs} s {sign} this machine's");
    let fix = "synchronise this machine's clock (NTP: `timedatectl set-ntp true`), or the IdP's";
    if off > skew.max(CLOCK_WARN) {
        Check::fail(
            "clock",
            format!(
                "{msg}: more than the allowed clock_skew of {} s, so logins fail",
                skew.as_secs()
            ),
            fix,
        )
    } else if off > CLOCK_WARN {
        Check::warn("clock", msg, fix)
    } else {
        Check::ok("clock", msg)
    }
}

fn cert_expiry(what: &str, der: &[u8]) -> Check {
    let cert = match openssl::x509::X509::from_der(der) {
        Ok(c) => c,
        Err(e) => {
            return Check::fail(
                "certificates",
                format!("{what}: not a certificate ({e})"),
                "fix the certificate at the IdP",
            );
        }
    };
    let now = match openssl::asn1::Asn1Time::days_from_now(0) {
        Ok(t) => t,
        Err(e) => return Check::warn("certificates", format!("{what}: {e}"), "retry"),
    };
    let left = match now.diff(cert.not_after()) {
        Ok(d) => i64::from(d.days) * 86400 + i64::from(d.secs),
        Err(e) => return Check::warn("certificates", format!("{what}: {e}"), "retry"),
    };
    let until = cert.not_after().to_string();
    if left <= 0 {
        Check::fail(
            "certificates",
            format!("{what} expired on {until}"),
            "roll the signing certificate over at the IdP (and publish the new one in its metadata)",
        )
    } else if left.unsigned_abs() < EXPIRY_WARN.as_secs() {
        Check::warn(
            "certificates",
            format!("{what} expires on {until}, in {} days", left / 86400),
            "plan the rollover now: publish the next certificate in the IdP's metadata before this one expires",
        )
    } else {
        Check::ok("certificates", format!("{what} valid until {until}"))
    }
}

async fn oidc(config: &Config, o: &Oidc) -> Vec<Check> {
    let mut out = Vec::new();
    let http = match client(o.timeout) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail(
                "idp",
                format!("HTTP client: {e}"),
                "report this as a bug",
            ));
            return out;
        }
    };
    let unreachable = |url: &str, e: &str| {
        Check::fail(
            "idp",
            format!("cannot reach the OpenID provider at {url}: {e}"),
            "check oidc.issuer and that this machine reaches the provider (DNS, firewall, proxy); running instances keep serving from their cached discovery document",
        )
    };
    let mut endpoints = Endpoints {
        authorization: o
            .authorization_endpoint
            .as_ref()
            .map(std::string::ToString::to_string),
        token: o
            .token_endpoint
            .as_ref()
            .map(std::string::ToString::to_string),
        jwks: o.jwks_uri.as_ref().map(std::string::ToString::to_string),
    };
    let mut date = None;
    if o.discovery {
        let url = format!(
            "{}/.well-known/openid-configuration",
            o.issuer.trim_end_matches('/')
        );
        let f = match get(&http, &url).await {
            Ok(f) => f,
            Err(e) => {
                out.push(unreachable(&url, &e));
                return out;
            }
        };
        date = f.date;
        if f.status != 200 {
            out.push(Check::fail(
                "idp",
                format!("{url} answered HTTP {}", f.status),
                "check oidc.issuer: it is the URL before /.well-known/openid-configuration (Keycloak: https://HOST/realms/REALM)",
            ));
            return out;
        }
        let doc: Value = match serde_json::from_str(&f.body) {
            Ok(v) => v,
            Err(e) => {
                out.push(Check::fail(
                    "discovery",
                    format!("{url} is not JSON ({e})"),
                    "check oidc.issuer: it must point at the OpenID provider itself",
                ));
                return out;
            }
        };
        out.push(Check::ok("idp", format!("reachable: {url}")));
        let s = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
        let missing: Vec<&str> = ["authorization_endpoint", "token_endpoint", "jwks_uri"]
            .into_iter()
            .filter(|k| s(k).is_none())
            .collect();
        if missing.is_empty() {
            out.push(Check::ok(
                "discovery",
                "the discovery document names the authorization, token and key endpoints",
            ));
        } else {
            out.push(Check::fail(
                "discovery",
                format!("the discovery document lacks {}", missing.join(", ")),
                "set the missing endpoints under `oidc:` (and `discovery: false`), or fix the provider",
            ));
        }
        match s("issuer") {
            Some(i) if i == o.issuer => out.push(Check::ok("issuer", format!("`{i}` as configured"))),
            Some(i) => out.push(Check::fail(
                "issuer",
                format!("the provider calls itself `{i}`, the configuration says `{}`; every ID token would be refused", o.issuer),
                format!("set `oidc.issuer: {i}` (exactly, including any trailing `/`)"),
            )),
            None => out.push(Check::fail(
                "issuer",
                "the discovery document has no `issuer`",
                "fix the provider's configuration",
            )),
        }
        endpoints.authorization = endpoints.authorization.or(s("authorization_endpoint"));
        endpoints.token = endpoints.token.or(s("token_endpoint"));
        endpoints.jwks = endpoints.jwks.or(s("jwks_uri"));
    }
    if let Some(jwks) = &endpoints.jwks {
        match get(&http, jwks).await {
            Err(e) => out.push(unreachable(jwks, &e)),
            Ok(f) => {
                date = date.or(f.date);
                out.extend(keys(jwks, &f));
            }
        }
    }
    out.push(clock(date, o.clock_skew, "the OpenID provider"));
    if let Some(token) = &endpoints.token {
        out.push(client_accepted(&http, o, token).await);
    }
    if let Some(auth) = &endpoints.authorization {
        out.push(redirect_accepted(&http, config, o, auth).await);
    }
    out
}

struct Endpoints {
    authorization: Option<String>,
    token: Option<String>,
    jwks: Option<String>,
}

fn keys(url: &str, f: &Fetched) -> Vec<Check> {
    let set: Option<Vec<Value>> = (f.status == 200)
        .then(|| serde_json::from_str::<Value>(&f.body).ok())
        .flatten()
        .and_then(|v| v.get("keys").and_then(Value::as_array).cloned());
    let Some(set) = set.filter(|k| !k.is_empty()) else {
        return vec![Check::fail(
            "keys",
            format!("{url} (HTTP {}) has no signing keys", f.status),
            "check the provider's jwks_uri; without keys no ID token can be verified",
        )];
    };
    let mut out = vec![Check::ok(
        "keys",
        format!("{} signing key(s) at {url}", set.len()),
    )];
    for k in &set {
        let kid = k.get("kid").and_then(Value::as_str).unwrap_or("(no kid)");
        if let Some(first) = k
            .get("x5c")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(first)
        {
            out.push(cert_expiry(&format!("the certificate of key {kid}"), &der));
        }
    }
    out
}

/// A made-up code at the token endpoint: `invalid_grant` means the client
/// authenticated, `invalid_client` that id or secret are wrong.
async fn client_accepted(http: &reqwest::Client, o: &Oidc, token: &str) -> Check {
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", "portcullis-doctor-probe".to_string()),
        ("redirect_uri", "https://invalid.example/".to_string()),
    ];
    let secret = o.client_secret.clone().unwrap_or_default();
    let mut req = http.post(token);
    match o.token_endpoint_auth {
        TokenEndpointAuth::ClientSecretBasic => {
            req = req.basic_auth(form_urlencode(&o.client_id), Some(form_urlencode(&secret)));
        }
        TokenEndpointAuth::ClientSecretPost => {
            form.push(("client_id", o.client_id.clone()));
            form.push(("client_secret", secret));
        }
    }
    let f = match req.form(&form).send().await {
        Ok(r) => read(r).await,
        Err(e) => Err(crate::idp::oidc::provider::error_chain(&e)),
    };
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            return Check::fail(
                "client",
                format!("cannot reach the token endpoint {token}: {e}"),
                "check that this machine reaches the provider's token endpoint",
            );
        }
    };
    let error = serde_json::from_str::<Value>(&f.body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string));
    match error.as_deref() {
        Some("invalid_client" | "unauthorized_client") => Check::fail(
            "client",
            format!(
                "the token endpoint refused client `{}` ({})",
                o.client_id,
                error.as_deref().unwrap_or_default()
            ),
            "check oidc.client_id and the secret (client_secret / client_secret_file) against the client registered at the provider, and oidc.token_endpoint_auth",
        ),
        Some(_) => Check::ok(
            "client",
            format!(
                "the token endpoint accepted client `{}`'s credentials",
                o.client_id
            ),
        ),
        None => Check::warn(
            "client",
            format!(
                "the token endpoint answered HTTP {} without an OAuth error",
                f.status
            ),
            "check the client at the provider; doctor could not tell whether it is accepted",
        ),
    }
}

/// RFC 6749 §2.3.1: HTTP Basic client credentials are form-encoded first.
fn form_urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Starts an authorization request as a browser would: providers answer an
/// unregistered redirect URI with an error page (4xx) instead of a login.
async fn redirect_accepted(http: &reqwest::Client, config: &Config, o: &Oidc, auth: &str) -> Check {
    let redirect = format!(
        "{}{}{}",
        config.public_origin(),
        crate::RESERVED_PREFIX,
        crate::idp::oidc::CALLBACK
    );
    let url = match url::Url::parse_with_params(
        auth,
        [
            ("client_id", o.client_id.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("response_type", "code"),
            ("scope", &o.scopes.join(" ")),
            ("state", "portcullis-doctor"),
            ("nonce", "portcullis-doctor"),
        ],
    ) {
        Ok(u) => u,
        Err(e) => {
            return Check::fail(
                "redirect_uri",
                format!("the authorization endpoint `{auth}` is not a URL: {e}"),
                "fix the provider's discovery document or oidc.authorization_endpoint",
            );
        }
    };
    match http.get(url).send().await {
        Err(e) => Check::fail(
            "redirect_uri",
            format!(
                "cannot reach the authorization endpoint: {}",
                crate::idp::oidc::provider::error_chain(&e)
            ),
            "browsers must reach it too; check oidc.issuer",
        ),
        Ok(r) if r.status().is_client_error() => Check::fail(
            "redirect_uri",
            format!(
                "the provider refused an authorization request for `{redirect}` (HTTP {}): the redirect URI is not registered, or the client id is unknown",
                r.status().as_u16()
            ),
            format!(
                "register `{redirect}` as a redirect URI of client `{}` at the provider",
                o.client_id
            ),
        ),
        Ok(r) => Check::ok(
            "redirect_uri",
            format!(
                "the provider accepts `{redirect}` (HTTP {})",
                r.status().as_u16()
            ),
        ),
    }
}

async fn saml(s: &Saml) -> Vec<Check> {
    let mut out = Vec::new();
    let (xml, source, date) = match &s.metadata {
        MetadataSource::File(p) => match crate::idp::saml::metadata::read_file(p) {
            Ok(x) => (x, p.display().to_string(), None),
            Err(e) => {
                out.push(Check::fail(
                    "metadata",
                    e.to_string(),
                    "check saml.idp_metadata_file",
                ));
                return out;
            }
        },
        MetadataSource::Url { url, .. } => {
            let fetched = match client(Duration::from_secs(10)) {
                Ok(c) => get(&c, url.as_str()).await,
                Err(e) => Err(e),
            };
            match fetched {
                Err(e) => {
                    out.push(Check::fail(
                        "idp",
                        format!("cannot reach the SAML IdP's metadata at {url}: {e}"),
                        "check saml.idp_metadata_url and that this machine reaches the IdP (DNS, firewall, proxy); running instances keep their cached metadata",
                    ));
                    return out;
                }
                Ok(f) if f.status != 200 => {
                    out.push(Check::fail(
                        "idp",
                        format!("{url} answered HTTP {}", f.status),
                        "copy the metadata URL again from the IdP's admin console",
                    ));
                    return out;
                }
                Ok(f) => {
                    out.push(Check::ok("idp", format!("reachable: {url}")));
                    (f.body, url.to_string(), Some(f.date))
                }
            }
        }
    };
    let md = match crate::idp::saml::metadata::parse(&xml, &source, None, chrono::Utc::now()) {
        Ok(m) => m,
        Err(e) => {
            out.push(Check::fail(
                "metadata",
                e.to_string(),
                "point saml.idp_metadata_url / idp_metadata_file at the IdP's metadata (an EntityDescriptor with an IDPSSODescriptor)",
            ));
            return out;
        }
    };
    out.push(Check::ok(
        "metadata",
        format!(
            "IdP `{}`, single sign-on at {}{}",
            md.entity_id,
            md.sso_redirect,
            md.valid_until
                .map(|v| format!(", valid until {}", v.to_rfc3339()))
                .unwrap_or_default()
        ),
    ));
    for (i, c) in md.signing_certs.iter().enumerate() {
        out.push(cert_expiry(
            &format!("the IdP's signing certificate #{}", i + 1),
            c.der_data(),
        ));
    }
    if let Ok(pem) = std::fs::read(&s.sp_cert_file)
        && let Ok(cert) = openssl::x509::X509::from_pem(&pem)
        && let Ok(der) = cert.to_der()
    {
        out.push(cert_expiry("the SP certificate (saml.sp_cert_file)", &der));
    }
    if let Some(date) = date {
        out.push(clock(date, s.clock_skew, "the SAML IdP"));
    }
    out
}
