//! The ACS endpoint (`POST /.portcullis/saml/acs`): the order in which a
//! response is checked, from the POSTed form to a [`Completed`] login. The
//! cheap checks run first and bind the response to this browser's login
//! transaction (`InResponseTo` is compared with the transaction's
//! AuthnRequest ID here, before any signature work: guard rail 2 in
//! docs/design.md); then the verification budget, then samael's signature
//! and condition checks ([`super::acs::verify`]), the replay cache and the
//! attribute mapping.
//!
//! It never sets or clears a session cookie: the server mints the session
//! from the [`Completed`].

use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::acs::{self, AcsError};
use super::{ALLOWED_SIGNATURE_ALGORITHMS, SamlLogin, attributes};
use crate::identity::{Identity, IdpKind};
use crate::idp::{Completed, LoginCtx};
use crate::policy::return_to::safe_return_path;
use crate::session::{LoginFlow, LoginRefs};

/// A POSTed ACS form larger than this is refused unread (a response with
/// hundreds of groups is still far below).
const MAX_ACS_FORM_BYTES: usize = 1024 * 1024;

impl SamlLogin {
    pub(super) async fn acs(
        &self,
        ctx: LoginCtx<'_>,
        req: Request<Incoming>,
    ) -> Result<Completed, AcsError> {
        if req.method() != Method::POST {
            return Err(AcsError::NotPost);
        }
        let body = Limited::new(req.into_body(), MAX_ACS_FORM_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    AcsError::TooLarge
                } else {
                    AcsError::Malformed
                }
            })?
            .to_bytes();
        let (xml, relay_state) = read_form(&body)?;
        let env = acs::prescan(&xml)?;
        // The IdP's own refusal: show it (it grants nothing).
        if !env.is_success() {
            return Err(AcsError::Status(env.status_text()));
        }

        // Cheap checks first (guard rail 2, docs/design.md): no signature
        // work without a live transaction of this browser whose request
        // this answers.
        let lookup = relay_state
            .as_deref()
            .filter(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|r| ctx.transactions.find(ctx.request_cookies, r));
        let (txn, request_id) = match (lookup, &env.in_response_to) {
            (Some(Ok(txn)), irt) => {
                let LoginFlow::Saml { request_id: rid } = &txn.flow else {
                    return Err(AcsError::Transaction(
                        "the transaction is not a SAML login".into(),
                    ));
                };
                let rid = rid.clone();
                if irt.as_deref() != Some(rid.as_str()) {
                    return Err(AcsError::InResponseTo);
                }
                (Some(txn), Some(rid))
            }
            (Some(Err(e)), Some(_)) => return Err(AcsError::Transaction(e.to_string())),
            (None, Some(_)) => {
                return Err(AcsError::Transaction(
                    crate::session::TransactionError::Missing.to_string(),
                ));
            }
            (_, None) if self.cfg.allow_idp_initiated => (None, None),
            (_, None) => return Err(AcsError::Unsolicited),
        };
        if env
            .destination
            .as_deref()
            .is_some_and(|d| d != self.cfg.acs_url)
        {
            return Err(AcsError::Destination);
        }
        let now = chrono::Utc::now();
        if env
            .assertion_ids
            .iter()
            .any(|id| self.replay.seen(id, now.timestamp()))
        {
            return Err(AcsError::Replay);
        }
        let active = self.active();
        if active.md.is_expired(now) {
            return Err(AcsError::MetadataExpired);
        }
        acs::signatures_precheck(&env, ALLOWED_SIGNATURE_ALGORITHMS)?;
        let txn_id = txn.as_ref().map(|t| t.id.as_str());
        if let Err(spent) = self
            .budget
            .take(ctx.request.client_ip, txn_id, Instant::now())
        {
            crate::metrics::saml_verify_refused(spent.label());
            return Err(AcsError::Busy(spent));
        }

        let rid = request_id.clone();
        let certs = active.md.signing_certs.clone();
        let encrypted = env.encrypted;
        let assertion = tokio::task::spawn_blocking(move || {
            if rid.is_some() {
                acs::verify(&active.sp, &xml, rid.as_deref(), encrypted)
            } else {
                let mut sp = active.sp.clone();
                sp.allow_idp_initiated = true;
                acs::verify(&sp, &xml, None, encrypted)
            }
        })
        .await
        .map_err(|_| AcsError::Other("verification task failed".into()))?
        .map_err(|e| match e {
            AcsError::SignatureInvalid => acs::explain_signature_failure(&env, &certs),
            other => other,
        })?;

        let skew = chrono::Duration::from_std(self.cfg.clock_skew)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        if !self.replay.first_use(
            &assertion.id,
            acs::replay_expiry(&assertion, skew),
            now.timestamp(),
        ) {
            return Err(AcsError::Replay);
        }
        let mut identity: Identity = attributes::identity(&assertion, &self.cfg.attributes)
            .map_err(|e| AcsError::Mapping(e.to_string()))?;
        identity.extra.retain(|k, _| self.wanted_extra.contains(k));
        let name_id = assertion.subject.as_ref().and_then(|s| s.name_id.as_ref());
        let refs = LoginRefs {
            // The NameID's, whether it is the subject or kept as `nid`.
            subject_format: name_id.and_then(|n| n.format.clone()),
            idp_sid: assertion
                .authn_statements
                .iter()
                .flatten()
                .find_map(|a| a.session_index.clone()),
            name_id: name_id.map(|n| n.value.trim().to_string()),
            name_qualifier: name_id.and_then(|n| n.name_qualifier.clone()),
            sp_name_qualifier: name_id.and_then(|n| n.sp_name_qualifier.clone()),
            idp_auth_time: assertion
                .authn_statements
                .iter()
                .flatten()
                .filter_map(|a| a.authn_instant)
                .max()
                .and_then(|t| u64::try_from(t.timestamp()).ok()),
        };
        let (return_to, set_cookies) = match txn {
            Some(t) => (t.return_to.clone(), vec![ctx.transactions.clear(&t.id)]),
            None => (
                safe_return_path(relay_state.as_deref(), &self.origin),
                vec![],
            ),
        };
        Ok(Completed {
            identity,
            idp: IdpKind::Saml,
            return_to,
            set_cookies,
            refs,
            id_token_hint: None,
        })
    }
}

fn read_form(body: &Bytes) -> Result<(String, Option<String>), AcsError> {
    let mut response = None;
    let mut relay = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "SAMLResponse" => response = Some(v.into_owned()),
            "RelayState" => relay = Some(v.into_owned()),
            _ => {}
        }
    }
    let b64: String = response
        .ok_or(AcsError::Malformed)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| AcsError::Malformed)?;
    let xml = String::from_utf8(raw).map_err(|_| AcsError::Malformed)?;
    Ok((xml, relay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acs_form_is_base64_xml() {
        let xml = "<samlp:Response/>";
        let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
        let body = format!(
            "SAMLResponse={}&RelayState=abc",
            url::form_urlencoded::byte_serialize(
                format!("{}\r\n{}", &b64[..4], &b64[4..]).as_bytes()
            )
            .collect::<String>()
        );
        let (got, relay) = read_form(&Bytes::from(body)).unwrap();
        assert_eq!(got, xml);
        assert_eq!(relay.as_deref(), Some("abc"));
        assert_eq!(
            read_form(&Bytes::from("RelayState=x")),
            Err(AcsError::Malformed)
        );
        assert_eq!(
            read_form(&Bytes::from("SAMLResponse=%%%")),
            Err(AcsError::Malformed)
        );
    }
}
