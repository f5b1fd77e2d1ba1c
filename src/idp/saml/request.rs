//! Messages to the IdP over the HTTP-Redirect binding (deflate, base64,
//! optional RSA-SHA256 `SigAlg`/`Signature`): the AuthnRequest that starts
//! a login and the LogoutRequest of SP-initiated Single Logout. Redirect
//! only: samael's POST form puts RelayState into HTML unescaped.

use std::io::Write;

use base64::Engine;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use openssl::pkey::{PKey, Private};
use samael::service_provider::ServiceProvider;
use url::Url;

#[derive(Debug, thiserror::Error)]
#[error("cannot build the SAML request: {0}")]
pub struct RequestError(String);

/// A request ID: an XML NCName with 160 random bits (samael's own has 32).
pub fn new_request_id() -> String {
    format!("_{}", crate::random_id(20))
}

/// The URL that sends the browser to the IdP with AuthnRequest `id`.
pub fn authn_request_url(
    sp: &ServiceProvider,
    sso_url: &str,
    id: &str,
    relay_state: &str,
    sign_with: Option<&PKey<Private>>,
) -> Result<Url, RequestError> {
    let mut req = sp
        .make_authentication_request(sso_url)
        .map_err(|e| RequestError(e.to_string()))?;
    req.id = id.to_string();
    // `false` is the default; leaving it out keeps the request minimal.
    req.force_authn = None;
    let url = match sign_with {
        Some(key) => req.signed_redirect(relay_state, key),
        None => req.redirect(relay_state),
    }
    .map_err(|e| RequestError(e.to_string()))?
    .ok_or_else(|| RequestError("the IdP has no SSO location".into()))?;
    Ok(url)
}

fn xml_text(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

/// SP-initiated logout: a LogoutRequest for `name_id`, RelayState the
/// (already checked) return path.
pub fn logout_request_url(
    sp_entity_id: &str,
    slo_url: &str,
    name_id: &str,
    relay_state: &str,
    sign_with: Option<&PKey<Private>>,
) -> Result<Url, RequestError> {
    let xml = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{}" Version="2.0" IssueInstant="{}" Destination="{}"><saml:Issuer>{}</saml:Issuer><saml:NameID>{}</saml:NameID></samlp:LogoutRequest>"#,
        new_request_id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        xml_text(slo_url),
        xml_text(sp_entity_id),
        xml_text(name_id),
    );
    redirect_url(slo_url, "SAMLRequest", &xml, relay_state, sign_with)
}

/// The answer to an IdP-initiated LogoutRequest.
pub fn logout_response_url(
    sp_entity_id: &str,
    slo_url: &str,
    in_response_to: &str,
    relay_state: &str,
    sign_with: Option<&PKey<Private>>,
) -> Result<Url, RequestError> {
    let xml = format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{}" Version="2.0" IssueInstant="{}" Destination="{}" InResponseTo="{}"><saml:Issuer>{}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
        new_request_id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        xml_text(slo_url),
        xml_text(in_response_to),
        xml_text(sp_entity_id),
    );
    redirect_url(slo_url, "SAMLResponse", &xml, relay_state, sign_with)
}

fn redirect_url(
    location: &str,
    param: &str,
    xml: &str,
    relay_state: &str,
    sign_with: Option<&PKey<Private>>,
) -> Result<Url, RequestError> {
    let mut deflated = Vec::new();
    {
        let mut enc = DeflateEncoder::new(&mut deflated, Compression::default());
        enc.write_all(xml.as_bytes())
            .map_err(|e| RequestError(e.to_string()))?;
        enc.finish().map_err(|e| RequestError(e.to_string()))?;
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(&deflated);
    let mut url = Url::parse(location).map_err(|e| RequestError(e.to_string()))?;
    url.query_pairs_mut().append_pair(param, &encoded);
    if !relay_state.is_empty() {
        url.query_pairs_mut().append_pair("RelayState", relay_state);
    }
    match sign_with {
        Some(key) => samael::crypto::sign_url(url, key).map_err(|e| RequestError(e.to_string())),
        None => Ok(url),
    }
}

/// Inflates a `SAMLRequest`/`SAMLResponse` of the Redirect binding, with
/// a cap on the inflated size (a deflate bomb stays small).
pub fn inflate(b64: &str, max: u64) -> Option<String> {
    use std::io::Read;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let mut out = String::new();
    flate2::read::DeflateDecoder::new(raw.as_slice())
        .take(max)
        .read_to_string(&mut out)
        .ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp() -> ServiceProvider {
        ServiceProvider {
            entity_id: Some("https://app.example.com/.portcullis/saml/metadata".into()),
            acs_url: Some("https://app.example.com/.portcullis/saml/acs".into()),
            ..ServiceProvider::default()
        }
    }

    fn query(url: &Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn authn_request_has_a_long_id_and_only_the_opaque_relay_state() {
        let id = new_request_id();
        let url = authn_request_url(
            &sp(),
            "https://idp.example.com/sso?x=1",
            &id,
            "abc123",
            None,
        )
        .unwrap();
        assert!(id.starts_with('_') && id.len() == 41, "{id}");
        assert_eq!(query(&url, "RelayState").as_deref(), Some("abc123"));
        assert_eq!(query(&url, "x").as_deref(), Some("1"));
        assert!(query(&url, "Signature").is_none());
        let xml = inflate(&query(&url, "SAMLRequest").unwrap(), 1 << 20).unwrap();
        assert!(xml.contains(&format!(r#"ID="{id}""#)), "{xml}");
        assert!(
            xml.contains("https://app.example.com/.portcullis/saml/acs"),
            "{xml}"
        );
        assert!(
            xml.contains(r#"Destination="https://idp.example.com/sso?x=1""#),
            "{xml}"
        );
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn signed_request_verifies_with_the_sp_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let keys = super::super::keys::SpKeys::load_or_create(
            &dir.path().join("k"),
            &dir.path().join("c"),
            "sp",
        )
        .unwrap();
        let url = authn_request_url(
            &sp(),
            "https://idp.example.com/sso",
            &new_request_id(),
            "r",
            Some(&keys.key),
        )
        .unwrap();
        assert_eq!(
            query(&url, "SigAlg").as_deref(),
            Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
        );
        let v = samael::crypto::UrlVerifier::from_x509(&samael::crypto::CertificateDer::from(
            keys.cert_der(),
        ))
        .unwrap();
        assert!(v.verify_signed_request_url(&url).unwrap());
    }

    #[test]
    fn logout_request_escapes_the_name_id() {
        let url = logout_request_url(
            "sp",
            "https://idp.example.com/slo",
            "a<b>&\"c",
            "/after",
            None,
        )
        .unwrap();
        let xml = inflate(&query(&url, "SAMLRequest").unwrap(), 1 << 20).unwrap();
        assert!(
            xml.contains("<saml:NameID>a&lt;b&gt;&amp;&quot;c</saml:NameID>"),
            "{xml}"
        );
        assert_eq!(query(&url, "RelayState").as_deref(), Some("/after"));
    }

    #[test]
    fn inflate_caps_the_output() {
        let url = logout_request_url("sp", "https://i/slo", &"x".repeat(5000), "", None).unwrap();
        let b64 = query(&url, "SAMLRequest").unwrap();
        assert!(inflate(&b64, 1 << 20).is_some());
        let capped = inflate(&b64, 100).unwrap();
        assert_eq!(capped.len(), 100);
    }
}
