//! An incoming message of the HTTP-Redirect binding (a `SAMLRequest` or
//! `SAMLResponse` query parameter, deflated and base64-encoded, optionally
//! `RelayState`, `SigAlg` and `Signature`). The query is read once, here:
//! the signature is checked over exactly the bytes of the parameters that
//! are then used, so a second copy of a parameter can never be the one
//! verified while the other one is acted on. A binding parameter that
//! appears twice, or whose name is percent-encoded, is refused.

use base64::Engine;
use openssl::hash::MessageDigest;
use samael::crypto::CertificateDer;

/// Which message the query carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

impl Kind {
    fn param(self) -> &'static str {
        match self {
            Kind::Request => "SAMLRequest",
            Kind::Response => "SAMLResponse",
        }
    }
}

/// Why a query is not one Redirect-binding message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query carries {0} more than once")]
    Duplicate(&'static str),
    #[error("the query carries {0} under a percent-encoded name")]
    EncodedName(&'static str),
    #[error("the query carries neither SAMLRequest nor SAMLResponse")]
    NoMessage,
    #[error("the query carries both SAMLRequest and SAMLResponse")]
    BothMessages,
    #[error("a parameter of the query is not valid UTF-8 once decoded")]
    Encoding,
}

/// Why the signature of a message is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the message is not signed (no SigAlg and Signature parameters)")]
    Missing,
    #[error("SigAlg is not RSA with SHA-256/384/512")]
    Algorithm,
    #[error("the Signature parameter is not base64")]
    Malformed,
    #[error("the signature does not verify with a signing key of the IdP metadata")]
    Invalid,
}

const NAMES: [&str; 5] = [
    "SAMLRequest",
    "SAMLResponse",
    "RelayState",
    "SigAlg",
    "Signature",
];

/// The binding parameters of one query, each as sent (still
/// percent-encoded) and once only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectMessage<'q> {
    pub kind: Kind,
    message: &'q str,
    relay_state: Option<&'q str>,
    sig_alg: Option<&'q str>,
    signature: Option<&'q str>,
}

fn decode(raw: &str) -> Result<String, QueryError> {
    // `+` is a space in a query; `%XX` an octet.
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| QueryError::Encoding)
}

impl<'q> RedirectMessage<'q> {
    /// Reads the binding parameters of `query`; other parameters are left
    /// alone (they are neither signed nor used).
    pub fn parse(query: &'q str) -> Result<RedirectMessage<'q>, QueryError> {
        let mut found: [Option<&'q str>; 5] = [None; 5];
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(raw_name)?;
            let Some(i) = NAMES.iter().position(|n| *n == name) else {
                continue;
            };
            if raw_name != NAMES[i] {
                return Err(QueryError::EncodedName(NAMES[i]));
            }
            if found[i].replace(raw_value).is_some() {
                return Err(QueryError::Duplicate(NAMES[i]));
            }
        }
        let [request, response, relay_state, sig_alg, signature] = found;
        let (kind, message) = match (request, response) {
            (Some(m), None) => (Kind::Request, m),
            (None, Some(m)) => (Kind::Response, m),
            (None, None) => return Err(QueryError::NoMessage),
            (Some(_), Some(_)) => return Err(QueryError::BothMessages),
        };
        Ok(RedirectMessage {
            kind,
            message,
            relay_state,
            sig_alg,
            signature,
        })
    }

    /// The decoded RelayState, if any.
    pub fn relay_state(&self) -> Result<Option<String>, QueryError> {
        self.relay_state.map(decode).transpose()
    }

    /// The message XML: base64, then inflated with a cap on its size (a
    /// deflate bomb stays small). `None` when it is not that.
    pub fn xml(&self, max: u64) -> Option<String> {
        inflate(&decode(self.message).ok()?, max)
    }

    /// Checks `Signature` over `SAMLRequest=…[&RelayState=…]&SigAlg=…`, the
    /// parameters exactly as received (SAML bindings §3.4.4.1), against the
    /// IdP's certificates. RSA with SHA-256/384/512 only.
    pub fn verify(&self, certs: &[CertificateDer]) -> Result<(), SignatureError> {
        let (Some(sig_alg_raw), Some(signature_raw)) = (self.sig_alg, self.signature) else {
            return Err(SignatureError::Missing);
        };
        let sig_alg = decode(sig_alg_raw).map_err(|_| SignatureError::Algorithm)?;
        let digest = match sig_alg.as_str() {
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => MessageDigest::sha256(),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => MessageDigest::sha384(),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => MessageDigest::sha512(),
            _ => return Err(SignatureError::Algorithm),
        };
        let signature = decode(signature_raw)
            .ok()
            .and_then(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .ok()
            })
            .ok_or(SignatureError::Malformed)?;
        let mut signed = format!("{}={}", self.kind.param(), self.message);
        if let Some(relay) = self.relay_state {
            signed.push_str("&RelayState=");
            signed.push_str(relay);
        }
        signed.push_str("&SigAlg=");
        signed.push_str(sig_alg_raw);
        let ok = certs.iter().any(|c| {
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
        });
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
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
    use super::super::request::{LogoutName, logout_request_url};
    use super::super::sp_keys::SpKeys;
    use super::*;

    fn name(value: &str) -> LogoutName<'_> {
        LogoutName {
            value,
            format: None,
            name_qualifier: None,
            sp_name_qualifier: None,
            session_index: None,
        }
    }

