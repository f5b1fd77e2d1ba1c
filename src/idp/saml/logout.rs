//! IdP-initiated Single Logout: the checks a `LogoutRequest` on the
//! HTTP-Redirect binding must pass before it may end a session, and the
//! comparison of its NameID with the session's.
//!
//! In order: the query is one binding message ([`super::redirect`]); its
//! signature is by a signing key of the IdP metadata, over exactly the
//! parameters that are used; the XML is one `samlp:LogoutRequest` (no
//! DOCTYPE, comment or processing instruction); its Issuer is the IdP's
//! entity ID; its Destination, when given, is this SLO endpoint; its
//! IssueInstant is within the clock skew of now and NotOnOrAfter, when
//! given, has not passed; its ID was not used before. Only then is the
//! NameID compared with the session's (value, and Format when both sides
//! have one): a request for somebody else leaves this browser's session
//! alone.

use chrono::{DateTime, Duration, Utc};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

use super::metadata::IdpMetadata;
use super::redirect::{QueryError, RedirectMessage, SignatureError};
use super::replay::{self, ReplayCache};

const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
/// IdPs send one SessionIndex, rarely a few; each becomes a revocation.
const MAX_SESSION_INDEXES: usize = 16;
/// A LogoutRequest is a few hundred bytes; this leaves room for any IdP.
pub const MAX_XML_BYTES: u64 = 64 * 1024;
/// LogoutRequest IDs remembered at once. They live for twice the clock
/// skew, so this is far more than any IdP sends in that time.
pub const REMEMBERED_IDS: usize = 4096;

/// Why a LogoutRequest was refused. The `Display` text is the audit reason
/// (never the payload).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    #[error("saml logout: {0}")]
    Query(#[from] QueryError),
    #[error("saml logout: {0}")]
    Signature(#[from] SignatureError),
    #[error("saml logout: the LogoutRequest is not readable SAML ({0})")]
    Unreadable(&'static str),
    #[error("saml logout: the Issuer is missing or is not the IdP of the metadata")]
    Issuer,
    #[error("saml logout: Destination is not this SLO endpoint")]
    Destination,
    #[error("saml logout: IssueInstant is later than now plus the clock skew")]
    Future,
    #[error("saml logout: IssueInstant is older than the clock skew allows")]
    Stale,
    #[error("saml logout: NotOnOrAfter has passed")]
    Expired,
    #[error("saml logout: this LogoutRequest ID was already used (replay)")]
    Replay,
    #[error("saml logout: too many LogoutRequests to remember right now")]
    Crowded,
    #[error(
        "saml logout: the IdP metadata has no HTTP-Redirect SingleLogoutService to answer to; register Portcullis' SLO URL with that binding at the IdP"
    )]
    NoSloEndpoint,
}

/// A NameID: its value and, when given, its Format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameId {
    pub value: String,
    pub format: Option<String>,
}

impl NameId {
    /// Whether this names the session's subject: equal values, and equal
    /// Formats when both sides have one.
    pub fn names(&self, subject: &str, subject_format: Option<&str>) -> bool {
        self.value == subject
            && match (self.format.as_deref(), subject_format) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// The facts of a LogoutRequest that the checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id: String,
    pub issue_instant: DateTime<Utc>,
    pub not_on_or_after: Option<DateTime<Utc>>,
    pub destination: Option<String>,
    pub issuer: Option<String>,
    pub name_id: NameId,
    /// The `SessionIndex`es: the IdP sessions the logout ends (none: every
    /// session of the NameID).
    pub session_indexes: Vec<String>,
}

/// What the checks compare the request with.
pub struct Expect<'a> {
    pub md: &'a IdpMetadata,
    pub slo_url: &'a str,
    pub skew: Duration,
    pub now: DateTime<Utc>,
}

