//! The Assertion Consumer Service checks, in two steps. First the cheap
//! ones on the unverified envelope ([`prescan`]): one `Response` root, no
//! DOCTYPE, comments or processing instructions, and the facts the caller
//! compares with the login transaction (InResponseTo, Destination, Status,
//! assertion IDs). Only then [`verify`]: samael checks the signature with
//! the IdP metadata keys and reduces the document to what the signature
//! covers (no XML Signature Wrapping), then the conditions; the values
//! used come from that reduced, signed element only. Signature work is the
//! expensive part and leaks memory in libxml (guard rail 2 in
//! docs/design.md), so nothing reaches it without a live transaction of
//! this browser.

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;

use chrono::Utc;

use super::budget::Budget;
use base64::Engine;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer};
use samael::schema::Assertion;
use samael::service_provider::{Error as SamaelError, ServiceProvider};

const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Why a response was refused. The `Display` text goes to the audit log
/// (never the payload); [`AcsError::user_detail`] to the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcsError {
    #[error("saml: the ACS accepts only POST")]
    NotPost,
    #[error("saml: the response is larger than the limit")]
    TooLarge,
    #[error("saml: no SAMLResponse in the form, or it is not base64 XML")]
    Malformed,
    #[error("saml: the response is not well-formed SAML ({0})")]
    NotSaml(&'static str),
    #[error("saml: unsolicited response while IdP-initiated login is off")]
    Unsolicited,
    #[error("saml: {0}")]
    Transaction(String),
    #[error("saml: InResponseTo does not match this browser's login request")]
    InResponseTo,
    #[error("saml: Destination is not this ACS")]
    Destination,
    #[error("saml: the assertion was already used (replay)")]
    Replay,
    #[error("saml: too many responses to verify right now ({0} is spent)")]
    Busy(Budget),
    #[error("saml: the IdP metadata has expired and could not be refreshed")]
    MetadataExpired,
    #[error("saml: the response carries no XML signature")]
    SignatureMissing,
    #[error(
        "saml: a signature uses an algorithm that is not allowed (RSA or ECDSA with SHA-256/384/512 only)"
    )]
    SignatureAlgorithm,
    #[error("saml: the signature names a certificate that is not in the IdP metadata")]
    SignatureUnknownKey,
    #[error(
        "saml: the signature does not verify with the IdP's metadata keys (the signed content was altered, or another key signed it)"
    )]
    SignatureInvalid,
    #[error("saml: the assertion has expired or is not yet valid")]
    Expired,
    #[error("saml: the assertion's Audience is not this SP")]
    Audience,
    #[error("saml: the SubjectConfirmation Recipient is not this ACS")]
    Recipient,
    #[error("saml: no bearer SubjectConfirmation with the required data")]
    SubjectConfirmation,
    #[error("saml: the Issuer is not the IdP of the metadata")]
    Issuer,
    #[error("saml: the encrypted assertion cannot be decrypted with the SP key")]
    Decrypt,
    #[error(
        "saml: the encrypted assertion uses an algorithm Portcullis does not decrypt (key transport rsa-oaep-mgf1p or rsa-1_5; content aes128-cbc, aes192-cbc, aes256-cbc or aes128-gcm)"
    )]
    EncryptionAlgorithm,
    #[error(
        "saml: the encrypted assertion's XML Encryption markup cannot be read (expected EncryptedData with EncryptionMethod, KeyInfo/EncryptedKey and CipherData)"
    )]
    EncryptedMarkup,
    #[error("saml: the IdP answered with status {0}")]
    Status(String),
    #[error("saml: {0}")]
    Mapping(String),
    #[error(
        "saml: the IdP sent an empty NameID; at the IdP, give this application a NameID format it can fill (persistent, or emailAddress with the user's email)"
    )]
    EmptyNameId,
    #[error("saml: the response was refused ({0})")]
    Other(String),
}

