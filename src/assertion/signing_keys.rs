//! The assertion key file: asymmetric signing keys (ES256, EdDSA, RS256),
//! never the session keys. Every key in the file is published in the key
//! set; the newest key that has been published for `publish_ahead` signs,
//! so apps caching the key set have it before they see it used.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use serde::{Deserialize, Serialize};

use crate::config::AssertionAlg;

#[derive(Debug, thiserror::Error)]
pub enum AssertionKeyError {
    #[error("cannot read the assertion key file {path}: {source}; check its path and permissions")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot write the assertion key file {path}: {source}; check that the directory exists and is writable"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the assertion key file {path} is not valid: {reason}; restore it from backup or remove it and let Portcullis create a new one (apps then need the new key set)"
    )]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot create an assertion key: {0}")]
    Generate(String),
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    kid: String,
    alg: AssertionAlg,
    /// Unix seconds.
    created: u64,
    /// PKCS#8 PEM.
    private_key: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    keys: Vec<Entry>,
}

/// One decoded key: what signs, and what is published.
pub struct Key {
    pub kid: String,
    pub alg: AssertionAlg,
    pub created: u64,
    pub encoding: EncodingKey,
    /// The public JWK, as served at `/.portcullis/jwks.json`.
    pub jwk: serde_json::Value,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl AssertionAlg {
    pub fn jwt(self) -> Algorithm {
        match self {
            AssertionAlg::ES256 => Algorithm::ES256,
            AssertionAlg::EdDSA => Algorithm::EdDSA,
            AssertionAlg::RS256 => Algorithm::RS256,
        }
    }
}

/// Every key in the file, oldest first.
pub struct AssertionKeys {
    keys: Vec<Key>,
    entries: Vec<Entry>,
}

impl std::fmt::Debug for AssertionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.keys).finish()
    }
}

