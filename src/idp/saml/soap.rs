//! The SOAP binding of IdP-initiated Single Logout (SAML 2.0 bindings
//! §3.2): the IdP POSTs a SOAP 1.1 envelope whose Body is one signed
//! `samlp:LogoutRequest`, server to server, and reads the
//! `samlp:LogoutResponse` from the SOAP answer.
//!
//! In order: the envelope's shape ([`prescan`]: a SOAP Envelope, one Body,
//! in it exactly one LogoutRequest; no DOCTYPE, comment or processing
//! instruction), cheap and before any signature work; then the XML
//! signature ([`verify`]): samael/xmlsec checks it with the IdP metadata
//! keys and the algorithm allow-list and reduces the document to what the
//! signature covers, so every value used afterwards comes from signed XML;
//! then the checks every binding shares ([`super::logout::accept`]).

use std::panic::AssertUnwindSafe;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode};

use super::ALLOWED_SIGNATURE_ALGORITHMS;
use super::acs::VERIFY;
use super::budget::Budget;
use super::logout::{self, LogoutError};
use super::request::{LogoutStatus, new_request_id, xml_text};

const SOAP_NS: &[u8] = b"http://schemas.xmlsoap.org/soap/envelope/";
const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
/// The binding URI the SP metadata advertises for this endpoint.
pub const SOAP_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP";
/// A signed LogoutRequest in its envelope is a few kilobytes.
pub const MAX_SOAP_BYTES: usize = 64 * 1024;

/// Why a SOAP LogoutRequest was refused. The `Display` text is the audit
/// reason (never the payload).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    #[error("saml soap logout: the request is not a SOAP 1.1 message (send Content-Type text/xml)")]
    ContentType,
    #[error("saml soap logout: the body is larger than {MAX_SOAP_BYTES} bytes")]
    TooLarge,
    #[error("saml soap logout: the body is not a SOAP envelope with one LogoutRequest ({0})")]
    NotSoap(&'static str),
    #[error("saml soap logout: too many signature verifications right now ({0} is spent)")]
    Busy(Budget),
    #[error(
        "saml soap logout: the LogoutRequest carries no XML signature that verifies with the IdP's metadata keys (unsigned, altered, signed by another key, or with an algorithm other than RSA/ECDSA with SHA-256/384/512)"
    )]
    Signature,
    #[error("saml soap logout: the signed part is not one LogoutRequest ({0})")]
    Signed(LogoutError),
    #[error(transparent)]
    Logout(LogoutError),
    #[error("saml soap logout: the revocation could not be stored")]
    Store,
}

impl SoapError {
    /// Whether the answer is a SOAP fault with 400 (the request is no SOAP
    /// LogoutRequest at all) rather than a LogoutResponse.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            SoapError::ContentType | SoapError::TooLarge | SoapError::NotSoap(_)
        )
    }

    /// The LogoutResponse status: the IdP's fault, or ours.
    pub fn status(&self) -> LogoutStatus {
        match self {
            SoapError::Busy(_) | SoapError::Store => LogoutStatus::Responder,
            _ => LogoutStatus::Requester,
        }
    }
}

/// Whether the Content-Type is SOAP 1.1's (`text/xml`, any parameters).
pub fn is_soap_content_type(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/xml"))
    })
}

/// The envelope's shape, read without trusting anything in it.
pub fn prescan(xml: &str) -> Result<(), SoapError> {
    use SoapError::NotSoap;
    let mut reader = quick_xml::reader::NsReader::from_str(xml);
    let mut depth = 0usize;
    let mut envelope = false;
    let mut bodies = 0usize;
    let mut in_body = false;
    let mut requests = 0usize;
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|_| NotSoap("not well-formed XML"))?;
        let is = |want: &[u8]| matches!(ns, ResolveResult::Bound(ref n) if n.as_ref() == want);
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = e.local_name();
                let local = local.as_ref();
                match depth {
                    0 => {
                        if envelope || !(is(SOAP_NS) && local == b"Envelope") {
                            return Err(NotSoap("the root is not one SOAP 1.1 Envelope"));
                        }
                        envelope = true;
                    }
                    1 if is(SOAP_NS) && local == b"Body" => {
                        bodies += 1;
                        in_body = !empty;
                    }
                    1 if is(SOAP_NS) && local == b"Header" => {}
                    1 => return Err(NotSoap("the Envelope holds more than Header and Body")),
                    2 if in_body => {
                        if !(is(PROTOCOL_NS) && local == b"LogoutRequest") {
                            return Err(NotSoap(
                                "the Body holds something else than a LogoutRequest",
                            ));
                        }
                        requests += 1;
                    }
                    _ => {}
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    in_body = false;
                }
            }
            Event::Comment(_) => return Err(NotSoap("it contains an XML comment")),
            Event::DocType(_) => return Err(NotSoap("it has a DOCTYPE")),
            Event::PI(_) => return Err(NotSoap("it contains a processing instruction")),
            // quick-xml ends a truncated document without an error.
            Event::Eof if depth > 0 => return Err(NotSoap("not well-formed XML")),
            Event::Eof => break,
            _ => {}
        }
    }
    match (envelope, bodies, requests) {
        (false, _, _) => Err(NotSoap("it is empty")),
        (true, 1, 1) => Ok(()),
        (true, 1, _) => Err(NotSoap("the Body must hold exactly one LogoutRequest")),
        (true, _, _) => Err(NotSoap("the Envelope must have exactly one Body")),
    }
}

