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

/// The URL that sends the browser to the IdP with AuthnRequest `id`;
/// `force_authn` asks the IdP to make the user sign in again even when it
/// has a session (a path's `max_auth_age`).
pub fn authn_request_url(
    sp: &ServiceProvider,
    sso_url: &str,
    id: &str,
    relay_state: &str,
    force_authn: bool,
    sign_with: Option<&PKey<Private>>,
) -> Result<Url, RequestError> {
    let mut req = sp
        .make_authentication_request(sso_url)
        .map_err(|e| RequestError(e.to_string()))?;
    req.id = id.to_string();
    // `false` is the default; leaving it out keeps the request minimal.
    req.force_authn = force_authn.then_some(true);
    use samael::traits::ToXml;
    let xml = req.to_string().map_err(|e| RequestError(e.to_string()))?;
    redirect_url(sso_url, "SAMLRequest", &xml, relay_state, sign_with)
}

pub fn xml_text(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

/// What an SP-initiated LogoutRequest names: the session's NameID exactly
/// as the IdP issued it, and its SessionIndex. SAML 2.0 Profiles §4.4.4.1:
/// an IdP that cannot match both (Lasso, AD FS, Shibboleth) refuses the
/// request and keeps its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogoutName<'a> {
    pub value: &'a str,
    pub format: Option<&'a str>,
    pub name_qualifier: Option<&'a str>,
    pub sp_name_qualifier: Option<&'a str>,
    pub session_index: Option<&'a str>,
}

/// SP-initiated logout: a LogoutRequest for `name`, RelayState the
/// (already checked) return path.
pub fn logout_request_url(
    sp_entity_id: &str,
    slo_url: &str,
    name: LogoutName<'_>,
    relay_state: &str,
    sign_with: Option<&PKey<Private>>,
) -> Result<Url, RequestError> {
    let xml = logout_request_xml(
        &new_request_id(),
        chrono::Utc::now(),
        sp_entity_id,
        slo_url,
        name,
    );
    redirect_url(slo_url, "SAMLRequest", &xml, relay_state, sign_with)
}

fn logout_request_xml(
    id: &str,
    at: chrono::DateTime<chrono::Utc>,
    sp_entity_id: &str,
    slo_url: &str,
    name: LogoutName<'_>,
) -> String {
    let attr = |name: &str, v: Option<&str>| {
        v.map(|v| format!(r#" {name}="{}""#, xml_text(v)))
            .unwrap_or_default()
    };
    let format = [
        attr("Format", name.format),
        attr("NameQualifier", name.name_qualifier),
        attr("SPNameQualifier", name.sp_name_qualifier),
    ]
    .concat();
    let session_index = name
        .session_index
        .map(|i| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", xml_text(i)))
        .unwrap_or_default();
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{}" Version="2.0" IssueInstant="{}" Destination="{}"><saml:Issuer>{}</saml:Issuer><saml:NameID{format}>{}</saml:NameID>{session_index}</samlp:LogoutRequest>"#,
        xml_text(id),
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        xml_text(slo_url),
        xml_text(sp_entity_id),
        xml_text(name.value),
    )
}

/// How an IdP-initiated LogoutRequest was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutStatus {
    /// The session it named is over here (or there was none).
    Success,
    /// This browser's session belongs to somebody else: left alone.
    UnknownPrincipal,
    /// The request was refused (unsigned, stale, another Issuer...).
    Requester,
    /// Portcullis could not do what was asked (the list not stored).
    Responder,
}

impl LogoutStatus {
    pub fn status_xml(self) -> &'static str {
        match self {
            LogoutStatus::Success => {
                r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>"#
            }
            LogoutStatus::UnknownPrincipal => {
                r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"/></samlp:StatusCode>"#
            }
            LogoutStatus::Requester => {
                r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:RequestDenied"/></samlp:StatusCode>"#
            }
            LogoutStatus::Responder => {
                r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"/>"#
            }
        }
    }
}

