//! The real SAML IdP (SimpleSAMLphp, tests/idp/saml) started on a free
//! loopback port with a signing key the test owns, and the SP key pair a
//! gate uses.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis::idp::saml::sp_keys::SpKeys;
use serde_json::{Value, json};

use super::free_port;
use super::process::{Server, Shutdown};

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
    server: Option<Server>,
}

impl Idp {
    pub fn start(sps: Value) -> Idp {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = new_pair(dir.path(), "idp-1");
        Self::start_in(dir, sps, key, cert)
    }

    /// Signs with the test's own key pair (e.g. a certificate that
    /// expires soon).
    pub fn start_with_pair(sps: Value, key: PathBuf, cert: PathBuf) -> Idp {
        Self::start_in(tempfile::tempdir().unwrap(), sps, key, cert)
    }

    fn start_in(dir: tempfile::TempDir, sps: Value, key: PathBuf, cert: PathBuf) -> Idp {
        let mut idp = Idp {
            port: free_port(),
            dir,
            sps,
            key,
            cert,
            server: None,
        };
        idp.run_start();
        idp
    }

    /// Runs start.sh in the foreground: it writes the configuration and
    /// becomes `php -S`, in a process group of its own, with its workers.
    fn run_start(&mut self) {
        let sps_file = self.dir.path().join("sps.json");
        std::fs::write(&sps_file, self.sps.to_string()).unwrap();
        let work = self.dir.path().join("work");
        let start_log = self.dir.path().join("start.log");
        let mut cmd = Command::new(script("start.sh"));
        cmd.arg("--foreground")
            .arg(&work)
            .env("SAML_PORT", self.port.to_string())
            .env("SAML_SPS_FILE", &sps_file)
            .env("SAML_IDP_KEY", &self.key)
            .env("SAML_IDP_CERT", &self.cert)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&start_log).unwrap());
        let server = Server::spawn(
            "SimpleSAMLphp (php -S)",
            &mut cmd,
            Shutdown::Term,
            Duration::from_secs(10),
        )
        .expect("bash runs tests/idp/saml/start.sh");
        let server = self.server.insert(server);
        // Ready when this instance serves its metadata with our certificate.
        let cert = pem_body(&std::fs::read_to_string(&self.cert).unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logs = || {
                format!(
                    "{}\n{}",
                    std::fs::read_to_string(&start_log).unwrap_or_default(),
                    std::fs::read_to_string(work.join("log/php-server.log")).unwrap_or_default()
                )
            };
            if let Some(status) = server.try_exit() {
                panic!("the SAML IdP exited ({status}):\n{}", logs());
            }
            if http_get(self.port, "/saml2/idp/metadata.php")
                .is_some_and(|(status, body)| status == 200 && body.contains(&cert))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the SAML IdP did not serve its metadata within 30 s:\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the IdP (SIGTERM to php and its workers) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }

    /// Key rollover: the IdP comes back signing with a new key.
    pub fn restart_with_new_key(&mut self, n: u32) {
        self.stop();
        let (k, c) = new_pair(self.dir.path(), &format!("idp-{n}"));
        self.key = k;
        self.cert = c;
        self.run_start();
    }

    /// The IdP comes back knowing these SPs (same signing key, so the
    /// metadata an SP cached stays true): for an SP whose key pair exists
    /// only after it read the IdP's metadata.
    pub fn restart_with_sps(&mut self, sps: Value) {
        self.stop();
        self.sps = sps;
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
        // Before the temp dir with its configuration goes.
        self.stop();
    }
}

/// The base64 body of a PEM certificate, as metadata carries it.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
}

/// A plain HTTP/1.0 GET on 127.0.0.1 (blocking: the IdP starts before any
/// async client is needed); `None` while nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, raw))
}

