//! The real SAML IdP (SimpleSAMLphp, tests/idp/saml) started on a free
//! loopback port with a signing key the test owns, and the SP key pair a
//! gate uses.

use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis::idp::saml::keys::SpKeys;
use serde_json::{Value, json};

use super::free_port;

fn script(name: &str) -> String {
    format!("{}/tests/idp/saml/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn new_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (k, c) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    );
    SpKeys::load_or_create(&k, &c, name).unwrap();
    (k, c)
}

/// A running SimpleSAMLphp IdP whose signing key the test owns.
pub struct Idp {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub sps: Value,
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl Idp {
    pub fn start(sps: Value) -> Idp {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = new_pair(dir.path(), "idp-1");
        let mut idp = Idp {
            port: free_port(),
            dir,
            sps,
            key,
            cert,
        };
        idp.run_start();
        idp
    }

    fn run_start(&mut self) {
        let sps_file = self.dir.path().join("sps.json");
        std::fs::write(&sps_file, self.sps.to_string()).unwrap();
        let out = Command::new(script("start.sh"))
            .arg(self.dir.path().join("work"))
            .env("SAML_PORT", self.port.to_string())
            .env("SAML_SPS_FILE", &sps_file)
            .env("SAML_IDP_KEY", &self.key)
            .env("SAML_IDP_CERT", &self.cert)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&self) {
        let _ = Command::new(script("stop.sh"))
            .arg(self.dir.path().join("work"))
            .output();
    }

    /// Key rollover: the IdP comes back signing with a new key.
    pub fn restart_with_new_key(&mut self, n: u32) {
        self.stop();
        let (k, c) = new_pair(self.dir.path(), &format!("idp-{n}"));
        self.key = k;
        self.cert = c;
        self.run_start();
    }

    pub fn metadata_url(&self) -> String {
        format!("http://127.0.0.1:{}/saml2/idp/metadata.php", self.port)
    }

    pub fn sso_url(&self) -> String {
        format!("http://127.0.0.1:{}/saml2/idp/SSOService.php", self.port)
    }

    pub fn key_pem(&self) -> Vec<u8> {
        std::fs::read(&self.key).unwrap()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An SP entry for the IdP: the gate at `origin` (its ACS and SLO URLs).
pub fn sp_at(origin: &str, entity: &str, cert: &Path, opts: Value) -> Value {
    let mut v = json!({
        "entity_id": entity,
        "acs_url": format!("{origin}/.portcullis/saml/acs"),
        "slo_url": format!("{origin}/.portcullis/saml/slo"),
        "sp_cert_pem": std::fs::read_to_string(cert).unwrap(),
    });
    for (k, val) in opts.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

/// The SP key pair the gate uses (made before the IdP, which needs the
/// certificate for encryption).
pub struct SpPair {
    _dir: tempfile::TempDir,
    pub key: PathBuf,
    pub cert: PathBuf,
}

pub fn sp_pair() -> SpPair {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = new_pair(dir.path(), "sp");
    SpPair {
        _dir: dir,
        key,
        cert,
    }
}