/// Every check up to, not including, the NameID comparison; the ID is
/// recorded in `seen` when all pass.
pub fn check(
    msg: &RedirectMessage<'_>,
    expect: &Expect<'_>,
    seen: &ReplayCache,
) -> Result<LogoutRequest, LogoutError> {
    msg.verify(&expect.md.signing_certs)?;
    let xml = msg
        .xml(MAX_XML_BYTES)
        .ok_or(LogoutError::Unreadable("not deflated base64 UTF-8"))?;
    accept(parse(&xml)?, expect, seen)
}

/// The checks after the signature, the same on every binding: Issuer,
/// Destination, IssueInstant, NotOnOrAfter, then the ID is recorded in
/// `seen`. `req` must come from signed XML only.
pub fn accept(
    req: LogoutRequest,
    expect: &Expect<'_>,
    seen: &ReplayCache,
) -> Result<LogoutRequest, LogoutError> {
    if req.issuer.as_deref() != Some(expect.md.entity_id.as_str()) {
        return Err(LogoutError::Issuer);
    }
    if req
        .destination
        .as_deref()
        .is_some_and(|d| d != expect.slo_url)
    {
        return Err(LogoutError::Destination);
    }
    if req.issue_instant > expect.now + expect.skew {
        return Err(LogoutError::Future);
    }
    if req.issue_instant < expect.now - expect.skew {
        return Err(LogoutError::Stale);
    }
    if req
        .not_on_or_after
        .is_some_and(|t| expect.now >= t + expect.skew)
    {
        return Err(LogoutError::Expired);
    }
    // Past IssueInstant + skew it is refused as stale anyway.
    let until = (req.issue_instant + expect.skew).timestamp() + 1;
    match seen.record(&req.id, until, expect.now.timestamp()) {
        Ok(()) => Ok(req),
        Err(replay::Refused::Replay) => Err(LogoutError::Replay),
        Err(replay::Refused::Full) => Err(LogoutError::Crowded),
    }
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok())
        .map(std::borrow::Cow::into_owned)
}

fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Which child of the root the text being read belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    Nothing,
    Issuer,
    NameId,
    SessionIndex,
}