impl AssertionKeys {
    /// Loads the file, or creates it with one `alg` key (mode 0600).
    pub fn load_or_create(path: &Path, alg: AssertionAlg) -> Result<Self, AssertionKeyError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut keys = AssertionKeys {
                    keys: Vec::new(),
                    entries: Vec::new(),
                };
                keys.add(alg, crate::clock::now())?;
                keys.write(path)?;
                Ok(keys)
            }
            Err(source) => Err(AssertionKeyError::Read {
                path: path.into(),
                source,
            }),
        }
    }

    pub fn load(path: &Path) -> Result<Self, AssertionKeyError> {
        let bytes = std::fs::read(path).map_err(|source| AssertionKeyError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, AssertionKeyError> {
        let invalid = |reason: String| AssertionKeyError::Invalid {
            path: path.into(),
            reason,
        };
        let file: File = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if file.keys.is_empty() {
            return Err(invalid("it holds no key".into()));
        }
        let mut keys = Vec::new();
        for e in &file.keys {
            if keys.iter().any(|k: &Key| k.kid == e.kid) {
                return Err(invalid(format!("the key id {} appears twice", e.kid)));
            }
            keys.push(decode(e).map_err(|r| invalid(format!("key {}: {r}", e.kid)))?);
        }
        let mut entries = file.keys;
        keys.sort_by_key(|k| k.created);
        entries.sort_by_key(|k| k.created);
        Ok(AssertionKeys { keys, entries })
    }

    /// Adds a new `alg` key created at `now`; it signs once published for
    /// `publish_ahead`.
    pub fn add(&mut self, alg: AssertionAlg, now: u64) -> Result<&Key, AssertionKeyError> {
        let entry = Entry {
            kid: crate::random_id(8),
            alg,
            created: now,
            private_key: generate(alg)?,
        };
        let key = decode(&entry).map_err(AssertionKeyError::Generate)?;
        self.entries.push(entry);
        self.keys.push(key);
        Ok(&self.keys[self.keys.len() - 1])
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The key that signs at `now`: the newest one published for at least
    /// `publish_ahead`; while none is, the oldest (a new file's only key
    /// signs at once: no app can have an older set cached).
    pub fn signer(&self, now: u64, publish_ahead: Duration) -> &Key {
        self.keys
            .iter()
            .rev()
            .find(|k| k.created.saturating_add(publish_ahead.as_secs()) <= now)
            .unwrap_or(&self.keys[0])
    }

    /// Drops keys that can no longer have signed an unexpired assertion:
    /// their successor has been signing for longer than `max_lifetime`
    /// (plus a minute of clock skew). Returns the dropped key ids.
    pub fn prune(
        &mut self,
        now: u64,
        publish_ahead: Duration,
        max_lifetime: Duration,
    ) -> Vec<String> {
        let signing_since = |k: &Key| k.created.saturating_add(publish_ahead.as_secs());
        let active = self.signer(now, publish_ahead).kid.clone();
        let mut doomed = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            let successor_signs = self.keys[i + 1..]
                .iter()
                .map(signing_since)
                .filter(|t| *t <= now)
                .min();
            if k.kid != active
                && successor_signs.is_some_and(|t| t + max_lifetime.as_secs() + 60 <= now)
            {
                doomed.push(k.kid.clone());
            }
        }
        self.keys.retain(|k| !doomed.contains(&k.kid));
        self.entries.retain(|k| !doomed.contains(&k.kid));
        doomed
    }

    /// The JSON Web Key Set of every key in the file.
    pub fn jwks(&self) -> String {
        let keys: Vec<&serde_json::Value> = self.keys.iter().map(|k| &k.jwk).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// Writes atomically (temp file + rename) with mode 0600.
    pub fn write(&self, path: &Path) -> Result<(), AssertionKeyError> {
        let werr = |source| AssertionKeyError::Write {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(werr)?;
        }
        let file = File {
            keys: self.entries.clone(),
        };
        let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
        out.push(b'\n');
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(werr)?;
            f.write_all(&out).map_err(werr)?;
            f.sync_all().map_err(werr)?;
        }
        crate::session::keyring::keep_owner(&tmp, path);
        std::fs::rename(&tmp, path).map_err(werr)
    }
}

fn generate(alg: AssertionAlg) -> Result<String, AssertionKeyError> {
    let gen_err = |e: openssl::error::ErrorStack| AssertionKeyError::Generate(e.to_string());
    let pkey: PKey<Private> = match alg {
        AssertionAlg::ES256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(gen_err)?;
            PKey::from_ec_key(EcKey::generate(&group).map_err(gen_err)?).map_err(gen_err)?
        }
        AssertionAlg::EdDSA => PKey::generate_ed25519().map_err(gen_err)?,
        AssertionAlg::RS256 => {
            PKey::from_rsa(Rsa::generate(2048).map_err(gen_err)?).map_err(gen_err)?
        }
    };
    let pem = pkey.private_key_to_pem_pkcs8().map_err(gen_err)?;
    String::from_utf8(pem).map_err(|e| AssertionKeyError::Generate(e.to_string()))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The private key and its public JWK, checking that the PEM holds a key
/// of the algorithm the entry names.
fn decode(e: &Entry) -> Result<Key, String> {
    let pem = e.private_key.as_bytes();
    let pkey =
        PKey::private_key_from_pem(pem).map_err(|_| "the private key is not PEM".to_string())?;
    let wrong = || format!("the private key is not a {} key", e.alg.as_str());
    let ossl = |x: openssl::error::ErrorStack| x.to_string();
    let (jwk, encoding) = match e.alg {
        AssertionAlg::ES256 => {
            let ec = pkey.ec_key().map_err(|_| wrong())?;
            if ec.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
                return Err(wrong());
            }
            let mut ctx = BigNumContext::new().map_err(ossl)?;
            let mut x = openssl::bn::BigNum::new().map_err(ossl)?;
            let mut y = openssl::bn::BigNum::new().map_err(ossl)?;
            ec.public_key()
                .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                .map_err(ossl)?;
            let jwk = serde_json::json!({
                "kty": "EC", "crv": "P-256",
                "x": b64(&x.to_vec_padded(32).map_err(ossl)?),
                "y": b64(&y.to_vec_padded(32).map_err(ossl)?),
            });
            (
                jwk,
                EncodingKey::from_ec_der(&pkey.private_key_to_pkcs8().map_err(ossl)?),
            )
        }
        AssertionAlg::EdDSA => {
            if pkey.id() != Id::ED25519 {
                return Err(wrong());
            }
            let x = pkey.raw_public_key().map_err(ossl)?;
            let jwk = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(&x) });
            (
                jwk,
                EncodingKey::from_ed_der(&pkey.private_key_to_pkcs8().map_err(ossl)?),
            )
        }
        AssertionAlg::RS256 => {
            let rsa = pkey.rsa().map_err(|_| wrong())?;
            if rsa.size() < 256 {
                return Err("RSA keys must have at least 2048 bits".into());
            }
            let jwk = serde_json::json!({
                "kty": "RSA", "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec()),
            });
            (
                jwk,
                EncodingKey::from_rsa_der(&rsa.private_key_to_der().map_err(ossl)?),
            )
        }
    };
    let mut jwk = jwk;
    jwk["kid"] = e.kid.clone().into();
    jwk["alg"] = e.alg.as_str().into();
    jwk["use"] = "sig".into();
    Ok(Key {
        kid: e.kid.clone(),
        alg: e.alg,
        created: e.created,
        encoding,
        jwk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AHEAD: Duration = Duration::from_secs(600);

    #[test]
    fn a_new_key_is_published_at_once_and_signs_only_after_publish_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let mut keys = AssertionKeys::load_or_create(&path, AssertionAlg::ES256).unwrap();
        let first = keys.keys()[0].kid.clone();
        let t0 = keys.keys()[0].created;
        // The only key of a new file signs at once.
        assert_eq!(keys.signer(t0, AHEAD).kid, first);
        let t1 = t0 + 10_000;
        let second = keys.add(AssertionAlg::EdDSA, t1).unwrap().kid.clone();
        keys.write(&path).unwrap();
        let keys = AssertionKeys::load(&path).unwrap();
        assert_eq!(keys.jwks().matches("\"kid\"").count(), 2, "both published");
        assert_eq!(keys.signer(t1 + 599, AHEAD).kid, first);
        assert_eq!(keys.signer(t1 + 600, AHEAD).kid, second);
    }

    #[test]
    fn prune_keeps_the_old_key_until_its_assertions_have_expired() {
        let mut keys = AssertionKeys {
            keys: Vec::new(),
            entries: Vec::new(),
        };
        keys.add(AssertionAlg::ES256, 1000).unwrap();
        let new = keys.add(AssertionAlg::ES256, 5000).unwrap().kid.clone();
        // The new key signs from 5600; assertions of the old one end by
        // 5600 + 300 (+60 skew).
        assert!(keys.prune(5959, AHEAD, Duration::from_secs(300)).is_empty());
        assert_eq!(keys.prune(5960, AHEAD, Duration::from_secs(300)).len(), 1);
        assert_eq!(keys.keys()[0].kid, new);
    }

    #[test]
    fn every_algorithm_signs_what_its_published_key_verifies() {
        for alg in [
            AssertionAlg::ES256,
            AssertionAlg::EdDSA,
            AssertionAlg::RS256,
        ] {
            let mut keys = AssertionKeys {
                keys: Vec::new(),
                entries: Vec::new(),
            };
            let key = keys.add(alg, 1).unwrap();
            let mut header = jsonwebtoken::Header::new(alg.jwt());
            header.kid = Some(key.kid.clone());
            let claims = serde_json::json!({"sub": "s", "exp": 4_000_000_000u64});
            let jwt = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
            let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut v = jsonwebtoken::Validation::new(alg.jwt());
            v.required_spec_claims.clear();
            jsonwebtoken::decode::<serde_json::Value>(&jwt, &dk, &v)
                .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        }
    }

    #[test]
    fn a_key_of_another_algorithm_than_named_is_refused() {
        let mut keys = AssertionKeys {
            keys: Vec::new(),
            entries: Vec::new(),
        };
        keys.add(AssertionAlg::EdDSA, 1).unwrap();
        let mut e = keys.entries[0].clone();
        e.alg = AssertionAlg::ES256;
        assert!(decode(&e).unwrap_err().contains("not a ES256 key"));
    }
}
