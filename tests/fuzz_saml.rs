//! Property tests of what Portcullis reads from SAML messages before any
//! signature is checked: the ACS envelope pre-checks (`prescan`,
//! `signatures_precheck`), the HTTP-Redirect binding's query parameters
//! and deflate, and the IdP-initiated LogoutRequest's shape.
//!
//! `PROPTEST_CASES=100000 cargo test --test fuzz_saml` runs longer.

mod fuzz_support;

use std::io::Write;

use base64::Engine;
use fuzz_support::{config, hostile};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use portcullis::idp::saml::ALLOWED_SIGNATURE_ALGORITHMS;
use portcullis::idp::saml::acs::{AcsError, prescan, signatures_precheck};
use portcullis::idp::saml::logout;
use portcullis::idp::saml::redirect::{Kind, RedirectMessage, inflate};
use proptest::prelude::*;

const SIG_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha224",
    "",
];
const DIGESTS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmlenc#sha512",
    "http://www.w3.org/2000/09/xmldsig#sha1",
];

/// What the ACS accepts, written down from the README, not taken from the
/// code: RSA or ECDSA with SHA-256/384/512.
fn allowed_method(m: &str) -> bool {
    m.ends_with("#rsa-sha256") || m.ends_with("#rsa-sha512") || m.ends_with("#ecdsa-sha384")
}
fn allowed_digest(d: &str) -> bool {
    d.ends_with("#sha256") || d.ends_with("#sha512")
}

