//! Shared test harness: a real upstream HTTP server (echo, WebSocket echo,
//! streaming download/upload, an endless slow stream, slow and hanging
//! endpoints) and the real `portcullis` binary started with a generated
//! configuration, both on loopback ports chosen at run time.

#![allow(dead_code)]

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis::identity::{Identity, IdpKind};
use portcullis::session::{KeyRing, Sessions};

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A running upstream app on 127.0.0.1.
pub struct TestUpstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    held: Arc<Held>,
}

/// Requests to `/held` wait at the upstream until the test releases them, so
/// a test knows that a request is in flight instead of guessing a time.
struct Held {
    arrived: tokio::sync::watch::Sender<usize>,
    released: tokio::sync::watch::Sender<bool>,
}

impl Held {
    fn new() -> Arc<Held> {
        Arc::new(Held {
            arrived: tokio::sync::watch::Sender::new(0),
            released: tokio::sync::watch::Sender::new(false),
        })
    }

    async fn hold(&self) -> Result<Response<BoxBody>, Infallible> {
        let mut released = self.released.subscribe();
        self.arrived.send_modify(|n| *n += 1);
        let _ = released.wait_for(|r| *r).await;
        Ok(Response::new(full("held done")))
    }
}

/// The upstream's answer to `req`: `/held` is held, the rest is the app.
async fn route(held: Arc<Held>, req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    if req.uri().path() == "/held" {
        held.hold().await
    } else {
        upstream_handler(req).await
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestUpstream {
    pub async fn start() -> TestUpstream {
        Self::serve(|stream, h| async move {
            let svc = service_fn(move |req| route(h.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        })
        .await
    }

    /// Listens on a loopback port and hands each accepted connection, with
    /// the shared `/held` state, to `connection` on a task of its own.
    async fn serve<F, Fut>(connection: F) -> TestUpstream
    where
        F: Fn(tokio::net::TcpStream, Arc<Held>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Held::new();
        let h = held.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(connection(stream, h.clone()));
            }
        });
        TestUpstream { addr, task, held }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until `n` requests in all have arrived at `/held`.
    pub async fn wait_held(&self, n: usize) {
        let mut arrived = self.held.arrived.subscribe();
        tokio::time::timeout(Duration::from_secs(20), arrived.wait_for(|got| *got >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} request(s) to /held did not reach the upstream"))
            .unwrap();
    }

    /// Answers every held request (and later ones) with 200 `held done`.
    pub fn release_held(&self) {
        self.held.released.send_replace(true);
    }

    /// The same app over TLS, with a fresh self-signed certificate for
    /// 127.0.0.1; returns the server and the certificate's PEM.
    pub async fn start_tls() -> (TestUpstream, String) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap();
        let pem = cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::try_from(signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let up = Self::serve(move |stream, h| {
            let acceptor = acceptor.clone();
            async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = service_fn(move |req| route(h.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            }
        })
        .await;
        (up, pem)
    }

    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

fn full(s: impl Into<Bytes>) -> BoxBody {
    Full::new(s.into()).boxed()
}

async fn upstream_handler(mut req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |name: &str| -> Option<u64> {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}="))?.parse().ok())
    };
    if path == "/ws" {
        let key = req.headers().get("sec-websocket-key").cloned();
        let Some(key) = key else {
            return Ok(Response::builder()
                .status(400)
                .body(full("no key"))
                .unwrap());
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", accept)
            .body(full(""))
            .unwrap());
    }
    if path == "/download" {
        let total = param("bytes").unwrap_or(0);
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let stream = futures_util::stream::unfold(0u64, move |sent| {
            let chunk = chunk.clone();
            async move {
                if sent >= total {
                    return None;
                }
                let n =
                    usize::try_from(total - sent).map_or(chunk.len(), |left| left.min(chunk.len()));
                Some((
                    Ok::<_, Infallible>(Frame::data(chunk.slice(..n))),
                    sent + n as u64,
                ))
            }
        });
        return Ok(Response::builder()
            .header("content-length", total.to_string())
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap());
    }
    if path == "/trickle" {
        // A response that never ends by itself (a log tail, server-sent
        // events): `tick N` every `ms` milliseconds, chunked.
        let every = Duration::from_millis(param("ms").unwrap_or(100));
        let stream = futures_util::stream::unfold(0u64, move |n| async move {
            if n > 0 {
                tokio::time::sleep(every).await;
            }
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(format!("tick {n}\n")))),
                n + 1,
            ))
        });
        return Ok(Response::builder()
            .header("content-type", "text/plain")
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap());
    }
    if path == "/upload" {
        let mut body = req.into_body();
        let mut n: u64 = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => break,
            }
        }
        return Ok(Response::new(full(n.to_string())));
    }
    if path == "/echo-body" {
        // What a form post delivered: method, target and the body as text.
        let method = req.method().to_string();
        let uri = req.uri().to_string();
        let body = req
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        let v = serde_json::json!({
            "method": method,
            "uri": uri,
            "body": String::from_utf8_lossy(&body),
        });
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .body(full(v.to_string()))
            .unwrap());
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(param("ms").unwrap_or(1000))).await;
        return Ok(Response::new(full("slow done")));
    }
    if path == "/hang" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    // Everything else: echo what arrived, as JSON.
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).to_string();
        headers
            .entry(k.as_str().to_string())
            .and_modify(|e| {
                if let serde_json::Value::String(s) = e {
                    s.push_str(" | ");
                    s.push_str(&v);
                }
            })
            .or_insert(serde_json::Value::String(v));
    }
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "headers": headers,
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .header("server", "test-upstream/1.0")
        .header("x-powered-by", "TestFramework 9")
        .body(full(body.to_string()))
        .unwrap())
}

