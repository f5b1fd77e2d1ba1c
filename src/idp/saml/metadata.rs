//! The IdP's metadata: where to send the browser, which keys sign its
//! answers. Loaded from a file or a URL; a URL's last good copy is cached
//! on disk and used when the IdP cannot be reached at start. Refused when
//! it names no signing key (samael would then trust unsigned answers), has
//! expired (`validUntil`), or, when the operator pinned a metadata signing
//! certificate, is not signed by it.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Empty, Limited};
use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode};
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};

use super::ALLOWED_SIGNATURE_ALGORITHMS;

/// Metadata bigger than this is refused (aggregates are not supported).
const MAX_METADATA_BYTES: usize = 4 * 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(
        "the IdP metadata from {origin} is not SAML 2.0 metadata with one EntityDescriptor ({detail}); check that it is the IdP's SAML metadata, not a web page or an aggregate"
    )]
    Parse { origin: String, detail: String },
    #[error(
        "the IdP metadata from {0} has no IDPSSODescriptor; it is not an identity provider's metadata"
    )]
    NotAnIdp(String),
    #[error(
        "the IdP metadata from {0} names no signing certificate, so no answer of the IdP could be verified; export the metadata with its signing certificate"
    )]
    NoSigningKey(String),
    #[error(
        "the IdP metadata from {origin} has a signing certificate that cannot be read ({detail}); export the metadata again"
    )]
    BadCertificate { origin: String, detail: String },
    #[error(
        "the IdP metadata from {0} offers no SingleSignOnService with the HTTP-Redirect binding, which Portcullis uses; enable it at the IdP"
    )]
    NoRedirectSso(String),
    #[error(
        "the IdP metadata from {origin} expired at {valid_until} (validUntil); fetch a current copy from the IdP"
    )]
    Expired { origin: String, valid_until: String },
    #[error(
        "the IdP metadata from {0} is not signed by the certificate in saml.idp_metadata_signing_cert_file; check that both come from the same IdP"
    )]
    BadMetadataSignature(String),
    #[error("cannot fetch the IdP metadata from {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error(
        "cannot read the IdP metadata file {path}: {reason}; check the path and that the portcullis user may read it"
    )]
    ReadFile { path: String, reason: String },
    #[error(
        "cannot load the IdP metadata: {fetch}; and there is no usable cached copy at {cache} ({cache_reason}). Check that this host can reach the IdP, or download the metadata and set saml.idp_metadata_file"
    )]
    NoCache {
        fetch: String,
        cache: String,
        cache_reason: String,
    },
}

/// The parts of the IdP metadata Portcullis uses.
#[derive(Clone)]
pub struct IdpMetadata {
    pub entity_id: String,
    pub sso_redirect: String,
    pub slo_redirect: Option<String>,
    pub signing_certs: Vec<CertificateDer>,
    pub valid_until: Option<DateTime<Utc>>,
    pub cache_duration: Option<Duration>,
    /// The whole descriptor, for samael's response checks.
    pub descriptor: EntityDescriptor,
    /// The XML it was parsed from (for the cache).
    pub xml: String,
}

impl IdpMetadata {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.valid_until.is_some_and(|v| v <= now)
    }
}