/// The answer to an IdP-initiated LogoutRequest.
pub fn logout_response_url(
    sp_entity_id: &str,
    slo_url: &str,
    in_response_to: &str,
    status: LogoutStatus,
    relay_state: &str,
    sign_with: Option<&PKey<Private>>,
) -> Result<Url, RequestError> {
    let xml = format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{}" Version="2.0" IssueInstant="{}" Destination="{}" InResponseTo="{}"><saml:Issuer>{}</saml:Issuer><samlp:Status>{}</samlp:Status></samlp:LogoutResponse>"#,
        new_request_id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        xml_text(slo_url),
        xml_text(in_response_to),
        xml_text(sp_entity_id),
        status.status_xml(),
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

#[cfg(test)]
mod tests {
    use samael::crypto::CertificateDer;

    use super::super::redirect::{RedirectMessage, inflate};
    use super::*;

    fn redirect_signature_ok(query: &str, certs: &[CertificateDer]) -> bool {
        RedirectMessage::parse(query).is_ok_and(|m| {
            m.kind == super::super::redirect::Kind::Request && m.verify(certs).is_ok()
        })
    }

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
            false,
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
        assert!(!xml.contains("ForceAuthn"), "{xml}");
    }

    #[test]
    fn a_fresh_sign_in_is_asked_for_with_force_authn() {
        let url = authn_request_url(
            &sp(),
            "https://idp.example.com/sso",
            &new_request_id(),
            "r",
            true,
            None,
        )
        .unwrap();
        let xml = inflate(&query(&url, "SAMLRequest").unwrap(), 1 << 20).unwrap();
        assert!(xml.contains(r#"ForceAuthn="true""#), "{xml}");
    }

    #[test]
    fn signed_request_verifies_with_the_sp_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let keys = super::super::sp_keys::SpKeys::load_or_create(
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
            false,
            Some(&keys.key),
        )
        .unwrap();
        assert_eq!(
            query(&url, "SigAlg").as_deref(),
            Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
        );
        let cert = [CertificateDer::from(keys.cert_der())];
        assert!(redirect_signature_ok(url.query().unwrap(), &cert));
        // The SSO URL's own query is not part of what is signed.
        let url = authn_request_url(
            &sp(),
            "https://idp.example.com/sso?tenant=a%20b",
            &new_request_id(),
            "r",
            false,
            Some(&keys.key),
        )
        .unwrap();
        assert!(
            url.query()
                .unwrap()
                .starts_with("tenant=a%20b&SAMLRequest=")
        );
        assert!(redirect_signature_ok(url.query().unwrap(), &cert));
        // And samael's own verifier agrees (an independent check).
        let v = samael::crypto::UrlVerifier::from_x509(&cert[0]).unwrap();
        let plain = authn_request_url(
            &sp(),
            "https://idp.example.com/sso",
            &new_request_id(),
            "r",
            false,
            Some(&keys.key),
        )
        .unwrap();
        assert!(v.verify_signed_request_url(&plain).unwrap());
    }

    const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";

    #[test]
    fn logout_request_names_the_name_id_as_issued_and_the_session_index() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let name = LogoutName {
            value: "a7f3",
            format: Some(PERSISTENT),
            name_qualifier: Some("https://idp"),
            sp_name_qualifier: Some("https://app/sp"),
            session_index: Some("_sess1"),
        };
        assert_eq!(
            logout_request_xml("_id1", at, "https://app/sp", "https://idp/slo", name),
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_id1" Version="2.0" IssueInstant="2026-12-02T10:00:00Z" Destination="https://idp/slo"><saml:Issuer>https://app/sp</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" NameQualifier="https://idp" SPNameQualifier="https://app/sp">a7f3</saml:NameID><samlp:SessionIndex>_sess1</samlp:SessionIndex></samlp:LogoutRequest>"#
        );
        // Without a Format or SessionIndex from the login, none is made up.
        let bare = LogoutName {
            value: "alice",
            format: None,
            name_qualifier: None,
            sp_name_qualifier: None,
            session_index: None,
        };
        assert_eq!(
            logout_request_xml("_id2", at, "sp", "https://idp/slo", bare),
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_id2" Version="2.0" IssueInstant="2026-12-02T10:00:00Z" Destination="https://idp/slo"><saml:Issuer>sp</saml:Issuer><saml:NameID>alice</saml:NameID></samlp:LogoutRequest>"#
        );
    }

    #[test]
    fn logout_request_escapes_what_the_idp_sent() {
        let name = LogoutName {
            value: "a<b>&\"c",
            format: Some("f\"><x"),
            name_qualifier: None,
            sp_name_qualifier: Some("q&"),
            session_index: Some("<i>"),
        };
        let url =
            logout_request_url("sp", "https://idp.example.com/slo", name, "/after", None).unwrap();
        let xml = inflate(&query(&url, "SAMLRequest").unwrap(), 1 << 20).unwrap();
        assert!(
            xml.contains(r#"<saml:NameID Format="f&quot;&gt;&lt;x" SPNameQualifier="q&amp;">a&lt;b&gt;&amp;&quot;c</saml:NameID><samlp:SessionIndex>&lt;i&gt;</samlp:SessionIndex>"#),
            "{xml}"
        );
        assert_eq!(query(&url, "RelayState").as_deref(), Some("/after"));
    }

    #[test]
    fn logout_response_says_success_or_unknown_principal() {
        let url = logout_response_url(
            "sp",
            "https://idp.example.com/slo",
            "_req\"1",
            LogoutStatus::Success,
            "r",
            None,
        )
        .unwrap();
        let xml = inflate(&query(&url, "SAMLResponse").unwrap(), 1 << 20).unwrap();
        assert!(xml.contains(r#"InResponseTo="_req&quot;1""#), "{xml}");
        assert!(
            xml.contains(r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>"#),
            "{xml}"
        );
        let url = logout_response_url(
            "sp",
            "https://idp.example.com/slo",
            "_r",
            LogoutStatus::UnknownPrincipal,
            "",
            None,
        )
        .unwrap();
        let xml = inflate(&query(&url, "SAMLResponse").unwrap(), 1 << 20).unwrap();
        assert!(
            xml.contains(r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"/></samlp:StatusCode>"#),
            "{xml}"
        );
        assert_eq!(query(&url, "RelayState"), None);
    }
}
