//! Helpers for the operations tests (reload, Unix socket, metrics, nginx):
//! a gate that may listen on a Unix socket, log polling, a strict parser of
//! the metrics text, and a real nginx started with a generated config.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::process::{Server, Shutdown};

/// Where a started gate listens.
#[derive(Debug, Clone)]
pub enum Where {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A running `portcullis` whose config file can be rewritten and reloaded.
/// Dropping it stops it with SIGTERM and fails the test unless it exits 0.
pub struct Gate {
    pub server: Server,
    pub at: Where,
    pub dir: tempfile::TempDir,
    /// The YAML as written (KEYFILE resolved).
    pub yaml: String,
    log_path: PathBuf,
}

impl Drop for Gate {
    fn drop(&mut self) {
        common::stop_gate(&mut self.server, &self.log_path);
    }
}

impl Gate {
    /// `yaml` may contain `KEYFILE` and `DIR` (the gate's temp dir).
    pub fn start(yaml: &str, env: &[(&str, &str)]) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let yaml = resolve(yaml, dir.path());
        let config = dir.path().join("gate.yaml");
        std::fs::write(&config, &yaml).unwrap();
        let log_path = dir.path().join("gate.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(common::bin());
        cmd.arg("--config")
            .arg(&config)
            .env("STATE_DIRECTORY", dir.path())
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let server = common::spawn_gate(&mut cmd);
        let mut g = Gate {
            server,
            at: Where::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            dir,
            yaml,
            log_path,
        };
        let ready = g.wait_log(|v| v["message"] == "portcullis ready", 1);
        let listen = ready["listen"].as_str().unwrap().to_string();
        g.at = match listen.strip_prefix("unix:") {
            Some(p) => Where::Unix(p.into()),
            None => Where::Tcp(listen.parse().unwrap()),
        };
        g
    }

    pub fn addr(&self) -> SocketAddr {
        match &self.at {
            Where::Tcp(a) => *a,
            Where::Unix(p) => panic!("gate listens on {}", p.display()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gate.yaml")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("keys.json")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The audit events named `event`, in order.
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.log_lines()
            .into_iter()
            .filter(|e| e["target"] == "audit" && e["event"] == event)
            .collect()
    }

    /// Waits until `n` log lines match `pred`; returns the last of them.
    pub fn wait_log(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
        n: usize,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let hits: Vec<serde_json::Value> =
                self.log_lines().into_iter().filter(|v| pred(v)).collect();
            if hits.len() >= n {
                return hits[n - 1].clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("log line not seen; log:\n{}", self.log());
    }

    /// Replaces the config file (KEYFILE and DIR resolved) and sends SIGHUP;
    /// returns once the gate logged the outcome of reload number `n`.
    pub fn reload_with(&self, yaml: &str, n: usize) -> serde_json::Value {
        std::fs::write(self.config_path(), resolve(yaml, self.dir.path())).unwrap();
        self.hup_and_wait(n)
    }

    pub fn hup_and_wait(&self, n: usize) -> serde_json::Value {
        self.server.signal(rustix::process::Signal::HUP);
        self.wait_log(
            |v| {
                v["message"] == "configuration reloaded"
                    || v["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("configuration reload refused"))
            },
            n,
        )
    }

    /// A session cookie for `identity`, signed with the key ring's active key
    /// as the file is now.
    pub fn cookie(&self, identity: &portcullis::identity::Identity) -> String {
        common::mint_cookie(&self.yaml, &self.key_file(), identity, |_| {})
    }
}

/// A signed-in GET through a front proxy that also forges
/// `X-Forwarded-User: root`: the app must answer 200 (else `why()` shows the
/// proxy's log) for `uri` and see alice, never the forged name. Returns the
/// echo for the test's own header checks.
pub async fn alice_reaches_app_despite_forged_user(
    c: &reqwest::Client,
    url: String,
    cookie: &str,
    uri: &str,
    why: impl FnOnce() -> String,
) -> serde_json::Value {
    let r =
        common::get_with_headers(c, url, &[("cookie", cookie), ("x-forwarded-user", "root")]).await;
    assert_eq!(r.status(), 200, "{}", why());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["uri"], uri);
    assert_eq!(v["headers"]["x-forwarded-user"], "alice");
    v
}

fn resolve(yaml: &str, dir: &Path) -> String {
    yaml.replace("KEYFILE", dir.join("keys.json").to_str().unwrap())
        .replace("DIR", dir.to_str().unwrap())
}

/// A free loopback port for a server that binds it later (nginx, a metrics
/// listener). Taken below the kernel's ephemeral range, so that no `:0`
/// bind of a concurrent test gets it meanwhile, and never twice per process.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap();
    let seed = u64::from(std::process::id()) ^ portcullis::session::now();
    for i in 0..2000u64 {
        let port = 20000 + ((seed.wrapping_mul(7919) + i * 104_729) % 12000) as u16;
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// Plain HTTP/1.1 GET over a Unix socket; returns (status, headers, body).
pub fn unix_get(path: &Path, target: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Parses OpenMetrics / Prometheus text exposition strictly enough to catch
/// a malformed answer: every line is a comment of a known kind or a sample
/// `name{label="value",…} number` belonging to the family declared by the
/// last `# TYPE`, and the text ends with `# EOF`. Returns each series (name
/// plus sorted labels) with its value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut family: Option<(String, String)> = None;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().expect("comment names a metric");
            assert!(valid_name(name), "bad name in {line}");
            match kind {
                "TYPE" => {
                    let t = parts.next().expect("type");
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "info",
                            "summary",
                            "unknown",
                            "stateset",
                            "gaugehistogram"
                        ]
                        .contains(&t),
                        "{line}"
                    );
                    family = Some((name.to_string(), t.to_string()));
                }
                "HELP" | "UNIT" => {}
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let inner = rest.strip_suffix('}').expect("labels close");
                let mut labels: Vec<String> = Vec::new();
                for pair in split_labels(inner) {
                    let (k, v) = pair.split_once('=').expect("label k=v");
                    assert!(valid_name(k), "label name in {line}");
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "quoted label value in {line}"
                    );
                    labels.push(format!("{k}={v}"));
                }
                labels.sort();
                (n, labels)
            }
            None => (series, vec![]),
        };
        assert!(valid_name(name), "bad sample name in {line}");
        let (fam, kind) = family.as_ref().expect("sample after a TYPE line");
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        assert!(
            suffixes.iter().any(|s| name == format!("{fam}{s}")),
            "sample {name} does not belong to family {fam} ({kind})"
        );
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", labels.join(","))
        };
        assert!(
            out.insert(key.clone(), value).is_none(),
            "duplicate series {key}"
        );
    }
    out
}