/// Parses and checks metadata text; `source` names it in errors.
pub fn parse(
    xml: &str,
    source: &str,
    pinned_signer: Option<&CertificateDer>,
    now: DateTime<Utc>,
) -> Result<IdpMetadata, MetadataError> {
    let parse_err = |detail: String| MetadataError::Parse {
        origin: source.to_string(),
        detail,
    };
    if has_doctype(xml) {
        return Err(parse_err("it has a DOCTYPE".into()));
    }
    // With a pinned signer, only what the signature covers is read.
    let signed;
    let text = match pinned_signer {
        Some(cert) => {
            signed = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                xml,
                std::slice::from_ref(cert),
                ReduceMode::ValidateAndMarkNoAncestors,
                Some(ALLOWED_SIGNATURE_ALGORITHMS),
            )
            .map_err(|_| MetadataError::BadMetadataSignature(source.to_string()))?;
            signed.as_str()
        }
        None => xml,
    };
    let descriptor: EntityDescriptor = text.parse().map_err(|e| parse_err(format!("{e}")))?;
    let entity_id = descriptor
        .entity_id
        .clone()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| parse_err("it has no entityID".into()))?;
    let idps = descriptor
        .idp_sso_descriptors
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| MetadataError::NotAnIdp(source.to_string()))?;

    // The same choice samael makes: `use="signing"` keys, else keys
    // without a `use`. Encryption-only keys never verify anything.
    let mut encoded: Vec<&String> = Vec::new();
    for d in idps {
        for k in &d.key_descriptors {
            if k.key_use.as_deref() == Some("signing") {
                encoded.extend(k.key_info.x509_data.iter().flat_map(|x| &x.certificates));
            }
        }
    }
    if encoded.is_empty() {
        for d in idps {
            for k in &d.key_descriptors {
                if matches!(k.key_use.as_deref(), None | Some("")) {
                    encoded.extend(k.key_info.x509_data.iter().flat_map(|x| &x.certificates));
                }
            }
        }
    }
    if encoded.is_empty() {
        return Err(MetadataError::NoSigningKey(source.to_string()));
    }
    let mut signing_certs = Vec::new();
    for c in encoded {
        let der =
            samael::crypto::decode_x509_cert(c).map_err(|e| MetadataError::BadCertificate {
                origin: source.to_string(),
                detail: e.to_string(),
            })?;
        openssl::x509::X509::from_der(der.der_data()).map_err(|e| {
            MetadataError::BadCertificate {
                origin: source.to_string(),
                detail: e.to_string(),
            }
        })?;
        signing_certs.push(der);
    }

    let endpoint = |pick: &dyn Fn(&samael::metadata::IdpSsoDescriptor) -> Option<String>| {
        idps.iter().find_map(pick)
    };
    let sso_redirect = endpoint(&|d| {
        d.single_sign_on_services
            .iter()
            .find(|e| e.binding == HTTP_REDIRECT_BINDING)
            .map(|e| e.location.clone())
    })
    .ok_or_else(|| MetadataError::NoRedirectSso(source.to_string()))?;
    let slo_redirect = endpoint(&|d| {
        d.single_logout_services
            .iter()
            .find(|e| e.binding == HTTP_REDIRECT_BINDING)
            .map(|e| e.location.clone())
    });

    let valid_until = [descriptor.valid_until]
        .into_iter()
        .chain(idps.iter().map(|d| d.valid_until))
        .flatten()
        .min();
    if let Some(v) = valid_until
        && v <= now
    {
        return Err(MetadataError::Expired {
            origin: source.to_string(),
            valid_until: v.to_rfc3339(),
        });
    }
    let cache_duration = descriptor
        .cache_duration
        .as_deref()
        .and_then(parse_iso8601_duration);

    Ok(IdpMetadata {
        entity_id,
        sso_redirect,
        slo_redirect,
        signing_certs,
        valid_until,
        cache_duration,
        descriptor,
        xml: xml.to_string(),
    })
}

fn has_doctype(xml: &str) -> bool {
    xml.contains("<!DOCTYPE") || xml.contains("<!doctype")
}