/// The signature, checked by samael/xmlsec with the IdP's metadata keys
/// and the algorithm allow-list (guard rail 3, docs/design.md); returns
/// the signed LogoutRequest alone, everything the signature does not cover
/// removed. Blocking: run it off the async threads.
pub fn verify(xml: &str, certs: &[CertificateDer]) -> Result<logout::LogoutRequest, SoapError> {
    // Guard rail 1 (docs/design.md): no key, no verification. Metadata
    // without one is refused at load; this keeps it true here too.
    if certs.is_empty() {
        return Err(SoapError::Signature);
    }
    let reduced = {
        let _one = VERIFY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                xml,
                certs,
                ReduceMode::ValidateAndMarkNoAncestors,
                Some(ALLOWED_SIGNATURE_ALGORITHMS),
            )
        }))
    };
    let Ok(Ok(signed)) = reduced else {
        return Err(SoapError::Signature);
    };
    logout::parse(&signed).map_err(SoapError::Signed)
}

/// The SOAP answer carrying a LogoutResponse. It is not signed: the SOAP
/// binding authenticates the answer by the IdP's own TLS connection to
/// this endpoint (bindings §3.2.2.2 leaves signing optional).
pub fn response_envelope(
    sp_entity_id: &str,
    in_response_to: Option<&str>,
    status: LogoutStatus,
) -> String {
    let irt = in_response_to
        .map(|id| format!(r#" InResponseTo="{}""#, xml_text(id)))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{}" Version="2.0" IssueInstant="{}"{irt}><saml:Issuer>{}</saml:Issuer><samlp:Status>{}</samlp:Status></samlp:LogoutResponse></soap:Body></soap:Envelope>"#,
        new_request_id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        xml_text(sp_entity_id),
        status.status_xml(),
    )
}

/// A SOAP fault for a request that is no SOAP LogoutRequest at all.
pub fn fault_envelope(reason: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>{}</faultstring></soap:Fault></soap:Body></soap:Envelope>"#,
        xml_text(reason)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LR: &str = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr1" Version="2.0" IssueInstant="2026-03-01T10:00:00Z"><saml:Issuer>https://idp</saml:Issuer><saml:NameID>alice</saml:NameID></samlp:LogoutRequest>"#;

    fn env(body: &str) -> String {
        format!(
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header/><soap:Body>{body}</soap:Body></soap:Envelope>"#
        )
    }

    #[test]
    fn the_envelope_is_one_body_with_one_logout_request() {
        assert_eq!(prescan(&env(LR)), Ok(()));
        let mut bad = Vec::new();
        for (doc, why) in [
            (String::new(), "empty"),
            (LR.to_string(), "root"),
            (env(""), "exactly one LogoutRequest"),
            (env(&format!("{LR}{LR}")), "exactly one LogoutRequest"),
            (env("<x/>"), "something else"),
            (
                env(LR).replace("<soap:Header/>", "<soap:Body/>"),
                "exactly one Body",
            ),
            (
                env(LR).replace("<soap:Header/>", "<soap:Other/>"),
                "Header and Body",
            ),
            (env(LR).replace("soap/envelope/", "soap/other/"), "root"),
            (env(&format!("{LR}<!-- c -->")), "comment"),
            (format!("<!DOCTYPE x>{}", env(LR)), "DOCTYPE"),
            (env(&LR.replace("</samlp", "<a></samlp")), "well-formed"),
            (env(LR)[..40].to_string(), "well-formed"),
        ] {
            match prescan(&doc) {
                Err(e) if e.to_string().contains(why) => {}
                other => bad.push(format!("{why}: {other:?}")),
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    }

    #[test]
    fn an_unsigned_request_never_gets_past_verify() {
        let cert = CertificateDer::from(vec![0u8; 4]);
        assert_eq!(verify(&env(LR), &[cert]), Err(SoapError::Signature));
        assert_eq!(verify(&env(LR), &[]), Err(SoapError::Signature));
    }

    #[test]
    fn content_type_and_answers() {
        assert!(is_soap_content_type(Some("text/xml; charset=utf-8")));
        assert!(is_soap_content_type(Some("Text/XML")));
        assert!(!is_soap_content_type(Some("application/xml")));
        assert!(!is_soap_content_type(None));
        let ok = response_envelope("sp&", Some("_lr\"1"), LogoutStatus::Success);
        assert!(ok.contains(r#"InResponseTo="_lr&quot;1""#), "{ok}");
        assert!(ok.contains("<saml:Issuer>sp&amp;</saml:Issuer>"), "{ok}");
        assert!(ok.contains("status:Success"), "{ok}");
        assert!(
            fault_envelope("a<b").contains("<faultstring>a&lt;b</faultstring>"),
            "{}",
            fault_envelope("a<b")
        );
    }
}
