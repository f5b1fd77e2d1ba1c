//! The IdP's LogoutResponse to a logout started here: only its status is
//! read, to tell the user whether the IdP ended its own session. It grants
//! nothing (the local session is already gone), so it is read, not
//! verified: a forged one can at most change what the signed-out page says.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
const STATUS_PREFIX: &str = "urn:oasis:names:tc:SAML:2.0:status:";
/// A LogoutResponse is small; a bigger inflated message is not one.
pub const MAX_XML_BYTES: u64 = 64 * 1024;

/// What the IdP said about its own session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `Success`: the IdP session is over.
    Ended,
    /// `Success` with the `PartialLogout` sub-status: the IdP could not
    /// reach every other application of the session.
    Partial,
    /// Anything else (`Requester`, `Responder`, …), as `Top / Sub`, or a
    /// message that is not a LogoutResponse at all.
    NotEnded(String),
}

/// Reads the top-level `Status` of a LogoutResponse.
pub fn read(xml: &str) -> Answer {
    let mut reader = quick_xml::reader::NsReader::from_str(xml);
    let mut depth = 0usize;
    let mut in_status = false;
    let mut codes: Vec<String> = Vec::new();
    loop {
        let Ok((ns, ev)) = reader.read_resolved_event() else {
            return Answer::NotEnded("unreadable".into());
        };
        let protocol = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == PROTOCOL_NS);
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = e.local_name();
                let local = local.as_ref();
                if depth == 0 && !(protocol && local == b"LogoutResponse") {
                    return Answer::NotEnded("not a LogoutResponse".into());
                }
                if depth == 1 && protocol && local == b"Status" {
                    in_status = true;
                } else if in_status && protocol && local == b"StatusCode" {
                    let value = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == b"Value")
                        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok())
                        .map(std::borrow::Cow::into_owned)
                        .unwrap_or_default();
                    codes.push(value);
                }
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth <= 1 {
                    in_status = false;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let short = |c: &String| c.strip_prefix(STATUS_PREFIX).unwrap_or(c).to_string();
    match codes.as_slice() {
        [] => Answer::NotEnded("no status".into()),
        [top, ..] if short(top) != "Success" => {
            Answer::NotEnded(codes.iter().map(short).collect::<Vec<_>>().join(" / "))
        }
        [_, sub, ..] if short(sub) == "PartialLogout" => Answer::Partial,
        _ => Answer::Ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: &str) -> String {
        format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" Version="2.0" InResponseTo="_q"><saml:Issuer>https://idp</saml:Issuer><samlp:Status>{status}</samlp:Status></samlp:LogoutResponse>"#
        )
    }

    #[test]
    fn each_status_is_told_apart() {
        let code = |v: &str| {
            format!(r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{v}"/>"#)
        };
        let nested = |top: &str, sub: &str| {
            format!(
                r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{top}"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{sub}"/></samlp:StatusCode>"#
            )
        };
        let mut wrong = Vec::new();
        for (status, want) in [
            (code("Success"), Answer::Ended),
            (nested("Success", "PartialLogout"), Answer::Partial),
            (
                nested("Requester", "UnknownPrincipal"),
                Answer::NotEnded("Requester / UnknownPrincipal".into()),
            ),
            (code("Responder"), Answer::NotEnded("Responder".into())),
            (
                format!(
                    "{}<samlp:StatusMessage>SLO request is not valid</samlp:StatusMessage>",
                    code("Requester")
                ),
                Answer::NotEnded("Requester".into()),
            ),
            (String::new(), Answer::NotEnded("no status".into())),
        ] {
            let got = read(&response(&status));
            if got != want {
                wrong.push((status, got, want));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn only_a_logout_response_counts() {
        for xml in [
            response(r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>"#)
                .replace("LogoutResponse", "Response"),
            r#"<LogoutResponse><Status><StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></Status></LogoutResponse>"#.to_string(),
            "<a>".to_string(),
            String::new(),
        ] {
            assert!(matches!(read(&xml), Answer::NotEnded(_)), "{xml}");
        }
        // A Success inside something else than the top Status is not the answer.
        let hidden = response("")
            .replace("<samlp:Status></samlp:Status>", r#"<samlp:Extensions><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:Extensions>"#);
        assert_eq!(read(&hidden), Answer::NotEnded("no status".into()));
    }
}