/// A running `portcullis` process. Dropping it stops it with SIGTERM, its
/// graceful shutdown, and fails the test unless it then exits 0.
pub struct Gate {
    pub server: process::Server,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_yaml: String,
    log_path: PathBuf,
}

impl Drop for Gate {
    fn drop(&mut self) {
        stop_gate(&mut self.server, &self.log_path);
    }
}

/// How long Portcullis may take to stop on SIGTERM in a test: its
/// in-flight requests are the test's own and short.
pub const GATE_STOP_BOUND: Duration = Duration::from_secs(15);

/// Starts the portcullis binary with `cmd`'s arguments as a [`process::Server`].
pub fn spawn_gate(cmd: &mut Command) -> process::Server {
    process::Server::spawn("portcullis", cmd, process::Shutdown::Term, GATE_STOP_BOUND)
        .expect("the portcullis binary starts")
}

/// Stops a gate with SIGTERM; unless the test is already failing, asserts
/// that it exited 0 on its own (its graceful shutdown path).
pub fn stop_gate(server: &mut process::Server, log_path: &Path) {
    let stopped = server.stop();
    if !std::thread::panicking() {
        assert!(
            stopped.status.success() && !stopped.killed,
            "portcullis did not exit 0 after SIGTERM ({}{}); log:\n{}",
            stopped.status,
            if stopped.killed { ", killed" } else { "" },
            std::fs::read_to_string(log_path).unwrap_or_default()
        );
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// The minimal YAML for a gate in front of `upstream`, with plain-http
/// cookies (tests talk http to loopback), `extra` appended.
pub fn base_yaml(upstream: &str, extra: &str) -> String {
    format!(
        "domain: app.test\nscheme: http\nlisten: 127.0.0.1:0\nupstream:\n  url: {upstream}\n  timeout: 3s\nsession:\n  secure_cookie: false\n  key_file: KEYFILE\nlog:\n  format: json\n  level: info\n{extra}"
    )
}

/// The echo upstream and a gate in front of it ([`base_yaml`] with
/// `extra`): the set-up most gate tests start with. The upstream stops when
/// the returned one is dropped.
pub async fn echo_behind_gate(extra: &str) -> (TestUpstream, Gate) {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&base_yaml(&up.url(), extra));
    (up, gate)
}

impl Gate {
    /// Starts the binary with `yaml` (`KEYFILE` is replaced by a key file in
    /// the gate's temp dir) and waits until it logs that it is ready.
    pub fn start(yaml: &str) -> Gate {
        Self::start_with_env(yaml, &[])
    }

    pub fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("keys.json");
        let yaml = yaml.replace("KEYFILE", key_file.to_str().unwrap());
        let config = dir.path().join("gate.yaml");
        std::fs::write(&config, &yaml).unwrap();
        let log_path = dir.path().join("gate.log");
        let (server, addr) = spawn(dir.path(), &log_path, env);
        Gate {
            server,
            addr,
            dir,
            config_yaml: yaml,
            log_path,
        }
    }

    /// Stops the process (SIGTERM, exit 0 asserted) and starts it again
    /// with the same configuration and state directory.
    pub fn restart(&mut self) {
        stop_gate(&mut self.server, &self.log_path);
        let (server, addr) = spawn(self.dir.path(), &self.log_path, &[]);
        self.server = server;
        self.addr = addr;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Audit events (JSON lines with target `audit`).
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "audit")
            .collect()
    }

    /// The audit events named `event`, in order.
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.audit_events()
            .into_iter()
            .filter(|e| e["event"] == event)
            .collect()
    }

    /// The one audit event named `event`; fails unless there is exactly one.
    pub fn only_event(&self, event: &str) -> serde_json::Value {
        let found = self.events(event);
        assert_eq!(found.len(), 1, "{found:?}");
        found.into_iter().next().unwrap()
    }

    /// GETs `path` with alice's session cookie and the request claiming, in
    /// `X-Forwarded-For`, to come from `forwarded_for`.
    pub async fn get_as_alice_from(
        &self,
        c: &reqwest::Client,
        path: &str,
        forwarded_for: &str,
    ) -> reqwest::Response {
        let cookie = self.session_cookie(&alice());
        get_with_headers(
            c,
            self.url(path),
            &[("cookie", &cookie), ("x-forwarded-for", forwarded_for)],
        )
        .await
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("keys.json")
    }

    /// A session cookie `name=value` minted with Portcullis' own session code
    /// and this gate's key file, for `identity`.
    pub fn session_cookie(&self, identity: &Identity) -> String {
        mint_cookie(&self.config_yaml, &self.key_file(), identity, |_| {})
    }

    pub fn pid(&self) -> u32 {
        self.server.id()
    }

    /// Sends the signal named as `kill -NAME` spells it.
    pub fn signal(&self, sig: &str) {
        self.server.signal(process::signal_named(sig));
    }

    /// Waits up to `bound` for the process to exit by itself.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        self.server.wait_exit(bound)
    }

    /// Resident set size, and its peak, in kB.
    pub fn rss_kb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