impl AcsError {
    /// One sentence for the person in front of the browser.
    pub fn user_detail(&self) -> String {
        match self {
            AcsError::NotPost | AcsError::Malformed | AcsError::NotSaml(_) | AcsError::TooLarge => {
                "The identity provider's answer could not be read. Start again from the application's address.".into()
            }
            AcsError::Unsolicited => "Sign-in started at the identity provider is not enabled for this application. Open the application's address instead and sign in from there.".into(),
            AcsError::Transaction(_) | AcsError::InResponseTo => "This answer does not belong to a sign-in started in this browser, or the sign-in took too long. Start again from the application's address (and allow its cookies).".into(),
            AcsError::Replay => "This answer of the identity provider was already used. Start again from the application's address.".into(),
            AcsError::Busy(_) => "Too many sign-ins are being checked right now. Wait a minute and try again.".into(),
            AcsError::MetadataExpired => "The identity provider's configuration has expired and could not be refreshed. Administrators: check that Portcullis can reach the IdP metadata URL.".into(),
            AcsError::SignatureMissing
            | AcsError::SignatureAlgorithm
            | AcsError::SignatureUnknownKey
            | AcsError::SignatureInvalid
            | AcsError::Issuer => "The answer is not signed by this application's identity provider. Administrators: check that the IdP signs its responses or assertions and that Portcullis has its current metadata.".into(),
            AcsError::Expired => "The identity provider's answer has expired or is not valid yet. Sign in again; administrators: check that the clocks of Portcullis and the IdP agree.".into(),
            AcsError::Audience | AcsError::Destination | AcsError::Recipient => "The identity provider's answer was meant for another application. Administrators: check the entity ID and ACS URL registered at the IdP (see the SP metadata).".into(),
            AcsError::SubjectConfirmation => "The identity provider's answer lacks the bearer confirmation a browser sign-in needs. Administrators: check the IdP's SAML settings for this application.".into(),
            AcsError::Decrypt => "The encrypted answer cannot be decrypted. Administrators: register Portcullis' current SP certificate at the IdP (see the SP metadata), and make the IdP sign the Response when it encrypts the assertion.".into(),
            AcsError::EncryptionAlgorithm => "The encrypted answer uses an algorithm this application does not support. Administrators: at the IdP, choose rsa-oaep-mgf1p key transport and aes256-cbc or aes128-cbc content encryption (as the SP metadata advertises).".into(),
            AcsError::EncryptedMarkup => "The encrypted answer could not be read. Administrators: check the IdP's assertion encryption settings for this application, and make the IdP sign the Response when it encrypts the assertion.".into(),
            AcsError::Status(s) => format!("The identity provider refused the sign-in: {s}. Ask the support contact if you think you should have access."),
            AcsError::Mapping(m) => format!("The identity provider's answer is missing information: {m}"),
            AcsError::EmptyNameId => "The identity provider's answer does not say who you are (its NameID is empty). Administrators: set a NameID format for this application at the IdP.".into(),
            AcsError::Other(_) => "The identity provider's answer could not be accepted. Start again from the application's address; if it keeps failing, tell the support contact.".into(),
        }
    }
}

/// What the unverified envelope says. Trusted for nothing but routing and
/// cheap refusals: every value used later comes from the signed element.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    pub in_response_to: Option<String>,
    pub destination: Option<String>,
    pub status: Option<String>,
    pub sub_status: Option<String>,
    pub status_message: Option<String>,
    pub assertion_ids: Vec<String>,
    /// Whether the assertion is a saml:EncryptedAssertion: samael's parse
    /// errors then concern the encryption markup.
    pub encrypted: bool,
    /// Every `ds:Signature`, in document order of their ends.
    pub signatures: Vec<SignatureFacts>,
}

/// What a `ds:Signature` says about itself (unverified).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SignatureFacts {
    pub method: Option<String>,
    pub digests: Vec<String>,
    /// Base64 DER of each `ds:X509Certificate` in its KeyInfo.
    pub certificates: Vec<String>,
}

