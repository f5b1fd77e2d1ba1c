//! The path battery: request targets that try to get a protected path
//! served anonymously through the passthrough prefix `/public/` (out of it
//! and into it; encoded, double-encoded, backslash, `;`, dot segments,
//! absolute-form, `OPTIONS *`, CONNECT), sent byte for byte over a raw
//! connection; an upstream that records every request it receives; and the
//! judge, which reads what the upstream received the way routers behind a
//! gate do — by raw prefix, and after decoding and resolving everything —
//! independently of Portcullis' own normalisation.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::cases::Cases;

/// Carries the case number from the client to the upstream's record.
pub const CASE_HEADER: &str = "x-battery-case";

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target exactly as it arrived.
    pub target: String,
    pub headers: http::HeaderMap,
}

/// An upstream app that records every request and answers 200 with a small
/// JSON echo (`method`, `uri`, `headers`).
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RecordingUpstream {
    pub async fn start() -> RecordingUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(record(&log, &req)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        RecordingUpstream { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// What arrived for battery case `n`.
    pub fn seen_for(&self, n: usize) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| {
                s.headers
                    .get(CASE_HEADER)
                    .is_some_and(|v| v.as_bytes() == n.to_string().as_bytes())
            })
            .collect()
    }
}

fn record(log: &Mutex<Vec<Seen>>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let seen = Seen {
        method: req.method().to_string(),
        target: req.uri().to_string(),
        headers: req.headers().clone(),
    };
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        headers.insert(
            k.as_str().to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
        );
    }
    let body = serde_json::json!({
        "method": seen.method,
        "uri": seen.target,
        "headers": headers,
    });
    log.lock().unwrap().push(seen);
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// A raw HTTP/1.1 answer.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Sends `head` (request line and headers, without the closing blank line;
/// `Connection: close` is added) and reads the whole answer.
pub async fn send_raw<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, head: &str) -> RawResponse {
    let req = format!("{head}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut raw)).await;
    assert!(read.is_ok(), "no complete answer within 15 s to {head:?}");
    parse_response(&raw)
}

pub async fn send_tcp(addr: SocketAddr, head: &str) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    send_raw(stream, head).await
}

/// Over TLS to `addr` (a test server with a throw-away self-signed
/// certificate, so the certificate is not checked).
pub async fn send_tls(addr: SocketAddr, server_name: &str, head: &str) -> RawResponse {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    send_raw(stream, head).await
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// What the gate must do with a case in proxy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Forwarded anonymously, the target unchanged.
    Public,
    /// Authenticated: the gate's own 401 naming the sign-in URL.
    Login,
    /// Refused by the gate with this status (its own page, with the
    /// request id).
    Refused(u16),
    /// Refused by the front proxy itself with this status, before or
    /// after asking the gate; nothing reaches the app.
    FrontRefused(u16),
    /// `OPTIONS *`: answered by the gate itself, 200 and empty.
    ServerOptions,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub method: &'static str,
    pub target: String,
    pub expect: Expect,
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.target)
    }
}

impl Case {
    /// The request head, with the case number for the upstream's record.
    pub fn head(&self, n: usize, host: &str, extra: &str) -> String {
        format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n{CASE_HEADER}: {n}{extra}",
            self.method, self.target
        )
    }

    /// The origin-form target an upstream gets for this case (a fragment
    /// is not part of it).
    pub fn forwarded_target(&self) -> String {
        let target = self.target.split('#').next().unwrap_or_default();
        match target.strip_prefix("http://") {
            Some(rest) => rest.find('/').map_or("/".into(), |i| rest[i..].to_string()),
            None => target.to_string(),
        }
    }
}