fn spawn(dir: &Path, log_path: &Path, env: &[(&str, &str)]) -> (process::Server, SocketAddr) {
    let log = std::fs::File::create(log_path).unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("--config")
        .arg(dir.join("gate.yaml"))
        .env("STATE_DIRECTORY", dir)
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut server = spawn_gate(&mut cmd);
    let addr = wait_ready(&mut server, log_path);
    (server, addr)
}

/// Mints a session cookie; `tweak` may change the claims before signing.
pub fn mint_cookie(
    yaml: &str,
    key_file: &Path,
    identity: &Identity,
    tweak: impl FnOnce(&mut portcullis::session::SessionClaims),
) -> String {
    let config = portcullis::config::from_yaml_str(yaml).expect("test config is valid");
    let ring = KeyRing::load(key_file).expect("gate created its key file");
    let sessions = Sessions::new(&config, Arc::new(ring));
    let mut claims = sessions.claims_for(identity, IdpKind::Oidc, portcullis::session::now());
    tweak(&mut claims);
    let token = sessions.encode(&claims).unwrap();
    format!("{}={}", sessions.cookie_name(), token)
}

fn wait_ready(server: &mut process::Server, log_path: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = server.try_exit() {
            panic!(
                "portcullis exited before it was ready ({status}); log:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
        if let Ok(f) = std::fs::File::open(log_path) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "portcullis ready"
                {
                    return v["listen"].as_str().unwrap().parse().unwrap();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "portcullis did not become ready; log:\n{}",
        std::fs::read_to_string(log_path).unwrap_or_default()
    );
}

pub fn alice() -> Identity {
    Identity {
        subject: "alice-sub".into(),
        user: "alice".into(),
        email: Some("alice@example.com".into()),
        name: Some("Alice Example".into()),
        preferred_username: Some("alice".into()),
        groups: vec!["admins".into(), "staff".into()],
        ..Default::default()
    }
}

pub fn bob() -> Identity {
    Identity {
        subject: "bob-sub".into(),
        user: "bob".into(),
        email: Some("bob@example.org".into()),
        name: Some("Bob Builder".into()),
        groups: vec!["staff".into()],
        ..Default::default()
    }
}

/// An HTTP client that never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `portcullis check-config` on the smallest valid configuration plus
/// `extra` (top-level YAML keys), as an operator would run it.
pub fn check_config_with(extra: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!("domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\n{extra}"),
    )
    .unwrap();
    std::process::Command::new(bin())
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap()
}

/// The gate's health check at `health_url` answers 200: the process is up
/// and serving.
pub async fn assert_health_ok(health_url: String) {
    let r = client().get(health_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Runs `portcullis keygen --out out`: a new key ring there, or the next
/// key in the one already there.
pub fn keygen(out: &Path) -> std::process::Output {
    Command::new(bin())
        .args(["keygen", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

/// The one `access_denied` event of a login by bob, who is outside
/// allowed_groups: it must name bob and the membership rule. Returned for
/// the test's further checks.
pub fn only_denial_of_bob(denied: Vec<serde_json::Value>) -> serde_json::Value {
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["user"], "bob");
    assert_eq!(
        denied[0]["rule"],
        "allowed_groups/allowed_emails/allowed_email_domains/allowed_roles"
    );
    denied.into_iter().next().unwrap()
}

/// An API client's GET with a session cookie: it accepts JSON, so a refusal
/// is a 401 rather than a redirect to the IdP.
pub async fn api_get(c: &reqwest::Client, url: String, cookie: &str) -> reqwest::Response {
    c.get(url)
        .header("cookie", cookie)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
}

/// A GET with `headers` (added in order, a repeated name sent twice).
pub async fn get_with_headers(
    c: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    headers
        .iter()
        .fold(c.get(url), |rb, (k, v)| rb.header(*k, *v))
        .send()
        .await
        .unwrap()
}

/// The body of a plain GET (metrics, metadata), whatever its status.
pub async fn get_text(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// A browser's top-level navigation (it accepts HTML, so a refusal is a
/// redirect to sign in rather than a 401).
pub async fn browser_get(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> reqwest::Response {
    get_with_headers(c, url, &[("accept", BROWSER_ACCEPT)]).await
}

pub const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

pub mod cases;
pub mod oidc;
pub mod paths;
pub mod process;

pub mod redis;
pub mod revocation;
pub mod saml;
pub mod spoofs;

/// The uid of `user` in /etc/passwd (tests hand files to `nobody`).
pub fn uid_of(user: &str) -> u32 {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{user}:"))
                .map(|r| r.split(':').nth(1).unwrap().parse::<u32>().unwrap())
        })
        .unwrap_or_else(|| panic!("no user {user} in /etc/passwd"))
}

/// A free loopback port (bound and released; the gate binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