/// Reads a LogoutRequest without trusting anything but its shape.
pub fn parse(xml: &str) -> Result<LogoutRequest, LogoutError> {
    use LogoutError::Unreadable;
    let mut reader = quick_xml::reader::NsReader::from_str(xml);
    let mut depth = 0usize;
    // The root's attributes, once read.
    let mut root: Option<LogoutRequest> = None;
    let mut issuer: Option<String> = None;
    let mut name_id: Option<NameId> = None;
    let mut session_indexes: Vec<String> = Vec::new();
    let mut reading = Reading::Nothing;
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|_| Unreadable("not well-formed XML"))?;
        let is = |want: &[u8]| matches!(ns, ResolveResult::Bound(ref n) if n.as_ref() == want);
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = e.local_name();
                let local = local.as_ref();
                if depth == 0 {
                    if root.is_some() || !(is(PROTOCOL_NS) && local == b"LogoutRequest") {
                        return Err(Unreadable("the root is not one samlp:LogoutRequest"));
                    }
                    let id = attr(e, b"ID")
                        .filter(|v| !v.is_empty())
                        .ok_or(Unreadable("it has no ID"))?;
                    let issued = attr(e, b"IssueInstant")
                        .as_deref()
                        .and_then(instant)
                        .ok_or(Unreadable("it has no valid IssueInstant"))?;
                    let not_after = match attr(e, b"NotOnOrAfter") {
                        None => None,
                        Some(v) => {
                            Some(instant(&v).ok_or(Unreadable("NotOnOrAfter is not a time"))?)
                        }
                    };
                    root = Some(LogoutRequest {
                        id,
                        issue_instant: issued,
                        not_on_or_after: not_after,
                        destination: attr(e, b"Destination"),
                        issuer: None,
                        name_id: NameId {
                            value: String::new(),
                            format: None,
                        },
                        session_indexes: Vec::new(),
                    });
                } else if depth == 1 && is(ASSERTION_NS) {
                    match local {
                        b"Issuer" => {
                            if issuer.is_some() {
                                return Err(Unreadable("it has two Issuers"));
                            }
                            issuer = Some(String::new());
                            reading = Reading::Issuer;
                        }
                        b"NameID" => {
                            if name_id.is_some() {
                                return Err(Unreadable("it has two NameIDs"));
                            }
                            name_id = Some(NameId {
                                value: String::new(),
                                format: attr(e, b"Format"),
                            });
                            reading = Reading::NameId;
                        }
                        b"EncryptedID" => {
                            return Err(Unreadable("an encrypted NameID is not supported"));
                        }
                        _ => {}
                    }
                    if empty {
                        reading = Reading::Nothing;
                    }
                } else if depth == 1 && is(PROTOCOL_NS) && local == b"SessionIndex" {
                    if session_indexes.len() >= MAX_SESSION_INDEXES {
                        return Err(Unreadable("it has too many SessionIndexes"));
                    }
                    session_indexes.push(String::new());
                    reading = Reading::SessionIndex;
                    if empty {
                        reading = Reading::Nothing;
                    }
                } else if depth > 1 && reading != Reading::Nothing {
                    return Err(Unreadable("an Issuer or NameID has child elements"));
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth <= 1 {
                    reading = Reading::Nothing;
                }
            }
            Event::Text(ref t) if reading != Reading::Nothing => {
                let s = t.decode().map_err(|_| Unreadable("text is not UTF-8"))?;
                push_text(reading, &mut issuer, &mut name_id, &mut session_indexes, &s);
            }
            Event::GeneralRef(ref r) if reading != Reading::Nothing => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => r
                        .xml_content(quick_xml::XmlVersion::Implicit1_0)
                        .ok()
                        .and_then(|n| quick_xml::escape::resolve_predefined_entity(&n))
                        .map(str::to_string),
                };
                let s = resolved.ok_or(Unreadable("it uses an unknown entity"))?;
                push_text(reading, &mut issuer, &mut name_id, &mut session_indexes, &s);
            }
            Event::CData(_) if reading != Reading::Nothing => {
                return Err(Unreadable("an Issuer or NameID is CDATA"));
            }
            // The signature covers the deflated bytes, so a comment could
            // not change what was signed; IdPs send none, so none is taken.
            Event::Comment(_) => return Err(Unreadable("it contains an XML comment")),
            Event::DocType(_) => return Err(Unreadable("it has a DOCTYPE")),
            Event::PI(_) => return Err(Unreadable("it contains a processing instruction")),
            Event::Eof => break,
            _ => {}
        }
    }
    let mut req = root.ok_or(Unreadable("it is empty"))?;
    let mut name_id = name_id.ok_or(Unreadable("it has no NameID"))?;
    name_id.value = name_id.value.trim().to_string();
    if name_id.value.is_empty() {
        return Err(Unreadable("its NameID is empty"));
    }
    req.issuer = issuer.map(|i| i.trim().to_string());
    req.name_id = name_id;
    req.session_indexes = session_indexes
        .into_iter()
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty())
        .collect();
    Ok(req)
}