/// `PnYnMnDTnHnMnS` (years and months approximated); `None` when malformed.
pub fn parse_iso8601_duration(s: &str) -> Option<Duration> {
    let s = s.trim().strip_prefix('P')?;
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut secs: f64 = 0.0;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for ch in part.chars() {
            if ch.is_ascii_digit() || ch == '.' {
                num.push(ch);
            } else {
                let (_, mult) = units.iter().find(|(u, _)| *u == ch)?;
                secs += num.parse::<f64>().ok()? * mult;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    take(
        date,
        &[
            ('Y', 365.0 * 86400.0),
            ('M', 30.0 * 86400.0),
            ('W', 7.0 * 86400.0),
            ('D', 86400.0),
        ],
    )?;
    if let Some(t) = time {
        take(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    (any && secs.is_finite()).then(|| Duration::from_secs_f64(secs))
}

pub fn read_file(path: &Path) -> Result<String, MetadataError> {
    std::fs::read_to_string(path).map_err(|e| MetadataError::ReadFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes the cache atomically (a crash never leaves half a file).
pub fn write_cache(path: &Path, xml: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("xml.tmp");
    std::fs::write(&tmp, xml)?;
    std::fs::rename(&tmp, path)
}

/// GETs the metadata: no redirects followed, bounded size and time.
pub async fn fetch(url: &url::Url) -> Result<String, MetadataError> {
    let err = |reason: String| MetadataError::Fetch {
        url: url.to_string(),
        reason,
    };
    let tls = crate::proxy::tls::client_config(true, None).map_err(|e| err(e.to_string()))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<bytes::Bytes>>(https);
    let uri: http::Uri = url
        .as_str()
        .parse()
        .map_err(|e: http::uri::InvalidUri| err(e.to_string()))?;
    let req = http::Request::get(uri)
        .header(
            http::header::ACCEPT,
            "application/samlmetadata+xml, application/xml, text/xml",
        )
        .header(
            http::header::USER_AGENT,
            concat!("portcullis/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|e| err(e.to_string()))?;
    let resp = tokio::time::timeout(FETCH_TIMEOUT, client.request(req))
        .await
        .map_err(|_| err(format!("no answer within {}s", FETCH_TIMEOUT.as_secs())))?
        .map_err(|e| err(format!("{e}")))?;
    if resp.status().is_redirection() {
        let to = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        return Err(err(format!(
            "the server redirects ({}) to {to}; redirects are not followed, so put the final URL in saml.idp_metadata_url",
            resp.status()
        )));
    }
    if resp.status() != http::StatusCode::OK {
        return Err(err(format!(
            "the server answered {} instead of 200",
            resp.status()
        )));
    }
    let body = tokio::time::timeout(
        FETCH_TIMEOUT,
        Limited::new(resp.into_body(), MAX_METADATA_BYTES).collect(),
    )
    .await
    .map_err(|_| err("the body did not arrive in time".into()))?
    .map_err(|e| err(format!("reading the body failed: {e}")))?
    .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| err("the body is not UTF-8 text".into()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate, base64 DER, made for these tests.
    pub fn test_cert_b64() -> String {
        let keys = super::super::sp_keys::SpKeys::load_or_create(
            &std::env::temp_dir().join(format!("pc-md-{}.key", crate::random_id(6))),
            &std::env::temp_dir().join(format!("pc-md-{}.crt", crate::random_id(6))),
            "idp",
        )
        .unwrap();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(keys.cert_der())
    }

    pub fn metadata_xml(key_descriptors: &str, extra_root_attrs: &str) -> String {
        format!(
            r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.com/md" {extra_root_attrs}>
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    {key_descriptors}
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/slo"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.com/sso-post"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
        )
    }

    pub fn key_descriptor(usage: Option<&str>, cert_b64: &str) -> String {
        let use_attr = usage.map(|u| format!(r#" use="{u}""#)).unwrap_or_default();
        format!(
            r"<md:KeyDescriptor{use_attr}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        )
    }

    #[test]
    fn reads_endpoints_and_signing_keys() {
        let cert = test_cert_b64();
        let xml = metadata_xml(
            &format!(
                "{}{}",
                key_descriptor(Some("signing"), &cert),
                key_descriptor(Some("encryption"), &cert)
            ),
            r#"cacheDuration="PT2H""#,
        );
        let md = parse(&xml, "test", None, Utc::now()).unwrap();
        assert_eq!(md.entity_id, "https://idp.example.com/md");
        assert_eq!(md.sso_redirect, "https://idp.example.com/sso");
        assert_eq!(
            md.slo_redirect.as_deref(),
            Some("https://idp.example.com/slo")
        );
        assert_eq!(md.signing_certs.len(), 1);
        assert_eq!(md.cache_duration, Some(Duration::from_secs(7200)));
        // A key without `use` counts as a signing key.
        let md = parse(
            &metadata_xml(&key_descriptor(None, &cert), ""),
            "test",
            None,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(md.signing_certs.len(), 1);
    }

    /// Guard rail 1 (docs/design.md): without a signing key samael would accept anything.
    #[test]
    fn metadata_without_signing_key_is_refused() {
        let cert = test_cert_b64();
        for kd in [String::new(), key_descriptor(Some("encryption"), &cert)] {
            let err = parse(&metadata_xml(&kd, ""), "test", None, Utc::now())
                .err()
                .unwrap();
            assert!(matches!(err, MetadataError::NoSigningKey(_)), "{err}");
            assert!(err.to_string().contains("names no signing certificate"));
        }
    }

    #[test]
    fn expired_metadata_is_refused() {
        let cert = test_cert_b64();
        let xml = metadata_xml(
            &key_descriptor(Some("signing"), &cert),
            r#"validUntil="2001-01-01T00:00:00Z""#,
        );
        assert!(matches!(
            parse(&xml, "test", None, Utc::now()),
            Err(MetadataError::Expired { .. })
        ));
        let later = metadata_xml(
            &key_descriptor(Some("signing"), &cert),
            r#"validUntil="2999-01-01T00:00:00Z""#,
        );
        let md = parse(&later, "test", None, Utc::now()).unwrap();
        assert!(!md.is_expired(Utc::now()));
    }

    #[test]
    fn garbage_and_doctype_are_refused() {
        assert!(matches!(
            parse("<html>hi</html>", "t", None, Utc::now()),
            Err(MetadataError::Parse { .. })
        ));
        let cert = test_cert_b64();
        let xml = metadata_xml(&key_descriptor(Some("signing"), &cert), "").replace(
            "<?xml version=\"1.0\"?>",
            "<!DOCTYPE x [<!ENTITY a \"b\">]>",
        );
        assert!(matches!(
            parse(&xml, "t", None, Utc::now()),
            Err(MetadataError::Parse { .. })
        ));
    }

    #[test]
    fn unsigned_metadata_is_refused_when_a_signer_is_pinned() {
        let cert = test_cert_b64();
        let xml = metadata_xml(&key_descriptor(Some("signing"), &cert), "");
        let pinned = samael::crypto::decode_x509_cert(&cert).unwrap();
        assert!(matches!(
            parse(&xml, "t", Some(&pinned), Utc::now()),
            Err(MetadataError::BadMetadataSignature(_))
        ));
    }

    /// Signs `xml` (an EntityDescriptor with `ID="_md"`) the way an IdP
    /// signs its metadata: enveloped, exclusive c14n, RSA-SHA256.
    fn sign_metadata(xml: &str, key: &openssl::pkey::PKey<openssl::pkey::Private>) -> String {
        let template = r##"<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#_md"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>"##;
        let xml = xml.replacen(
            "<md:IDPSSODescriptor",
            &format!("{template}<md:IDPSSODescriptor"),
            1,
        );
        Crypto::sign_xml(xml, &key.private_key_to_der().unwrap()).unwrap()
    }

    #[test]
    fn metadata_signed_by_the_pinned_certificate_is_read_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let signer = super::super::sp_keys::SpKeys::load_or_create(
            &dir.path().join("s.key"),
            &dir.path().join("s.crt"),
            "md-signer",
        )
        .unwrap();
        let pinned = CertificateDer::from(signer.cert_der());
        let cert = test_cert_b64();
        let xml = metadata_xml(&key_descriptor(Some("signing"), &cert), r#"ID="_md""#)
            .replace("<?xml version=\"1.0\"?>\n", "");
        let signed = sign_metadata(&xml, &signer.key);
        let md = parse(&signed, "t", Some(&pinned), Utc::now()).unwrap();
        assert_eq!(md.sso_redirect, "https://idp.example.com/sso");
        assert_eq!(md.signing_certs.len(), 1);
        // An attacker who swaps the SSO location (or the keys) breaks it.
        let tampered = signed.replace(
            "https://idp.example.com/sso\"",
            "https://evil.example.com/sso\"",
        );
        assert!(matches!(
            parse(&tampered, "t", Some(&pinned), Utc::now()),
            Err(MetadataError::BadMetadataSignature(_))
        ));
        // Signed by someone else.
        let other = super::super::sp_keys::SpKeys::load_or_create(
            &dir.path().join("o.key"),
            &dir.path().join("o.crt"),
            "other",
        )
        .unwrap();
        assert!(matches!(
            parse(
                &sign_metadata(&xml, &other.key),
                "t",
                Some(&pinned),
                Utc::now()
            ),
            Err(MetadataError::BadMetadataSignature(_))
        ));
    }

    async fn one_shot_server(answer: &'static str) -> url::Url {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer.as_bytes()).await;
        });
        url::Url::parse(&format!("http://{addr}/md")).unwrap()
    }

    #[tokio::test]
    async fn fetch_does_not_follow_redirects_and_says_where_they_go() {
        let url = one_shot_server(
            "HTTP/1.1 302 Found\r\nLocation: https://elsewhere.example/md\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        let e = fetch(&url).await.unwrap_err().to_string();
        assert!(
            e.contains("redirects") && e.contains("https://elsewhere.example/md"),
            "{e}"
        );
        let url = one_shot_server(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        let e = fetch(&url).await.unwrap_err().to_string();
        assert!(e.contains("404"), "{e}");
    }

    #[test]
    fn iso_durations() {
        assert_eq!(
            parse_iso8601_duration("PT1H30M"),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_iso8601_duration("P1D"),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            parse_iso8601_duration("PT0.5S"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_iso8601_duration("1H"), None);
        assert_eq!(parse_iso8601_duration("P"), None);
        assert_eq!(parse_iso8601_duration("PT5X"), None);
    }
}