    fn keys(dir: &std::path::Path, n: &str) -> SpKeys {
        SpKeys::load_or_create(&dir.join(format!("{n}.k")), &dir.join(format!("{n}.c")), n).unwrap()
    }

    #[test]
    fn parameters_are_read_once_and_exactly() {
        let m = RedirectMessage::parse("a=1&SAMLRequest=x%2By&RelayState=%2Fa+b&b").unwrap();
        assert_eq!(m.kind, Kind::Request);
        assert_eq!(m.message, "x%2By");
        assert_eq!(m.relay_state().unwrap().as_deref(), Some("/a b"));
        let mut bad = Vec::new();
        for (q, want) in [
            (
                "SAMLRequest=a&SAMLRequest=b",
                QueryError::Duplicate("SAMLRequest"),
            ),
            (
                "SAMLRequest=a&SigAlg=x&Signature=s&Signature=t",
                QueryError::Duplicate("Signature"),
            ),
            (
                "SAMLRequest=a&SigAlg=x&SigAlg=y",
                QueryError::Duplicate("SigAlg"),
            ),
            (
                "SAMLRequest=a&RelayState=&RelayState=b",
                QueryError::Duplicate("RelayState"),
            ),
            (
                "SAMLResponse=a&SAMLResponse=a",
                QueryError::Duplicate("SAMLResponse"),
            ),
            // The decoded name is what other parsers see: refused, not skipped.
            (
                "SAMLRequest=a&SAML%52equest=b",
                QueryError::EncodedName("SAMLRequest"),
            ),
            (
                "SAMLRequest=a&Sig%41lg=x",
                QueryError::EncodedName("SigAlg"),
            ),
            ("SAMLRequest=a&SAMLResponse=b", QueryError::BothMessages),
            ("RelayState=a", QueryError::NoMessage),
            ("", QueryError::NoMessage),
            ("SAMLRequest=a&%FF=1", QueryError::Encoding),
        ] {
            match RedirectMessage::parse(q) {
                Err(e) if e == want => {}
                other => bad.push(format!("{q}: {other:?}, wanted {want:?}")),
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    }

    #[test]
    fn signatures_are_checked_on_the_bytes_as_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (idp, other) = (keys(dir.path(), "idp"), keys(dir.path(), "other"));
        let certs = [CertificateDer::from(idp.cert_der())];
        let url = logout_request_url(
            "sp",
            "https://sp/slo",
            name("alice"),
            "/x y",
            Some(&idp.key),
        )
        .unwrap();
        let q = url.query().unwrap();
        let check = |q: &str| RedirectMessage::parse(q).unwrap().verify(&certs);
        assert_eq!(check(q), Ok(()));
        // The parameters may come in any order: the signed string is rebuilt.
        let mut parts: Vec<&str> = q.split('&').collect();
        parts.reverse();
        assert_eq!(check(&parts.join("&")), Ok(()));
        // Wrong key, tampered RelayState, no signature, weak or unknown
        // algorithm, garbage signature.
        assert_eq!(
            RedirectMessage::parse(q)
                .unwrap()
                .verify(&[CertificateDer::from(other.cert_der())]),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            check(&q.replace("RelayState=%2Fx", "RelayState=%2Fz")),
            Err(SignatureError::Invalid)
        );
        // A re-encoding of the same value is other bytes: not what was signed.
        assert_eq!(
            check(&q.replace("RelayState=%2Fx", "RelayState=/x")),
            Err(SignatureError::Invalid)
        );
        let unsigned =
            logout_request_url("sp", "https://sp/slo", name("alice"), "/x", None).unwrap();
        assert_eq!(
            check(unsigned.query().unwrap()),
            Err(SignatureError::Missing)
        );
        let sha1 = q.replace("xmldsig-more%23rsa-sha256", "xmldsig%23rsa-sha1");
        assert_eq!(check(&sha1), Err(SignatureError::Algorithm));
        let (head, _) = q.split_once("&Signature=").unwrap();
        assert_eq!(
            check(&format!("{head}&Signature=%%%")),
            Err(SignatureError::Malformed)
        );
        // The verified SAMLRequest is the one that is read.
        let m = RedirectMessage::parse(q).unwrap();
        assert!(
            m.xml(1 << 20)
                .unwrap()
                .contains("<saml:NameID>alice</saml:NameID>")
        );
    }

    #[test]
    fn inflate_caps_the_output() {
        let url =
            logout_request_url("sp", "https://i/slo", name(&"x".repeat(5000)), "", None).unwrap();
        let m = RedirectMessage::parse(url.query().unwrap()).unwrap();
        assert!(m.xml(1 << 20).is_some());
        assert_eq!(m.xml(100).unwrap().len(), 100);
    }
}
