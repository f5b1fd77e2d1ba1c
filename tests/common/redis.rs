//! A real Redis (Debian's `redis-server`) on a loopback port chosen at run
//! time, with a password, no persistence (a restart empties it, the worst
//! case for "nothing is lost"), optionally TLS only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::process::{Server, Shutdown};

pub const PASSWORD: &str = "redis-test-pw-7d1e";

/// The files of a TLS Redis: its certificate and key, and the CA that
/// signed them (which the clients trust).
pub struct TlsFiles {
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

pub struct Redis {
    pub port: u16,
    pub dir: tempfile::TempDir,
    server: Option<Server>,
    tls: Option<TlsFiles>,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_with(None)
    }

    /// TLS only (`tls-port`, no plain port), signed by a CA made here.
    pub fn start_tls() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let files = make_ca_and_cert(dir.path());
        let mut r = Self::start_in(dir, Some(files));
        r.wait_ready();
        r
    }

    fn start_with(tls: Option<TlsFiles>) -> Redis {
        let mut r = Self::start_in(tempfile::tempdir().unwrap(), tls);
        r.wait_ready();
        r
    }

    fn start_in(dir: tempfile::TempDir, tls: Option<TlsFiles>) -> Redis {
        let mut r = Redis {
            port: free_port(),
            dir,
            server: None,
            tls,
        };
        r.spawn();
        r
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", PASSWORD])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match &self.tls {
            None => {
                cmd.args(["--port", &port]);
            }
            Some(t) => {
                cmd.args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(&t.cert)
                    .arg("--tls-key-file")
                    .arg(&t.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&t.ca)
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        self.server = Some(
            Server::spawn(
                "redis-server",
                &mut cmd,
                Shutdown::Term,
                Duration::from_secs(10),
            )
            .expect("redis-server starts (the redis-server package is installed)"),
        );
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            // Each start appends; count the starts that became ready.
            let starts = log.matches("Redis is starting").count();
            let ready = log.matches("Ready to accept connections").count();
            if starts > 0 && ready == starts {
                return;
            }
            if let Some(status) = self.server.as_mut().and_then(Server::try_exit) {
                panic!("redis-server exited ({status}); log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not become ready; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it the way its operator would (SIGTERM) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let stopped = s.stop();
            assert!(!stopped.killed, "redis-server needed SIGKILL");
        }
    }

    /// Starts it again on the same port, empty (it keeps nothing on disk).
    pub fn start_again(&mut self) {
        assert!(self.server.is_none(), "stop it first");
        self.spawn();
        self.wait_ready();
    }

    /// `redis://` or `rediss://` URL without the password.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// A file with the password, as `revocation.redis_password_file` reads it.
    pub fn password_file(&self, password: &str) -> PathBuf {
        let p = self.dir.path().join(format!("password-{password}"));
        std::fs::write(&p, format!("{password}\n")).unwrap();
        p
    }

    /// A command-line client (`redis-cli`), for what the test looks up in
    /// Redis itself.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .env("REDISCLI_AUTH", PASSWORD)
            .arg("--no-auth-warning");
        if let Some(t) = &self.tls {
            cmd.arg("--tls").arg("--cacert").arg(&t.ca);
        }
        let o = cmd.args(args).output().expect("redis-cli runs");
        assert!(o.status.success(), "redis-cli {args:?}: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    }
}

fn make_ca_and_cert(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Portcullis test Redis CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("redis.pem"),
        key: dir.join("redis.key"),
    };
    std::fs::write(&files.ca, ca_cert.pem()).unwrap();
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}