/// At least 40 shapes, out of `/public/` and into it, with the passthrough
/// rule `prefix: /public/` and `host` as the domain.
pub fn cases(host: &str) -> Vec<Case> {
    use Expect::*;
    let c = |method: &'static str, target: &str, expect: Expect| Case {
        method,
        target: target.to_string(),
        expect,
    };
    let abs = |p: &str| format!("http://{host}{p}");
    let authority = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:443")
    };
    vec![
        // Controls.
        c("GET", "/public/x", Public),
        c("GET", "/public/", Public),
        c("GET", "/public/a%20b", Public),
        c("GET", "/public/a%3Fb", Public),
        c("GET", "/public/x?next=../../admin", Public),
        c("GET", "/admin", Login),
        c("GET", "/public", Login),
        c("GET", "/PUBLIC/x", Login),
        c("POST", "/public/x", Public),
        // Out of the prefix: dot segments, plain and encoded.
        c("GET", "/public/../admin", Login),
        c("GET", "/public/./../admin", Login),
        c("GET", "/public/x/../../admin", Login),
        c("GET", "/public/%2e%2e/admin", Login),
        c("GET", "/public/%2E%2E/admin", Login),
        c("GET", "/public/.%2e/admin", Login),
        c("GET", "/public/%2e./admin", Login),
        // Encoded separators and double encoding.
        c("GET", "/public%2F..%2Fadmin", Login),
        c("GET", "/public/..%2Fadmin", Login),
        c("GET", "/public/..%2fadmin", Login),
        c("GET", "/public/%2e%2e%2fadmin", Login),
        c("GET", "/public/%252e%252e/admin", Login),
        c("GET", "/public/%252e%252e%252fadmin", Login),
        c("GET", "/public/%5C..%5Cadmin", Login),
        c("GET", "/public/%c0%ae%c0%ae/admin", Login),
        // Backslashes.
        c("GET", "/public\\..\\admin", Login),
        c("GET", "/public/..\\admin", Login),
        // Matrix parameters.
        c("GET", "/public/..;/admin", Login),
        c("GET", "/public/..%3B/admin", Login),
        c("GET", "/public;x=1/../admin", Login),
        // Doubled slashes, trailing dots and spaces, NUL, bad escapes.
        c("GET", "//public/../admin", Login),
        c("GET", "/public//../admin", Login),
        c("GET", "/public/..%20/admin", Login),
        c("GET", "/public/..%00/admin", Login),
        c("GET", "/public/admin.", Login),
        c("GET", "/public/%zz", Login),
        // Into the prefix from a protected path.
        c("GET", "/admin/../public/x", Login),
        c("GET", "/admin/./../public/x", Login),
        c("GET", "/admin/..;/public/x", Login),
        c("GET", "/admin;/../public/x", Login),
        c("GET", "/admin/%2e%2e/public/x", Login),
        c("GET", "/admin/%2E%2E/public/x", Login),
        c("GET", "/admin%2F..%2Fpublic/x", Login),
        c("GET", "/admin/..%2Fpublic/x", Login),
        c("GET", "/admin/%252e%252e/public/x", Login),
        c("GET", "/admin\\..\\public/x", Login),
        c("GET", "//admin/../public/x", Login),
        c("GET", "/%61dmin/../public/x", Login),
        // Forms that only normalise into the prefix.
        c("GET", "/%70ublic/x", Login),
        c("GET", "/public/%78", Login),
        c("GET", "/public/a%3fb", Login),
        c("GET", "/public/x/.", Login),
        c("GET", "/public/x/..", Login),
        // Absolute-form: judged on the path that is forwarded.
        c("GET", &abs("/public/x"), Public),
        c("GET", &abs("/admin/../public/x"), Login),
        c("GET", &abs("/public/../admin"), Login),
        c("GET", &abs("/public/%2e%2e/admin"), Login),
        // The reserved prefix read two ways.
        c("GET", "/public/../.portcullis/logout", Refused(400)),
        c("GET", "/.portcullis/../admin", Refused(400)),
        c("GET", "/%2Eportcullis/health", Refused(400)),
        // A fragment, which no request target has: the proxy drops it and
        // forwards the path it judged; a front that describes it whole
        // must not get a passthrough answer for the path before it.
        c("GET", "/public/x#/../../admin", Public),
        c("GET", "/admin#/../public/x", Login),
        // Not paths at all.
        c("OPTIONS", "*", ServerOptions),
        c("CONNECT", &authority, Refused(405)),
    ]
}