impl SignatureFacts {
    fn allowed(&self, allowed: &[AllowedSignatureAlgorithm]) -> bool {
        self.method
            .as_deref()
            .is_some_and(|m| allowed.iter().any(|a| a.signature_uri() == m))
            && !self.digests.is_empty()
            && self
                .digests
                .iter()
                .all(|d| allowed.iter().any(|a| a.digest_uri() == d))
    }
}

/// The checks on the signatures that need no cryptography (samael makes
/// the same ones, but says only "failed"): a response without any
/// signature, or with one by an algorithm outside `allowed`, is refused
/// before the expensive verification.
pub fn signatures_precheck(
    env: &Envelope,
    allowed: &[AllowedSignatureAlgorithm],
) -> Result<(), AcsError> {
    if env.signatures.is_empty() {
        return Err(AcsError::SignatureMissing);
    }
    if env.signatures.iter().any(|s| !s.allowed(allowed)) {
        return Err(AcsError::SignatureAlgorithm);
    }
    Ok(())
}

/// Why verification failed, for the audit log: a signature naming a
/// certificate that the metadata lacks was made by a stranger's key;
/// otherwise the content changed after signing, or a stranger signed it
/// while naming the IdP's certificate. Only the reason depends on this;
/// the refusal does not.
pub fn explain_signature_failure(env: &Envelope, metadata_certs: &[CertificateDer]) -> AcsError {
    let known: Vec<String> = metadata_certs
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c.der_data()))
        .collect();
    let names_a_stranger = env.signatures.iter().any(|s| {
        let mut named = s.certificates.iter().filter(|c| !c.is_empty()).peekable();
        named.peek().is_some() && !named.any(|c| known.contains(c))
    });
    if names_a_stranger {
        AcsError::SignatureUnknownKey
    } else {
        AcsError::SignatureInvalid
    }
}

impl Envelope {
    pub fn is_success(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == STATUS_SUCCESS)
    }

    /// The IdP's status for the page: the short codes and its message.
    pub fn status_text(&self) -> String {
        let short = |s: &Option<String>| {
            s.as_deref()
                .map(|s| s.rsplit(':').next().unwrap_or(s).to_string())
        };
        let mut out = short(&self.status).unwrap_or_default();
        if let Some(sub) = short(&self.sub_status) {
            out = format!("{out} / {sub}");
        }
        if let Some(m) = &self.status_message {
            let m: String = m.chars().filter(|c| !c.is_control()).take(200).collect();
            out = format!("{out} ({m})");
        }
        out
    }
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok())
        .map(std::borrow::Cow::into_owned)
}

