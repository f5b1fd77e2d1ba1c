//! Messages to the IdP over the HTTP-Redirect binding (deflate, base64,
//! optional RSA-SHA256 `SigAlg`/`Signature`): the AuthnRequest that starts
//! a login and the LogoutRequest of SP-initiated Single Logout. Redirect
//! only: samael's POST form puts RelayState into HTML unescaped.

use std::io::Write;

use base64::Engine;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use openssl::pkey::{PKey, Private};
use samael::crypto::CertificateDer;
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
    use samael::traits::ToXml;
    let xml = req.to_string().map_err(|e| RequestError(e.to_string()))?;
    redirect_url(sso_url, "SAMLRequest", &xml, relay_state, sign_with)
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
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair(param, &encoded);
    if !relay_state.is_empty() {
        query.append_pair("RelayState", relay_state);
    }
    let mut query = match sign_with {
        None => query.finish(),
        Some(key) => {
            // The signature covers exactly these bytes; the IdP rebuilds
            // them from the parameters as sent, never from the whole URL
            // (samael's signer would include the SSO URL's own query).
            query.append_pair("SigAlg", RSA_SHA256);
            let signed = query.finish();
            let mut signer =
                openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key)
                    .map_err(|e| RequestError(e.to_string()))?;
            signer
                .update(signed.as_bytes())
                .map_err(|e| RequestError(e.to_string()))?;
            let sig = signer
                .sign_to_vec()
                .map_err(|e| RequestError(e.to_string()))?;
            let sig = base64::engine::general_purpose::STANDARD.encode(sig);
            let tail: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("Signature", &sig)
                .finish();
            format!("{signed}&{tail}")
        }
    };
    let mut url = Url::parse(location).map_err(|e| RequestError(e.to_string()))?;
    if let Some(existing) = url.query().filter(|q| !q.is_empty()) {
        query = format!("{existing}&{query}");
    }
    url.set_query(Some(&query));
    Ok(url)
}

/// The only algorithm Portcullis signs redirect messages with (RSA keys).
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// Checks the signature of an HTTP-Redirect binding message (`param` is
/// `SAMLRequest` or `SAMLResponse`) against the IdP's certificates. The
/// signed string is rebuilt from the parameters exactly as they arrived
/// (re-encoding them could change the bytes). RSA with SHA-256/384/512
/// only; anything else, or any malformed part, is "not signed".
pub fn redirect_signature_ok(query: &str, param: &str, certs: &[CertificateDer]) -> bool {
    use openssl::hash::MessageDigest;
    let raw = |name: &str| {
        query
            .split('&')
            .find(|kv| kv.split('=').next() == Some(name))
            .map(str::to_string)
    };
    let decoded = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let (Some(message), Some(sig_alg_raw), Some(sig_alg), Some(signature)) = (
        raw(param),
        raw("SigAlg"),
        decoded("SigAlg"),
        decoded("Signature"),
    ) else {
        return false;
    };
    let digest = match sig_alg.as_str() {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => MessageDigest::sha256(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => MessageDigest::sha384(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => MessageDigest::sha512(),
        _ => return false,
    };
    let mut signed = message;
    if let Some(relay) = raw("RelayState") {
        signed = format!("{signed}&{relay}");
    }
    signed = format!("{signed}&{sig_alg_raw}");
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    certs.iter().any(|c| {
        let Ok(key) = openssl::x509::X509::from_der(c.der_data()).and_then(|x| x.public_key())
        else {
            return false;
        };
        openssl::sign::Verifier::new(digest, &key)
            .and_then(|mut v| {
                v.update(signed.as_bytes())?;
                v.verify(&signature)
            })
            .unwrap_or(false)
    })
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
        let cert = [CertificateDer::from(keys.cert_der())];
        assert!(redirect_signature_ok(
            url.query().unwrap(),
            "SAMLRequest",
            &cert
        ));
        // The SSO URL's own query is not part of what is signed.
        let url = authn_request_url(
            &sp(),
            "https://idp.example.com/sso?tenant=a%20b",
            &new_request_id(),
            "r",
            Some(&keys.key),
        )
        .unwrap();
        assert!(
            url.query()
                .unwrap()
                .starts_with("tenant=a%20b&SAMLRequest=")
        );
        assert!(redirect_signature_ok(
            url.query().unwrap(),
            "SAMLRequest",
            &cert
        ));
        // And samael's own verifier agrees (an independent check).
        let v = samael::crypto::UrlVerifier::from_x509(&cert[0]).unwrap();
        let plain = authn_request_url(
            &sp(),
            "https://idp.example.com/sso",
            &new_request_id(),
            "r",
            Some(&keys.key),
        )
        .unwrap();
        assert!(v.verify_signed_request_url(&plain).unwrap());
    }

    #[test]
    fn redirect_signatures_are_checked_on_the_bytes_as_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |n: &str| {
            super::super::keys::SpKeys::load_or_create(
                &dir.path().join(format!("{n}.k")),
                &dir.path().join(format!("{n}.c")),
                n,
            )
            .unwrap()
        };
        let (idp, other) = (mk("idp"), mk("other"));
        let certs = [CertificateDer::from(idp.cert_der())];
        let url =
            logout_request_url("sp", "https://sp/slo", "alice", "/x y", Some(&idp.key)).unwrap();
        let q = url.query().unwrap();
        assert!(redirect_signature_ok(q, "SAMLRequest", &certs));
        // Wrong key, wrong parameter, tampered RelayState, no signature.
        assert!(!redirect_signature_ok(
            q,
            "SAMLRequest",
            &[CertificateDer::from(other.cert_der())]
        ));
        assert!(!redirect_signature_ok(q, "SAMLResponse", &certs));
        assert!(!redirect_signature_ok(
            &q.replace("RelayState=%2Fx", "RelayState=%2Fz"),
            "SAMLRequest",
            &certs
        ));
        let unsigned = logout_request_url("sp", "https://sp/slo", "alice", "/x", None).unwrap();
        assert!(!redirect_signature_ok(
            unsigned.query().unwrap(),
            "SAMLRequest",
            &certs
        ));
        // SHA-1 is not accepted even when the signature is good.
        let sha1 = q.replace("xmldsig-more%23rsa-sha256", "xmldsig%23rsa-sha1");
        assert!(!redirect_signature_ok(&sha1, "SAMLRequest", &certs));
        assert!(!redirect_signature_ok("", "SAMLRequest", &certs));
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