/// How a router that decodes and resolves everything (percent escapes to a
/// fixed point, `\` as `/`, `;params` dropped, dot segments resolved,
/// Windows' trailing dots and spaces trimmed, case folded) reads a path.
pub fn lenient_reading(target: &str) -> String {
    let path = target.split('?').next().unwrap_or("");
    let mut decoded = path.to_string();
    for _ in 0..4 {
        let next = percent_encoding::percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let unified = decoded
        .replace('\\', "/")
        .replace('\0', "")
        .to_ascii_lowercase();
    let mut out: Vec<String> = Vec::new();
    for seg in unified.split('/') {
        let seg = seg.split(';').next().unwrap_or("").trim_end_matches(' ');
        let seg = if seg.len() >= 2 && seg.bytes().all(|b| b == b'.') {
            ".."
        } else if seg == "." {
            "."
        } else {
            seg.trim_end_matches('.')
        };
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
    format!("/{}", out.join("/"))
}

/// Whether every reader takes `target` for a path under `/public/`: the raw
/// prefix, and the lenient reading.
pub fn every_reader_sees_public(target: &str) -> bool {
    let raw_path = target.split('?').next().unwrap_or("");
    raw_path.starts_with("/public/") && {
        let l = lenient_reading(target);
        l.starts_with("/public/") || (l == "/public" && raw_path == "/public/")
    }
}

/// One case's outcome, as the client and the upstream saw it.
pub struct Outcome {
    pub response: RawResponse,
    pub seen: Vec<Seen>,
}

/// Checks one case against `expect` and returns what was wrong, if
/// anything. `gate_login` says how the gate's 401 looks through this
/// front: `true` when it is Portcullis' JSON page (proxy, Caddy), `false`
/// when the front proxy renders its own 401 (nginx's `error_page`).
pub fn judge(case: &Case, expect: Expect, out: &Outcome, gate_login_page: bool) -> Option<String> {
    let r = &out.response;
    for s in &out.seen {
        if !every_reader_sees_public(&s.target) {
            return Some(format!(
                "reached the upstream as {:?}, which a router reads as {:?}",
                s.target,
                lenient_reading(&s.target)
            ));
        }
    }
    match expect {
        Expect::Public => {
            let targets: Vec<&str> = out.seen.iter().map(|s| s.target.as_str()).collect();
            if r.status != 200 || targets != [case.forwarded_target().as_str()] {
                return Some(format!(
                    "expected to be forwarded unchanged as {:?}; got {} and the upstream saw {targets:?}",
                    case.forwarded_target(),
                    r.status
                ));
            }
        }
        Expect::Login => {
            if !out.seen.is_empty() {
                return Some("reached the upstream without a session".into());
            }
            if r.status != 401 {
                return Some(format!("expected 401, got {} {}", r.status, r.body));
            }
            if gate_login_page {
                let v = r.json().unwrap_or_default();
                let login = v["login_url"].as_str().unwrap_or("");
                if v["error"] != "login_required" || !login.starts_with("/.portcullis/login?rd=%2F")
                {
                    return Some(format!("401 is not the gate's login page: {}", r.body));
                }
            }
            if !r
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Portcullis realm="))
            {
                return Some(format!("401 without the gate's challenge: {:?}", r.headers));
            }
        }
        Expect::Refused(status) => {
            if !out.seen.is_empty() {
                return Some("reached the upstream".into());
            }
            if r.status != status || r.header("x-request-id").is_none() {
                return Some(format!(
                    "expected the gate's {status}, got {} {:?} {}",
                    r.status, r.headers, r.body
                ));
            }
        }
        Expect::FrontRefused(status) => {
            if !out.seen.is_empty() {
                return Some("reached the upstream".into());
            }
            if r.status != status {
                return Some(format!("expected {status}, got {} {}", r.status, r.body));
            }
        }
        Expect::ServerOptions => {
            if !out.seen.is_empty() || r.status != 200 || !r.body.is_empty() {
                return Some(format!(
                    "expected the gate's empty 200, got {} {:?}, upstream saw {}",
                    r.status,
                    r.body,
                    out.seen.len()
                ));
            }
        }
    }
    None
}

/// Sends every case of [`cases`] for `host` with `send` and judges it,
/// with `expect` saying what the front in use makes of each; the outcome
/// table goes to the test's output. The caller may add checks, then
/// finishes the returned cases.
pub async fn run_battery(
    host: &str,
    upstream: &RecordingUpstream,
    expect: impl Fn(&Case) -> Expect,
    gate_login_page: bool,
    send: impl AsyncFn(String) -> RawResponse,
) -> Cases {
    check_the_judge();
    let all = cases(host);
    assert!(all.len() >= 40, "{} shapes", all.len());
    let mut results = Cases::new();
    for (n, case) in all.iter().enumerate() {
        let response = send(case.head(n, host, "")).await;
        let out = Outcome {
            response,
            seen: upstream.seen_for(n),
        };
        eprintln!(
            "{case} -> {} seen {:?}",
            out.response.status,
            out.seen.iter().map(|s| &s.target).collect::<Vec<_>>()
        );
        let why = judge(case, expect(case), &out, gate_login_page);
        results.check(case, why.is_none(), || why.unwrap_or_default());
    }
    let stray: Vec<String> = upstream
        .seen()
        .iter()
        .filter(|s| !s.headers.contains_key(CASE_HEADER))
        .map(|s| s.target.clone())
        .collect();
    results.eq("requests of no case at the upstream", stray, vec![]);
    results
}

/// A client's own copy of a front proxy's forwarded-request headers:
/// (method, target, extra header lines, the status wanted, whether the
/// request reaches the app).
pub type FamilyCase = (&'static str, &'static str, &'static str, u16, bool);

/// Sends each case to `host` with `send` and records whether its status
/// and the app's sighting of it are the wanted ones. The caller may add
/// checks, then finishes the returned cases.
pub async fn run_family_cases(
    host: &str,
    cases: &[FamilyCase],
    upstream: &RecordingUpstream,
    send: impl AsyncFn(String) -> RawResponse,
) -> Cases {
    let mut results = Cases::new();
    for (n, (method, target, extra, want, reaches)) in cases.iter().enumerate() {
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n{CASE_HEADER}: {n}{extra}"
        );
        let r = send(head).await;
        let seen = upstream.seen_for(n).len();
        results.check(
            format!("{method} {target} with {extra:?}"),
            (r.status, seen) == (*want, usize::from(*reaches)),
            || {
                format!(
                    "{} (the app saw {seen}), expected {want} (reaching it: {reaches}): {}",
                    r.status, r.body
                )
            },
        );
    }
    results
}

/// Records in `results` whether the `refused` (request_refused audit
/// events) are the `n` refusals of a disagreeing forwarded header.
pub fn check_refused_as_disagreeing(results: &mut Cases, refused: &[serde_json::Value], n: usize) {
    results.check(
        "request_refused audit events",
        all_refused_as_disagreeing(refused, n),
        || format!("{refused:?}"),
    );
}

/// Whether `refused` (request_refused audit events) are exactly `n`, each
/// for a forwarded header that disagrees with the request.
pub fn all_refused_as_disagreeing(refused: &[serde_json::Value], n: usize) -> bool {
    refused.len() == n
        && refused.iter().all(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("disagrees"))
        })
}

/// The judge's own readers, checked on known inputs (so a broken judge
/// cannot pass a broken gate).
fn check_the_judge() {
    for (t, want) in [
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%252e%252e/admin", "/admin"),
        ("/public\\..\\admin", "/admin"),
        ("/public/..;/admin", "/admin"),
        ("/public/..%20/admin", "/admin"),
        ("/public/x?a=../b", "/public/x"),
        ("/PUBLIC/x", "/public/x"),
    ] {
        assert_eq!(lenient_reading(t), want, "{t}");
    }
    assert!(every_reader_sees_public("/public/x"));
    assert!(!every_reader_sees_public("/public/../admin"));
    assert!(!every_reader_sees_public("/admin/../public/x"));
    assert!(!every_reader_sees_public("/%70ublic/x"));
}