/// Reads the envelope without trusting it.
pub fn prescan(xml: &str) -> Result<Envelope, AcsError> {
    let mut reader = quick_xml::reader::NsReader::from_str(xml);
    let mut env = Envelope::default();
    let mut depth = 0usize;
    let mut root_seen = false;
    // Inside the top-level Status: its StatusCodes in document order are
    // the status and the sub-status.
    let mut in_status = 0usize;
    let mut status_code_depth = 0usize;
    let mut in_message = false;
    let mut assertions = 0usize;
    // Open ds:Signature elements (they can nest in wrapping attacks): the
    // depth each started at, and what was read inside.
    let mut sigs: Vec<(usize, SignatureFacts)> = Vec::new();
    let mut in_certificate = false;
    // An open NameID, and whether it had text: samael cannot read an empty
    // one, and the operator needs that reason, not a parse error.
    let mut name_id: Option<bool> = None;
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|_| AcsError::NotSaml("not well-formed XML"))?;
        let is = |ns: &ResolveResult<'_>, want: &[u8]| matches!(ns, ResolveResult::Bound(n) if n.as_ref() == want);
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = e.local_name();
                let local = local.as_ref();
                if !root_seen {
                    if !(is(&ns, PROTOCOL_NS) && local == b"Response") {
                        return Err(AcsError::NotSaml("the root is not a samlp:Response"));
                    }
                    root_seen = true;
                    env.in_response_to = attr(e, b"InResponseTo");
                    env.destination = attr(e, b"Destination");
                } else if depth == 1 && is(&ns, PROTOCOL_NS) && local == b"Status" {
                    in_status = depth + 1;
                } else if in_status > 0 && is(&ns, PROTOCOL_NS) && local == b"StatusCode" {
                    status_code_depth += 1;
                    let v = attr(e, b"Value");
                    match status_code_depth {
                        1 => env.status = v,
                        2 => env.sub_status = v,
                        _ => {}
                    }
                } else if in_status > 0 && is(&ns, PROTOCOL_NS) && local == b"StatusMessage" {
                    in_message = !empty;
                } else if is(&ns, ASSERTION_NS) && local == b"Assertion" {
                    assertions += 1;
                    if let Some(id) = attr(e, b"ID") {
                        env.assertion_ids.push(id);
                    }
                } else if is(&ns, ASSERTION_NS) && local == b"EncryptedAssertion" {
                    assertions += 1;
                    env.encrypted = true;
                } else if is(&ns, ASSERTION_NS) && local == b"NameID" {
                    if empty {
                        return Err(AcsError::EmptyNameId);
                    }
                    name_id = Some(false);
                } else if is(&ns, DSIG_NS) && local == b"Signature" && !empty {
                    sigs.push((depth, SignatureFacts::default()));
                } else if let Some((_, sig)) = sigs.last_mut().filter(|_| is(&ns, DSIG_NS)) {
                    match local {
                        b"SignatureMethod" => sig.method = attr(e, b"Algorithm"),
                        b"DigestMethod" => sig.digests.extend(attr(e, b"Algorithm")),
                        b"X509Certificate" if !empty => {
                            sig.certificates.push(String::new());
                            in_certificate = true;
                        }
                        _ => {}
                    }
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(ref e) => {
                depth = depth.saturating_sub(1);
                in_certificate = false;
                if name_id.take() == Some(false) {
                    return Err(AcsError::EmptyNameId);
                }
                if sigs.last().is_some_and(|(d, _)| *d == depth)
                    && let Some((_, sig)) = sigs.pop()
                {
                    env.signatures.push(sig);
                }
                if in_status > 0 && depth < in_status {
                    in_status = 0;
                }
                if e.local_name().as_ref() == b"StatusMessage" {
                    in_message = false;
                }
                if depth == 0 {
                    root_seen = true;
                }
            }
            Event::Text(ref t)
                if name_id.is_some() && t.decode().is_ok_and(|v| !v.trim().is_empty()) =>
            {
                name_id = Some(true);
            }
            Event::Text(_) if name_id.is_some() => {}
            Event::GeneralRef(_) | Event::CData(_) if name_id.is_some() => name_id = Some(true),
            Event::Text(ref t) if in_certificate => {
                if let (Ok(text), Some(c)) = (
                    t.decode(),
                    sigs.last_mut().and_then(|(_, s)| s.certificates.last_mut()),
                ) {
                    c.extend(text.chars().filter(|c| !c.is_ascii_whitespace()));
                }
            }
            Event::Text(ref t) if in_message => {
                if let Ok(s) = t.decode() {
                    env.status_message
                        .get_or_insert_with(String::new)
                        .push_str(&s);
                }
            }
            Event::GeneralRef(ref r) if in_message => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => r
                        .xml_content(quick_xml::XmlVersion::Implicit1_0)
                        .ok()
                        .and_then(|n| quick_xml::escape::resolve_predefined_entity(&n))
                        .map(str::to_string),
                };
                if let Some(s) = resolved {
                    env.status_message
                        .get_or_insert_with(String::new)
                        .push_str(&s);
                }
            }
            // Comments can make a signed NameID read differently than it
            // was signed (the c14n drops them); IdPs send none.
            Event::Comment(_) => return Err(AcsError::NotSaml("it contains an XML comment")),
            Event::DocType(_) => return Err(AcsError::NotSaml("it has a DOCTYPE")),
            Event::PI(_) => {
                return Err(AcsError::NotSaml("it contains a processing instruction"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err(AcsError::NotSaml("it is empty"));
    }
    // Web SSO answers carry one assertion. A second one, wherever it sits
    // (beside, around or inside the signed one, in Extensions or a
    // signature's Object), is the shape of XML Signature Wrapping.
    if assertions > 1 {
        return Err(AcsError::NotSaml("it has more than one assertion"));
    }
    Ok(env)
}

/// One verification at a time: libxml/xmlsec global state is not ours to
/// stress, and it bounds the CPU an attacker with valid cookies can use.
pub(super) static VERIFY: Mutex<()> = Mutex::new(());

/// Signature, then samael's checks (Destination on a signed Response,
/// Issuer, InResponseTo on the signed parts, NotBefore/NotOnOrAfter with
/// skew, bearer SubjectConfirmation Recipient), then ours (Audience
/// required, InResponseTo once more, nothing stray on unsolicited ones).
/// Blocking: run it off the async threads. `encrypted` is the prescan's
/// [`Envelope::encrypted`].
pub fn verify(
    sp: &ServiceProvider,
    xml: &str,
    request_id: Option<&str>,
    encrypted: bool,
) -> Result<Assertion, AcsError> {
    let ids: Vec<&str> = request_id.into_iter().collect();
    let result = {
        let _one = VERIFY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Guard rail 9 (docs/design.md): samael's decrypt can panic on malformed plaintext.
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            sp.parse_xml_response(xml, request_id.map(|_| ids.as_slice()))
        }))
    };
    let assertion = match result {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Err(classify(&e, encrypted)),
        Err(_) => return Err(AcsError::Decrypt),
    };
    check_assertion(&assertion, sp, request_id)?;
    Ok(assertion)
}