/// An SP entry for the IdP: the gate at `origin` (its ACS and SLO URLs).
pub fn sp_at(origin: &str, entity: &str, cert: &Path, opts: Value) -> Value {
    let mut v = json!({
        "entity_id": entity,
        "acs_url": format!("{origin}/.portcullis/saml/acs"),
        "slo_url": format!("{origin}/.portcullis/saml/slo"),
        "sp_cert_pem": std::fs::read_to_string(cert).unwrap(),
    });
    let Value::Object(opts) = opts else {
        panic!("the SP options are a JSON object, not {opts}")
    };
    for (k, val) in opts {
        v[&k] = val;
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

/// The gate's origin in SAML tests that talk to it by address: the
/// `domain` and `scheme` of [`super::base_yaml`].
pub const APP_ORIGIN: &str = "http://app.test";

/// An SP entry for the IdP, pointing at the ACS of a gate at [`APP_ORIGIN`].
pub fn sp(entity: &str, cert: &Path, opts: Value) -> Value {
    sp_at(APP_ORIGIN, entity, cert, opts)
}

/// The YAML of a SAML gate at [`APP_ORIGIN`] in front of `up`, with
/// `saml_extra` under `saml:` and `top_extra` at the top level.
pub fn saml_yaml(
    up: &str,
    metadata_url: &str,
    entity: &str,
    pair: &SpPair,
    saml_extra: &str,
    top_extra: &str,
) -> String {
    super::base_yaml(
        up,
        &format!(
            "saml:\n  idp_metadata_url: {metadata_url}\n  sp_entity_id: {entity}\n  sp_key_file: {}\n  sp_cert_file: {}\n{saml_extra}{top_extra}",
            pair.key.display(),
            pair.cert.display()
        ),
    )
}

/// What a SAML gate stands between: the SP key pair, a real IdP that knows
/// the given SP entries (all at [`APP_ORIGIN`]) and the upstream app.
/// Gates come from [`SamlSite::gate`], one per SP entry under test.
pub struct SamlSite {
    pub up: super::TestUpstream,
    pub idp: Idp,
    pub pair: SpPair,
}

impl SamlSite {
    /// `sps`: each SP entry's entity ID and its IdP-side options (see
    /// tests/idp/saml/README.md), `json!({})` for the defaults.
    pub async fn start(sps: &[(&str, Value)]) -> SamlSite {
        let pair = sp_pair();
        let idp = Idp::start(Value::Array(
            sps.iter()
                .map(|(entity, opts)| sp(entity, &pair.cert, opts.clone()))
                .collect(),
        ));
        let up = super::TestUpstream::start().await;
        SamlSite { up, idp, pair }
    }

    /// A gate configuration for the SP entry `entity`, with this site's
    /// IdP metadata URL unless told otherwise.
    pub fn gate(&self, entity: &str) -> SamlGate<'_> {
        SamlGate {
            site: self,
            entity: entity.to_string(),
            metadata_url: self.idp.metadata_url(),
            saml_extra: String::new(),
            top_extra: String::new(),
        }
    }
}

/// A builder of one SAML gate of a [`SamlSite`].
#[must_use]
pub struct SamlGate<'a> {
    site: &'a SamlSite,
    entity: String,
    metadata_url: String,
    saml_extra: String,
    top_extra: String,
}

impl SamlGate<'_> {
    /// YAML lines under `saml:` (indented two spaces, newline-terminated).
    pub fn saml(mut self, lines: &str) -> Self {
        self.saml_extra.push_str(lines);
        self
    }

    /// Top-level YAML keys.
    pub fn top(mut self, lines: &str) -> Self {
        self.top_extra.push_str(lines);
        self
    }

    /// Where the gate fetches the IdP metadata (e.g. a server of its own).
    pub fn metadata_url(mut self, url: &str) -> Self {
        self.metadata_url = url.to_string();
        self
    }

    pub fn yaml(&self) -> String {
        saml_yaml(
            &self.site.up.url(),
            &self.metadata_url,
            &self.entity,
            &self.site.pair,
            &self.saml_extra,
            &self.top_extra,
        )
    }

    /// Starts the gate (waits until it is ready).
    pub fn start(self) -> super::Gate {
        super::Gate::start(&self.yaml())
    }
}
