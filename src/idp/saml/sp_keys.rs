//! The SP's own key pair: signs AuthnRequests (when asked) and decrypts
//! encrypted assertions. Read from PEM files, or generated on first start
//! (RSA 3072, self-signed, 10 years: IdPs pin the certificate, they do not
//! check a chain) and written with mode 0600.

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "cannot read the SAML SP {what} `{path}`: {source}; check the path and its permissions"
    )]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the SAML SP {what} `{path}` is not a PEM {what}; give a PEM file, or remove both files to have a new pair generated"
    )]
    NotPem { what: &'static str, path: String },
    #[error(
        "the SAML SP key `{key}` does not belong to the certificate `{cert}`; give a matching pair"
    )]
    Mismatch { key: String, cert: String },
    #[error(
        "cannot write the new SAML SP {what} to `{path}`: {source}; check that the state directory exists and is writable"
    )]
    Write {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("cannot generate the SAML SP key pair: {0}")]
    Generate(#[from] openssl::error::ErrorStack),
}

pub struct SpKeys {
    pub key: PKey<Private>,
    pub cert: X509,
}

impl SpKeys {
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap_or_default()
    }

    /// Loads the pair, or makes one when neither file exists.
    pub fn load_or_create(key_path: &Path, cert_path: &Path, cn: &str) -> Result<SpKeys, KeyError> {
        if !key_path.exists() && !cert_path.exists() {
            let keys = generate(cn)?;
            write_private(key_path, &keys.key.private_key_to_pem_pkcs8()?, "key")?;
            write_private(cert_path, &keys.cert.to_pem()?, "certificate")?;
            tracing::info!(key = %key_path.display(), cert = %cert_path.display(), "generated a new SAML SP key pair; register the SP metadata (or its certificate) at the IdP");
            return Ok(keys);
        }
        let read = |path: &Path, what: &'static str| {
            std::fs::read(path).map_err(|source| KeyError::Read {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        let key_pem = read(key_path, "key")?;
        let cert_pem = read(cert_path, "certificate")?;
        let key = PKey::private_key_from_pem(&key_pem).map_err(|_| KeyError::NotPem {
            what: "key",
            path: key_path.display().to_string(),
        })?;
        let cert = X509::from_pem(&cert_pem).map_err(|_| KeyError::NotPem {
            what: "certificate",
            path: cert_path.display().to_string(),
        })?;
        let matches = cert.public_key().is_ok_and(|p| p.public_eq(&key));
        if !matches {
            return Err(KeyError::Mismatch {
                key: key_path.display().to_string(),
                cert: cert_path.display().to_string(),
            });
        }
        Ok(SpKeys { key, cert })
    }
}

fn generate(cn: &str) -> Result<SpKeys, openssl::error::ErrorStack> {
    let rsa = Rsa::generate(3072)?;
    let key = PKey::from_rsa(rsa)?;
    let mut name = X509NameBuilder::new()?;
    // A CN longer than 64 bytes is refused by OpenSSL; the entity ID is
    // only a label here.
    let cn: String = cn.chars().take(64).collect();
    name.append_entry_by_text("CN", &cn)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(3650)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok(SpKeys {
        key,
        cert: b.build(),
    })
}

fn write_private(path: &Path, bytes: &[u8], what: &'static str) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| KeyError::Write {
        what,
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reloads_the_same_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (k, c) = (dir.path().join("sp.key"), dir.path().join("sp.crt"));
        let a = SpKeys::load_or_create(&k, &c, "https://a.example/md").unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&k).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let b = SpKeys::load_or_create(&k, &c, "https://a.example/md").unwrap();
        assert_eq!(a.cert_der(), b.cert_der());
        assert!(a.key.public_eq(&b.key));
    }

    #[test]
    fn a_key_of_another_pair_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, c1) = (dir.path().join("1.key"), dir.path().join("1.crt"));
        let (k2, c2) = (dir.path().join("2.key"), dir.path().join("2.crt"));
        SpKeys::load_or_create(&k1, &c1, "one").unwrap();
        SpKeys::load_or_create(&k2, &c2, "two").unwrap();
        assert!(matches!(
            SpKeys::load_or_create(&k1, &c2, "x"),
            Err(KeyError::Mismatch { .. })
        ));
        std::fs::remove_file(&c1).unwrap();
        assert!(matches!(
            SpKeys::load_or_create(&k1, &c1, "x"),
            Err(KeyError::Read { .. })
        ));
    }
}
