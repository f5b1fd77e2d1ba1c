//! SAML login failures only the operator can fix (entity ID or ACS URL
//! registered wrongly, the IdP's signing certificate changed, SHA-1
//! signing, clocks, encryption settings, attributes not released): the
//! user gets the one-sentence "sign-in is misconfigured" page with the
//! request id, never the protocol error; the audit reason and the log line
//! carry the exact fix. The OIDC twin is `idp::diagnose`.
//!
//! The same answer could be forged (an attacker can send an assertion for
//! another audience too); it is refused either way, only the words differ.

use super::acs::AcsError;
use crate::config::saml::Saml;

/// The fix for a failure the operator must act on; `None` for failures of
/// one login (replay, a stale transaction, a busy verifier, an altered
/// signature).
pub fn operator_fix(e: &AcsError, cfg: &Saml) -> Option<String> {
    Some(match e {
        AcsError::Audience => format!(
            "the IdP issues the assertion for another audience: register this application at the IdP with the entity ID `{}` (the SP metadata at {} has it), or set saml.sp_entity_id to the one registered there",
            cfg.sp_entity_id, cfg.sp_metadata_url
        ),
        AcsError::Destination | AcsError::Recipient => format!(
            "the IdP sends its answer for another address: register `{}` as the ACS URL (HTTP-POST) of this application at the IdP",
            cfg.acs_url
        ),
        AcsError::Issuer => {
            "the assertion's Issuer is not the IdP of the configured metadata: point saml.idp_metadata_url (or the metadata file) at the metadata of the IdP that signs these answers".into()
        }
        AcsError::SignatureUnknownKey => {
            "the IdP signs with a certificate its metadata does not list (a certificate rollover?): let Portcullis fetch the current metadata (`systemctl reload portcullis@NAME`), or update the metadata file; `portcullis doctor` lists the certificates it knows".into()
        }
        AcsError::SignatureAlgorithm => {
            "the IdP signs with an algorithm Portcullis refuses (SHA-1 or weaker): set the signature algorithm of this application at the IdP to RSA-SHA256".into()
        }
        AcsError::SignatureMissing => {
            "the IdP signs neither the Response nor the Assertion: enable signing of the assertion (or the response) for this application at the IdP".into()
        }
        AcsError::Expired => format!(
            "the assertion is expired or not yet valid by this machine's clock: synchronise the clocks of Portcullis and the IdP (NTP, `timedatectl`); saml.clock_skew is {} s",
            cfg.clock_skew.as_secs()
        ),
        AcsError::Decrypt => format!(
            "the IdP encrypts for another certificate: register Portcullis' current SP certificate (in the SP metadata at {}) at the IdP",
            cfg.sp_metadata_url
        ),
        AcsError::EncryptionAlgorithm => {
            "the IdP encrypts with an algorithm Portcullis does not decrypt: choose rsa-oaep-mgf1p key transport and aes256-cbc, aes128-cbc or aes128-gcm content encryption for this application at the IdP".into()
        }
        AcsError::EmptyNameId => {
            "the IdP sends an empty NameID: give this application a NameID format the IdP can fill (persistent, or emailAddress with the user's email)".into()
        }
        AcsError::Mapping(m) => m.clone(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Saml {
        crate::config::from_yaml_str(
            "domain: app.example.com\nupstream:\n  url: http://127.0.0.1:1\nsaml:\n  idp_metadata_url: https://idp.example.com/metadata\n",
        )
        .unwrap()
        .saml
        .unwrap()
    }

    #[test]
    fn misconfigurations_name_the_value_to_register() {
        let c = cfg();
        let audience = operator_fix(&AcsError::Audience, &c).unwrap();
        assert!(
            audience.contains(&format!("`{}`", c.sp_entity_id)),
            "{audience}"
        );
        let acs = operator_fix(&AcsError::Recipient, &c).unwrap();
        assert!(
            acs.contains("`https://app.example.com/.portcullis/saml/acs`"),
            "{acs}"
        );
        assert_eq!(operator_fix(&AcsError::Destination, &c), Some(acs));
        assert!(
            operator_fix(&AcsError::Expired, &c)
                .unwrap()
                .contains("saml.clock_skew is 60 s")
        );
    }

    #[test]
    fn failures_of_one_login_are_not_misconfigurations() {
        let c = cfg();
        for e in [
            AcsError::Replay,
            AcsError::InResponseTo,
            AcsError::Unsolicited,
            AcsError::SignatureInvalid,
            AcsError::Malformed,
            AcsError::Transaction("x".into()),
            AcsError::Status("Responder".into()),
        ] {
            assert_eq!(operator_fix(&e, &c), None, "{e}");
        }
    }
}