fn push_text(
    reading: Reading,
    issuer: &mut Option<String>,
    name_id: &mut Option<NameId>,
    session_indexes: &mut [String],
    s: &str,
) {
    match reading {
        Reading::SessionIndex => {
            if let Some(i) = session_indexes.last_mut() {
                i.push_str(s);
            }
        }
        Reading::Issuer => {
            if let Some(i) = issuer {
                i.push_str(s);
            }
        }
        Reading::NameId => {
            if let Some(n) = name_id {
                n.value.push_str(s);
            }
        }
        Reading::Nothing => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

    fn xml(issue_instant: &str, extra_attrs: &str, body: &str) -> String {
        format!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr1" Version="2.0" IssueInstant="{issue_instant}"{extra_attrs}>{body}</samlp:LogoutRequest>"#
        )
    }

    const BODY: &str = r#"<saml:Issuer>https://idp.example.com</saml:Issuer><saml:NameID SPNameQualifier="sp" Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">alice&amp;co@example.com</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex>"#;

    #[test]
    fn reads_what_an_idp_sends() {
        let r = parse(&xml(
            "2026-03-01T10:00:00Z",
            r#" Destination="https://app/slo" NotOnOrAfter="2026-03-01T10:05:00Z""#,
            BODY,
        ))
        .unwrap();
        assert_eq!(r.id, "_lr1");
        assert_eq!(r.issue_instant.to_rfc3339(), "2026-03-01T10:00:00+00:00");
        assert_eq!(
            r.not_on_or_after.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-03-01T10:05:00+00:00")
        );
        assert_eq!(r.destination.as_deref(), Some("https://app/slo"));
        assert_eq!(r.issuer.as_deref(), Some("https://idp.example.com"));
        assert_eq!(r.session_indexes, ["_s1"]);
        assert_eq!(
            r.name_id,
            NameId {
                value: "alice&co@example.com".into(),
                format: Some(EMAIL.into())
            }
        );
    }

    #[test]
    fn refuses_what_is_not_one_plain_logout_request() {
        let ok_time = "2026-03-01T10:00:00Z";
        let mut bad = Vec::new();
        for (doc, why) in [
            (xml("yesterday", "", BODY), "IssueInstant"),
            (xml(ok_time, " NotOnOrAfter=\"soon\"", BODY), "NotOnOrAfter"),
            (
                xml(ok_time, "", "<saml:Issuer>i</saml:Issuer>"),
                "no NameID",
            ),
            (
                xml(
                    ok_time,
                    "",
                    "<saml:Issuer>i</saml:Issuer><saml:NameID> </saml:NameID>",
                ),
                "empty",
            ),
            (
                xml(
                    ok_time,
                    "",
                    &format!("{BODY}<saml:NameID>bob</saml:NameID>"),
                ),
                "two NameIDs",
            ),
            (
                xml(ok_time, "", &format!("<saml:Issuer>x</saml:Issuer>{BODY}")),
                "two Issuers",
            ),
            (
                xml(
                    ok_time,
                    "",
                    "<saml:Issuer>i</saml:Issuer><saml:EncryptedID/>",
                ),
                "encrypted",
            ),
            (
                xml(ok_time, "", &BODY.replace(">alice", "><!-- x -->alice")),
                "comment",
            ),
            (
                xml(ok_time, "", &BODY.replace(">alice", "><saml:X/>alice")),
                "child elements",
            ),
            (
                xml(
                    ok_time,
                    "",
                    &BODY.replace(">alice&amp;co@example.com<", "><![CDATA[alice]]><"),
                ),
                "CDATA",
            ),
            (format!("<!DOCTYPE x>{}", xml(ok_time, "", BODY)), "DOCTYPE"),
            (
                xml(ok_time, "", BODY).replace("samlp:LogoutRequest", "samlp:LogoutResponse"),
                "root",
            ),
            (format!("{0}{0}", xml(ok_time, "", BODY)), "root"),
            (xml(ok_time, "", BODY).replace(" ID=\"_lr1\"", ""), "no ID"),
            (xml(ok_time, "", &format!("{BODY}<a>")), "well-formed"),
            (String::new(), "empty"),
        ] {
            match parse(&doc) {
                Err(e) if e.to_string().contains(why) => {}
                other => bad.push(format!("{why}: {other:?}")),
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    }

    #[test]
    fn name_id_comparison() {
        let n = |v: &str, f: Option<&str>| NameId {
            value: v.into(),
            format: f.map(str::to_string),
        };
        let persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
        assert!(n("alice", Some(EMAIL)).names("alice", Some(EMAIL)));
        assert!(n("alice", None).names("alice", Some(EMAIL)));
        assert!(n("alice", Some(EMAIL)).names("alice", None));
        assert!(!n("alice", Some(EMAIL)).names("alice", Some(persistent)));
        assert!(!n("bob", Some(EMAIL)).names("alice", Some(EMAIL)));
        assert!(!n("Alice", None).names("alice", None));
    }
}
