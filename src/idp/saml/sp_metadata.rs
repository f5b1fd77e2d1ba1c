//! The SP metadata the admin registers at the IdP: entity ID, ACS
//! (HTTP-POST), SLO (HTTP-Redirect, and SOAP at the same URL), the signing and encryption
//! certificate. samael's generator marks both KeyDescriptors `signing`,
//! always says `AuthnRequestsSigned="false"` and adds a 48-hour
//! `validUntil` (an IdP that honours it would drop the SP two days after
//! registration): all three are fixed here before serialising.

use samael::crypto::CertificateDer;
use samael::metadata::{Endpoint, EntityDescriptor, HTTP_REDIRECT_BINDING, NameIdFormat};
use samael::service_provider::ServiceProvider;
use samael::traits::ToXml;

use super::soap::SOAP_BINDING;
use super::sp_keys::SpKeys;
use crate::config::saml::Saml as SamlConfig;

#[derive(Debug, thiserror::Error)]
#[error("cannot produce the SAML SP metadata: {0}")]
pub struct SpMetadataError(String);

pub fn render(cfg: &SamlConfig, keys: &SpKeys) -> Result<String, SpMetadataError> {
    let sp = ServiceProvider {
        entity_id: Some(cfg.sp_entity_id.clone()),
        certificate: Some(CertificateDer::from(keys.cert_der())),
        metadata_url: Some(cfg.sp_metadata_url.clone()),
        acs_url: Some(cfg.acs_url.clone()),
        slo_url: Some(cfg.slo_url.clone()),
        ..ServiceProvider::default()
    };
    let mut md: EntityDescriptor = sp.metadata().map_err(|e| SpMetadataError(e.to_string()))?;
    md.valid_until = None;
    for d in md.sp_sso_descriptors.iter_mut().flatten() {
        d.valid_until = None;
        d.authn_requests_signed = Some(cfg.sign_requests);
        d.want_assertions_signed = Some(true);
        for (i, k) in d.key_descriptors.iter_mut().flatten().enumerate() {
            // samael emits [signing, encryption-with-methods].
            k.key_use = Some(if i == 0 { "signing" } else { "encryption" }.to_string());
        }
        for slo in d.single_logout_services.iter_mut().flatten() {
            slo.binding = HTTP_REDIRECT_BINDING.to_string();
            slo.response_location = None;
        }
        // The back-channel binding: the IdP POSTs a SOAP LogoutRequest to
        // the same URL (src/idp/saml/soap.rs).
        if let Some(slos) = d.single_logout_services.as_mut() {
            slos.push(Endpoint {
                binding: SOAP_BINDING.to_string(),
                location: cfg.slo_url.clone(),
                response_location: None,
            });
        }
        d.name_id_formats =
            Some(vec![cfg.nameid_format.clone().unwrap_or_else(|| {
                NameIdFormat::EmailAddressNameIDFormat.value().to_string()
            })]);
    }
    md.to_string()
        .map_err(|e| SpMetadataError(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guard rail 6 (docs/design.md).
    #[test]
    fn key_uses_and_request_signing_flag_are_right() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::config::from_yaml_str(&format!(
            "domain: app.example.com\nupstream:\n  url: http://127.0.0.1:1\nstate_dir: {}\nsaml:\n  idp_metadata_url: https://idp/md\n  sign_requests: true\n",
            dir.path().display()
        ))
        .unwrap();
        let s = c.saml.unwrap();
        let keys = SpKeys::load_or_create(&s.sp_key_file, &s.sp_cert_file, "x").unwrap();
        let xml = render(&s, &keys).unwrap();
        assert!(
            xml.contains(r#"entityID="https://app.example.com/.portcullis/saml/metadata""#),
            "{xml}"
        );
        assert!(xml.contains(r#"AuthnRequestsSigned="true""#), "{xml}");
        assert!(!xml.contains("validUntil"), "{xml}");
        assert_eq!(xml.matches(r#"use="signing""#).count(), 1, "{xml}");
        assert_eq!(xml.matches(r#"use="encryption""#).count(), 1, "{xml}");
        assert!(xml.contains("https://app.example.com/.portcullis/saml/acs"));
        assert!(
            xml.contains(
                "bindings:HTTP-Redirect\" Location=\"https://app.example.com/.portcullis/saml/slo"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("bindings:SOAP\" Location=\"https://app.example.com/.portcullis/saml/slo"),
            "{xml}"
        );
        // Round trip through samael's own parser.
        let parsed: EntityDescriptor = xml.parse().unwrap();
        let d = &parsed.sp_sso_descriptors.unwrap()[0];
        assert_eq!(d.authn_requests_signed, Some(true));
    }
}