fn split_labels(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_q = false;
    let mut esc = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if in_q && !esc => {
                esc = true;
                continue;
            }
            '"' if !esc => in_q = !in_q,
            ',' if !in_q => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        esc = false;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// A real nginx (the Debian package) with a generated main config that
/// includes `site`, all its files in a temp dir. Dropping it stops it
/// gracefully (SIGQUIT to the master, which stops its workers).
pub struct Nginx {
    server: Server,
    pub dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Before the temp dir with its config and logs goes.
        self.server.stop();
    }
}

pub fn nginx_bin() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!(
        "nginx is not installed: `apt-get install nginx-light` (the test command installs the packages in scripts/apt-packages-ship.txt)"
    );
}

impl Nginx {
    /// Starts nginx with `site` (a server-level config) and waits until
    /// `port` accepts connections.
    pub fn start(site: &str, port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("site.conf"), site).unwrap();
        let main = format!(
            "worker_processes 1;\n\
             daemon off;\n\
             user root;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
               access_log {d}/access.log;\n\
               client_body_temp_path {d}/tmp/body;\n\
               proxy_temp_path {d}/tmp/proxy;\n\
               fastcgi_temp_path {d}/tmp/fastcgi;\n\
               uwsgi_temp_path {d}/tmp/uwsgi;\n\
               scgi_temp_path {d}/tmp/scgi;\n\
               include {d}/site.conf;\n\
             }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
        let test = Command::new(nginx_bin())
            .args(["-t", "-p", d, "-c"])
            .arg(dir.path().join("nginx.conf"))
            .output()
            .unwrap();
        assert!(
            test.status.success(),
            "nginx -t refused the config:\n{}\n{site}",
            String::from_utf8_lossy(&test.stderr)
        );
        let server = Server::spawn(
            "nginx",
            Command::new(nginx_bin())
                .args(["-p", d, "-c"])
                .arg(dir.path().join("nginx.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            Shutdown::Quit,
            Duration::from_secs(10),
        )
        .unwrap();
        let mut nginx = Nginx { server, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = nginx.server.try_exit() {
                panic!("nginx exited ({status}):\n{}", nginx.error_log());
            }
            // Listening, and it is nginx's socket: its log says so.
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && nginx.error_log().contains("start worker process")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start:\n{}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// nginx's `server …;` line for a gate.
pub fn nginx_upstream_server(at: &Where) -> String {
    match at {
        Where::Tcp(a) => format!("server {a};"),
        Where::Unix(p) => format!("server unix:{};", p.display()),
    }
}

/// The shipped nginx example `example` (in config-examples/) for `domain`
/// with this test's ports, a fresh self-signed certificate (kept in the
/// returned directory), the gate's address and, in forward-auth mode, the
/// app's: nothing else is changed.
pub fn nginx_site(
    example: &str,
    domain: &str,
    gate: &Where,
    tls_port: u16,
    http_port: u16,
    app: Option<SocketAddr>,
) -> (String, tempfile::TempDir) {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/config-examples/{example}")).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path(), domain);
    let mut s = replace_once(
        &text,
        "/etc/ssl/certs/app.example.com.pem",
        cert.to_str().unwrap(),
    );
    s = replace_once(
        &s,
        "/etc/ssl/private/app.example.com.key",
        key.to_str().unwrap(),
    );
    s = replace_once(&s, "app.example.com", domain);
    s = replace_once(
        &s,
        "listen 443 ssl http2;",
        &format!("listen 127.0.0.1:{tls_port} ssl http2;"),
    );
    s = replace_once(&s, "listen [::]:443 ssl http2;", "");
    s = replace_once(&s, "listen 80;", &format!("listen 127.0.0.1:{http_port};"));
    s = replace_once(&s, "listen [::]:80;", "");
    s = replace_once(&s, "server 127.0.0.1:4180;", &nginx_upstream_server(gate));
    if let Some(app) = app {
        s = replace_once(
            &s,
            "proxy_pass http://127.0.0.1:3000;",
            &format!("proxy_pass http://{app};"),
        );
    }
    (s, certs)
}

/// A self-signed certificate for `host` (openssl CLI), as (cert, key) paths.
pub fn self_signed(dir: &Path, host: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={host}")])
        .args(["-addext", &format!("subjectAltName=DNS:{host}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// Reads a line-oriented file and panics with the whole file if `needle`
/// is absent: keeps example substitutions honest.
pub fn replace_once(text: &str, needle: &str, with: &str) -> String {
    assert!(
        text.contains(needle),
        "the example no longer contains `{needle}`; update the test with it"
    );
    text.replace(needle, with)
}

pub fn first_line_with(path: &Path, needle: &str) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains(needle))
}