fn classify(e: &SamaelError, encrypted: bool) -> AcsError {
    use SamaelError as E;
    match e {
        // The signature checked out (it comes first), so with an
        // encrypted assertion these concern its markup, or the RSA key
        // transport with another key (openssl's error).
        E::FailedToParseSamlResponse(_) | E::FailedToParseSamlAssertion(_) if encrypted => {
            AcsError::EncryptedMarkup
        }
        E::CryptoProviderError(_) if encrypted => AcsError::Decrypt,
        E::EncryptedAssertionKeyMethodUnsupported { .. }
        | E::EncryptedAssertionValueMethodUnsupported { .. } => AcsError::EncryptionAlgorithm,
        E::FailedToValidateSignature | E::CryptoXmlError(_) => AcsError::SignatureInvalid,
        E::DestinationValidationError { .. } => AcsError::Destination,
        E::AssertionExpired { .. }
        | E::ResponseExpired { .. }
        | E::AssertionConditionExpired { .. }
        | E::AssertionConditionExpiredBefore { .. }
        | E::AssertionSubjectConfirmationExpired { .. }
        | E::AssertionSubjectConfirmationExpiredBefore { .. } => AcsError::Expired,
        E::AssertionConditionAudienceRestrictionFailed { .. } => AcsError::Audience,
        E::AssertionRecipientMismatch { .. } => AcsError::Recipient,
        E::AssertionInResponseToInvalid { .. } | E::ResponseInResponseToInvalid { .. } => {
            AcsError::InResponseTo
        }
        E::AssertionBearerSubjectConfirmationMissing | E::AssertionSubjectConfirmationMissing => {
            AcsError::SubjectConfirmation
        }
        E::AssertionIssuerMismatch { .. } | E::ResponseIssuerMismatch { .. } => AcsError::Issuer,
        E::ResponseBadStatusCode { code } => AcsError::Status(code.clone()),
        E::MissingPrivateKeySP
        | E::MissingEncryptedKeyInfo
        | E::MissingEncryptedValueInfo
        | E::EncryptedAssertionInvalid
        | E::FailedToDecryptAssertion
        | E::EncryptedAssertionsNotYetSupported => AcsError::Decrypt,
        // Only the variant's name: samael's messages can quote the payload.
        other => AcsError::Other(
            format!("{other:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or("unknown")
                .to_string(),
        ),
    }
}

/// Checks samael leaves optional or skips.
fn check_assertion(
    a: &Assertion,
    sp: &ServiceProvider,
    request_id: Option<&str>,
) -> Result<(), AcsError> {
    // Web SSO profile: an AudienceRestriction naming this SP is required
    // (samael checks it only when present).
    let entity_id = sp.entity_id.as_deref().unwrap_or_default();
    let audience_ok = a
        .conditions
        .as_ref()
        .and_then(|c| c.audience_restrictions.as_ref())
        .is_some_and(|rs| {
            !rs.is_empty() && rs.iter().all(|r| r.audience.iter().any(|x| x == entity_id))
        });
    if !audience_ok {
        return Err(AcsError::Audience);
    }
    let bearer: Vec<_> = a
        .subject
        .iter()
        .flat_map(|s| s.subject_confirmations.iter().flatten())
        .filter(|c| c.method.as_deref() == Some(BEARER))
        .filter_map(|c| c.subject_confirmation_data.as_ref())
        .collect();
    if bearer.is_empty() {
        return Err(AcsError::SubjectConfirmation);
    }
    match request_id {
        // samael skips InResponseTo when IdP-initiated login is on.
        Some(id) => {
            if !bearer
                .iter()
                .any(|d| d.in_response_to.as_deref() == Some(id))
            {
                return Err(AcsError::InResponseTo);
            }
        }
        // An unsolicited response answers no request: one that does was
        // stolen from another browser's login.
        None => {
            if bearer.iter().any(|d| d.in_response_to.is_some()) {
                return Err(AcsError::InResponseTo);
            }
        }
    }
    Ok(())
}

/// Until when the assertion ID must be remembered (unix seconds).
pub fn replay_expiry(a: &Assertion, skew: chrono::Duration) -> i64 {
    let conditions = a.conditions.as_ref().and_then(|c| c.not_on_or_after);
    let confirmations = a
        .subject
        .iter()
        .flat_map(|s| s.subject_confirmations.iter().flatten())
        .filter_map(|c| c.subject_confirmation_data.as_ref()?.not_on_or_after);
    conditions
        .into_iter()
        .chain(confirmations)
        .max()
        .map_or_else(
            || Utc::now().timestamp() + 86400,
            |t| (t + skew).timestamp(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" InResponseTo="_req1" Destination="https://app/acs" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">
  <saml:Issuer>https://idp</saml:Issuer>
  <samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
  <saml:Assertion ID="_a1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>https://idp</saml:Issuer></saml:Assertion>
</samlp:Response>"#;

    #[test]
    fn prescan_reads_the_envelope() {
        let env = prescan(OK).unwrap();
        assert_eq!(env.in_response_to.as_deref(), Some("_req1"));
        assert_eq!(env.destination.as_deref(), Some("https://app/acs"));
        assert!(env.is_success());
        assert_eq!(env.assertion_ids, vec!["_a1"]);
    }

    #[test]
    fn prescan_reads_a_failed_status() {
        let xml = OK.replace(
            r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>"#,
            r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"/></samlp:StatusCode><samlp:StatusMessage>Bad &amp; wrong</samlp:StatusMessage>"#,
        );
        let env = prescan(&xml).unwrap();
        assert!(!env.is_success());
        assert_eq!(env.status_text(), "Responder / AuthnFailed (Bad & wrong)");
    }

    const SIGNED: &str = r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r"><saml:Assertion ID="_a1"><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#_a1"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/></ds:Reference></ds:SignedInfo><ds:KeyInfo><ds:X509Data><ds:X509Certificate>QUJD
  REVG</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature></saml:Assertion></samlp:Response>"##;

    #[test]
    fn signatures_are_read_and_prechecked() {
        use super::super::ALLOWED_SIGNATURE_ALGORITHMS as ALLOWED;
        let env = prescan(SIGNED).unwrap();
        assert_eq!(
            env.signatures,
            vec![SignatureFacts {
                method: Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256".into()),
                digests: vec!["http://www.w3.org/2001/04/xmlenc#sha256".into()],
                certificates: vec!["QUJDREVG".into()],
            }]
        );
        assert_eq!(signatures_precheck(&env, ALLOWED), Ok(()));
        let mut bad = Vec::new();
        for (doc, want) in [
            (OK.to_string(), AcsError::SignatureMissing),
            (
                SIGNED.replace("xmldsig-more#rsa-sha256", "xmldsig#rsa-sha1"),
                AcsError::SignatureAlgorithm,
            ),
            (
                SIGNED.replace("xmlenc#sha256", "xmldsig#sha1"),
                AcsError::SignatureAlgorithm,
            ),
            (
                SIGNED.replace(r#"<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>"#, ""),
                AcsError::SignatureAlgorithm,
            ),
            // A second, weak signature elsewhere spoils the whole response.
            (
                SIGNED.replace(
                    "</saml:Assertion>",
                    r#"</saml:Assertion><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha224"/></ds:SignedInfo></ds:Signature>"#,
                ),
                AcsError::SignatureAlgorithm,
            ),
            // Not in the dsig namespace: no signature at all.
            (
                SIGNED.replace("http://www.w3.org/2000/09/xmldsig#", "urn:x"),
                AcsError::SignatureMissing,
            ),
        ] {
            let got = signatures_precheck(&prescan(&doc).unwrap(), ALLOWED);
            if got != Err(want.clone()) {
                bad.push(format!("{want:?}: got {got:?}"));
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
        // After a failed verification: a named stranger, or anything else.
        let known = CertificateDer::from(b"ABCDEF".to_vec());
        let other = CertificateDer::from(b"XYZ".to_vec());
        assert_eq!(
            explain_signature_failure(&env, std::slice::from_ref(&other)),
            AcsError::SignatureUnknownKey
        );
        assert_eq!(
            explain_signature_failure(&env, &[other, known]),
            AcsError::SignatureInvalid
        );
        let (a, b) = (
            SIGNED.find("<ds:KeyInfo>").unwrap(),
            SIGNED.find("</ds:KeyInfo>").unwrap(),
        );
        let no_cert = prescan(&format!("{}{}", &SIGNED[..a], &SIGNED[b + 13..])).unwrap();
        assert!(no_cert.signatures[0].certificates.is_empty());
        let empty_cert = prescan(&SIGNED.replace("QUJD\n  REVG", "")).unwrap();
        assert_eq!(empty_cert.signatures[0].certificates, [""]);
        assert_eq!(
            explain_signature_failure(&empty_cert, &[]),
            AcsError::SignatureInvalid
        );
        assert_eq!(
            explain_signature_failure(&no_cert, &[]),
            AcsError::SignatureInvalid
        );
    }

    #[test]
    fn prescan_refuses_what_no_idp_sends() {
        for (bad, why) in [
            (
                OK.replace(
                    "<saml:Issuer>https://idp</saml:Issuer>\n",
                    "<saml:Issuer>https://idp<!---->x</saml:Issuer>\n",
                ),
                "comment",
            ),
            (
                OK.replace(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                    "<!DOCTYPE r [<!ENTITY e \"x\">]>",
                ),
                "DOCTYPE",
            ),
            (
                OK.replace("samlp:Response", "samlp:ArtifactResponse"),
                "root",
            ),
            ("<a><b></a>".to_string(), "well-formed"),
            (String::new(), "empty"),
            (OK.replace("</samlp:Response>", "<saml:Assertion ID=\"_b\"/></samlp:Response>"), "more than one assertion"),
            (OK.replace("<saml:Issuer>https://idp</saml:Issuer></saml:Assertion>", "<saml:Issuer>https://idp</saml:Issuer><saml:EncryptedAssertion/></saml:Assertion>"), "more than one assertion"),
            (
                OK.replace("<saml:Issuer>https://idp</saml:Issuer>\n", "<?evil x?>"),
                "processing",
            ),
        ] {
            let e = prescan(&bad).unwrap_err();
            assert!(e.to_string().contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn an_empty_name_id_is_named_as_such() {
        let with = |nid: &str| {
            OK.replace(
                "<saml:Issuer>https://idp</saml:Issuer></saml:Assertion>",
                &format!("<saml:Issuer>https://idp</saml:Issuer><saml:Subject>{nid}</saml:Subject></saml:Assertion>"),
            )
        };
        let fmt = r#"Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent""#;
        for empty in [
            format!("<saml:NameID {fmt}/>"),
            format!("<saml:NameID {fmt}></saml:NameID>"),
            format!("<saml:NameID {fmt}>  \n </saml:NameID>"),
        ] {
            assert_eq!(
                prescan(&with(&empty)),
                Err(AcsError::EmptyNameId),
                "{empty}"
            );
        }
        for filled in [
            format!("<saml:NameID {fmt}>alice</saml:NameID>"),
            format!("<saml:NameID {fmt}>&lt;a&gt;</saml:NameID>"),
            format!("<saml:NameID {fmt}><![CDATA[alice]]></saml:NameID>"),
        ] {
            assert!(prescan(&with(&filled)).is_ok(), "{filled}");
        }
        assert!(
            AcsError::EmptyNameId.to_string().contains("NameID format"),
            "the log line names the fix"
        );
    }

    #[test]
    fn failures_of_an_encrypted_assertion_are_named_as_such() {
        use SamaelError as E;
        let parse = || E::FailedToParseSamlAssertion(Box::new(std::fmt::Error));
        let provider = || E::CryptoProviderError(Box::new(std::fmt::Error));
        assert_eq!(classify(&parse(), true), AcsError::EncryptedMarkup);
        assert_eq!(classify(&provider(), true), AcsError::Decrypt);
        // Without an EncryptedAssertion they stay what they were.
        assert_eq!(
            classify(&parse(), false),
            AcsError::Other("FailedToParseSamlAssertion".into())
        );
        assert_eq!(
            classify(&provider(), false),
            AcsError::Other("CryptoProviderError".into())
        );
        for e in [
            E::EncryptedAssertionKeyMethodUnsupported { method: "x".into() },
            E::EncryptedAssertionValueMethodUnsupported { method: "x".into() },
        ] {
            assert_eq!(classify(&e, true), AcsError::EncryptionAlgorithm);
        }
        assert_eq!(
            classify(&E::FailedToDecryptAssertion, true),
            AcsError::Decrypt
        );
        let xml = OK.replace(
            "<saml:Assertion ID=\"_a1\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\"><saml:Issuer>https://idp</saml:Issuer></saml:Assertion>",
            "<saml:EncryptedAssertion><EncryptedData xmlns=\"http://www.w3.org/2001/04/xmlenc#\"/></saml:EncryptedAssertion>",
        );
        assert!(prescan(&xml).unwrap().encrypted);
        assert!(!prescan(OK).unwrap().encrypted);
        // The operator's fixes are in the texts.
        assert!(AcsError::Decrypt.user_detail().contains("SP certificate"));
        assert!(
            AcsError::Decrypt
                .user_detail()
                .contains("sign the Response")
        );
        assert!(
            AcsError::EncryptionAlgorithm
                .to_string()
                .contains("aes256-cbc")
        );
        assert!(
            AcsError::EncryptedMarkup
                .user_detail()
                .contains("sign the Response")
        );
    }
}