#[derive(Debug, Clone)]
enum Part {
    Status(&'static str),
    Assertion {
        id: String,
        sig: Option<(usize, usize)>,
    },
    EncryptedAssertion,
    /// An assertion hidden in Extensions, as signature wrapping does.
    WrappedAssertion(String),
    Signature(usize, usize),
    Comment,
    Pi,
    Text(String),
}

fn part() -> impl Strategy<Value = Part> {
    let sig = (0..SIG_METHODS.len(), 0..DIGESTS.len());
    prop_oneof![
        2 => proptest::sample::select(vec![
            "urn:oasis:names:tc:SAML:2.0:status:Success",
            "urn:oasis:names:tc:SAML:2.0:status:Responder",
        ]).prop_map(Part::Status),
        4 => ("_[a-z0-9]{1,8}", proptest::option::of(sig.clone())).prop_map(|(id, sig)| Part::Assertion { id, sig }),
        1 => Just(Part::EncryptedAssertion),
        1 => "_[a-z0-9]{1,8}".prop_map(Part::WrappedAssertion),
        2 => sig.prop_map(|(m, d)| Part::Signature(m, d)),
        1 => Just(Part::Comment),
        1 => Just(Part::Pi),
        1 => "[a-z ]{0,6}".prop_map(Part::Text),
    ]
}

fn signature(m: usize, d: usize) -> String {
    format!(
        r#"<ds:Signature><ds:SignedInfo><ds:SignatureMethod Algorithm="{}"/><ds:Reference URI=""><ds:DigestMethod Algorithm="{}"/></ds:Reference></ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>"#,
        SIG_METHODS[m], DIGESTS[d]
    )
}

fn render(parts: &[Part], irt: &str, doctype: bool) -> String {
    let mut xml = String::from(r#"<?xml version="1.0"?>"#);
    if doctype {
        xml.push_str(r#"<!DOCTYPE r [<!ENTITY e "x">]>"#);
    }
    xml.push_str(&format!(
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_r" InResponseTo="{irt}" Destination="https://app.test/.portcullis/saml/acs">"#
    ));
    for p in parts {
        match p {
            Part::Status(v) => xml.push_str(&format!(
                r#"<samlp:Status><samlp:StatusCode Value="{v}"/></samlp:Status>"#
            )),
            Part::Assertion { id, sig } => {
                xml.push_str(&format!(
                    r#"<saml:Assertion ID="{id}"><saml:Issuer>https://idp.test</saml:Issuer>"#
                ));
                if let Some((m, d)) = sig {
                    xml.push_str(&signature(*m, *d));
                }
                xml.push_str("</saml:Assertion>");
            }
            Part::EncryptedAssertion => {
                xml.push_str("<saml:EncryptedAssertion><x/></saml:EncryptedAssertion>");
            }
            Part::WrappedAssertion(id) => xml.push_str(&format!(
                r#"<samlp:Extensions><saml:Assertion ID="{id}"/></samlp:Extensions>"#
            )),
            Part::Signature(m, d) => xml.push_str(&signature(*m, *d)),
            Part::Comment => xml.push_str("<!-- x -->"),
            Part::Pi => xml.push_str("<?x y?>"),
            Part::Text(t) => xml.push_str(t),
        }
    }
    xml.push_str("</samlp:Response>");
    xml
}

fn deflate_b64(xml: &str) -> String {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(xml.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap())
}

const QUERY_PIECES: &[&str] = &[
    "SAMLRequest",
    "SAMLResponse",
    "RelayState",
    "SigAlg",
    "Signature",
    "%53AMLRequest",
    "SAML%52equest",
    "samlrequest",
    "=",
    "=",
    "&",
    "&",
    "+",
    "%",
    "%zz",
    "%ff",
    "%00",
    "%26",
    "%3D",
    "fZBBT4Q",
    "x",
    "",
];

proptest! {
    #![proptest_config(config())]

    /// The envelope of a generated response is read as built: refused for
    /// what no IdP sends (DOCTYPE, comments, processing instructions, a
    /// second assertion anywhere), otherwise with its InResponseTo, its
    /// assertion IDs and every signature; and the algorithm pre-check lets
    /// through exactly the responses whose every signature is allowed.
    #[test]
    fn the_envelope_is_read_as_built(
        parts in proptest::collection::vec(part(), 0..6),
        irt in "_[A-Za-z0-9]{1,20}",
        doctype in proptest::bool::weighted(0.1),
    ) {
        let xml = render(&parts, &irt, doctype);
        let assertions = parts.iter().filter(|p| matches!(p, Part::Assertion { .. } | Part::EncryptedAssertion | Part::WrappedAssertion(_))).count();
        let forbidden = doctype || parts.iter().any(|p| matches!(p, Part::Comment | Part::Pi));
        let statuses = parts.iter().filter(|p| matches!(p, Part::Status(_))).count();
        let got = prescan(&xml);
        if forbidden || assertions > 1 {
            prop_assert!(matches!(got, Err(AcsError::NotSaml(_))), "{xml}: {got:?}");
            return Ok(());
        }
        let env = got.map_err(|e| TestCaseError::fail(format!("{xml}: {e:?}")))?;
        prop_assert_eq!(env.in_response_to.as_deref(), Some(irt.as_str()));
        let ids: Vec<String> = parts.iter().filter_map(|p| match p {
            Part::Assertion { id, .. } | Part::WrappedAssertion(id) => Some(id.clone()),
            _ => None,
        }).collect();
        prop_assert_eq!(&env.assertion_ids, &ids);
        if statuses == 1 {
            let want = parts.iter().find_map(|p| match p { Part::Status(v) => Some(*v), _ => None });
            prop_assert_eq!(env.status.as_deref(), want);
        }
        let sigs: Vec<(usize, usize)> = parts.iter().filter_map(|p| match p {
            Part::Signature(m, d) => Some((*m, *d)),
            Part::Assertion { sig, .. } => *sig,
            _ => None,
        }).collect();
        prop_assert_eq!(env.signatures.len(), sigs.len());
        let pre = signatures_precheck(&env, ALLOWED_SIGNATURE_ALGORITHMS);
        if sigs.is_empty() {
            prop_assert_eq!(pre, Err(AcsError::SignatureMissing));
        } else if sigs.iter().all(|(m, d)| allowed_method(SIG_METHODS[*m]) && allowed_digest(DIGESTS[*d])) {
            prop_assert_eq!(pre, Ok(()));
        } else {
            prop_assert_eq!(pre, Err(AcsError::SignatureAlgorithm));
        }
    }

    /// A generated response cut short or with a stray piece inserted
    /// anywhere, and arbitrary text: no panic, and nothing with a second
    /// assertion or a comment gets through.
    #[test]
    fn damaged_and_arbitrary_envelopes_never_panic(
        parts in proptest::collection::vec(part(), 0..4),
        cut in any::<proptest::sample::Index>(),
        insert in proptest::sample::select(vec!["<", ">", "&", "&#0;", "<!--", "]]>", "<![CDATA[", "\"", "<saml:Assertion ID=\"_z\">", "</samlp:Response>", "xmlns:saml=\"x\"", "\u{0}", "\u{feff}"]),
        text in any::<String>(),
    ) {
        let xml = render(&parts, "_i", false);
        let at = cut.index(xml.len() + 1);
        let at = (0..=at).rev().find(|i| xml.is_char_boundary(*i)).unwrap_or(0);
        for doc in [xml[..at].to_string(), format!("{}{insert}{}", &xml[..at], &xml[at..]), text.clone()] {
            if let Ok(env) = prescan(&doc) {
                prop_assert!(env.assertion_ids.len() <= 1, "{doc}");
                let _ = signatures_precheck(&env, ALLOWED_SIGNATURE_ALGORITHMS);
                let _ = env.status_text();
            }
            let _ = logout::parse(&doc);
        }
    }

    /// Redirect-binding queries of every shape: no panic; a query read as
    /// one message has each binding parameter once, under its plain name;
    /// and no signature verifies without a certificate.
    #[test]
    fn redirect_queries_are_read_once(
        pairs in proptest::collection::vec((
            proptest::sample::select(vec![
                "SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature",
                "%53AMLRequest", "SAML%52esponse", "Relay%53tate", "samlrequest", "x", "",
            ]),
            hostile(QUERY_PIECES, 3),
        ), 0..6),
        raw in hostile(QUERY_PIECES, 14),
    ) {
        let q = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&");
        let _ = RedirectMessage::parse(&raw).map(|m| (m.relay_state(), m.xml(4096), m.verify(&[])));
        let Ok(m) = RedirectMessage::parse(&q) else { return Ok(()) };
        for name in ["SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature"] {
            let copies = q.split('&').filter(|p| p.split_once('=').map_or(*p, |(n, _)| n) == name).count();
            prop_assert!(copies <= 1, "{name} {copies} times in {q:?}");
            let disguised = q.split('&').any(|p| {
                let raw = p.split_once('=').map_or(p, |(n, _)| n);
                raw != name && percent_encoding::percent_decode_str(&raw.replace('+', " ")).decode_utf8().is_ok_and(|d| d == name)
            });
            prop_assert!(!disguised, "{name} percent-encoded in {q:?}");
        }
        let has = |n: &str| q.split('&').any(|p| p.split_once('=').map_or(p, |(k, _)| k) == n);
        prop_assert_eq!(m.kind == Kind::Request, has("SAMLRequest"));
        prop_assert_eq!(m.kind == Kind::Response, has("SAMLResponse"));
        let _ = m.relay_state();
        prop_assert!(m.xml(4096).is_none_or(|x| x.len() <= 4096));
        prop_assert!(m.verify(&[]).is_err());
    }

    /// What an IdP sends is read back exactly: the message inflated, the
    /// RelayState decoded, other parameters ignored.
    #[test]
    fn a_redirect_message_round_trips(
        xml in any::<String>(),
        relay in proptest::option::of(any::<String>()),
        response in any::<bool>(),
        noise in proptest::option::of("[a-z]{1,5}=[a-z%0-9]{0,5}"),
    ) {
        let name = if response { "SAMLResponse" } else { "SAMLRequest" };
        let mut q = format!("{name}={}", utf8_percent_encode(&deflate_b64(&xml), NON_ALPHANUMERIC));
        if let Some(r) = &relay {
            q.push_str(&format!("&RelayState={}", utf8_percent_encode(r, NON_ALPHANUMERIC)));
        }
        if let Some(n) = &noise {
            q = format!("{n}&{q}&{n}2");
        }
        let m = RedirectMessage::parse(&q).map_err(|e| TestCaseError::fail(format!("{q}: {e}")))?;
        prop_assert_eq!(m.kind, if response { Kind::Response } else { Kind::Request });
        prop_assert_eq!(m.xml(1 << 20), Some(xml.clone()));
        prop_assert_eq!(m.relay_state(), Ok(relay.clone()));
    }

    /// A deflate bomb stays small: never more than the cap comes out.
    #[test]
    fn inflating_never_exceeds_the_cap(
        text in "[ab]{0,64}",
        repeat in 1usize..4000,
        cap in 0u64..8192,
        b64 in "[A-Za-z0-9+/=]{0,64}",
    ) {
        let big = text.repeat(repeat);
        prop_assert!(inflate(&deflate_b64(&big), cap).is_none_or(|s| s.len() as u64 <= cap));
        let _ = inflate(&b64, cap);
    }
}
