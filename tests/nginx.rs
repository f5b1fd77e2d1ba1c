//! Real nginx (the Debian package) in front of Portcullis, configured from
//! the shipped examples in config-examples/ (only host names, ports,
//! certificate paths and addresses replaced), over TLS, in proxy mode and in
//! auth_request mode, with Portcullis on TCP and on a Unix socket.

mod common;
mod operations_support;

use std::net::SocketAddr;

use common::{BROWSER_ACCEPT, TestUpstream, alice, bob};
use operations_support::*;
use serde_json::Value;

const DOMAIN: &str = "app.test";

fn gate_yaml(upstream: &str, unix: bool) -> String {
    let listen = if unix {
        "unix:DIR/gate.sock"
    } else {
        "127.0.0.1:0"
    };
    format!(
        "domain: {DOMAIN}\nlisten: {listen}\nupstream:\n  url: {upstream}\n  timeout: 5s\nsession:\n  key_file: KEYFILE\npassthrough:\n  paths:\n    - prefix: /public/\nlog:\n  format: json\n  level: info\n"
    )
}

/// nginx's `server …;` line for the gate.
fn gate_server(gate: &Gate) -> String {
    match &gate.at {
        Where::Tcp(a) => format!("server {a};"),
        Where::Unix(p) => format!("server unix:{};", p.display()),
    }
}

/// The shipped example with this test's ports, certificate and addresses.
fn site(
    example: &str,
    gate: &Gate,
    tls_port: u16,
    http_port: u16,
    app: Option<SocketAddr>,
) -> (String, tempfile::TempDir) {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/config-examples/{example}")).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path(), DOMAIN);
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
    s = replace_once(&s, "app.example.com", DOMAIN);
    s = replace_once(
        &s,
        "listen 443 ssl http2;",
        &format!("listen 127.0.0.1:{tls_port} ssl http2;"),
    );
    s = replace_once(&s, "listen [::]:443 ssl http2;", "");
    s = replace_once(&s, "listen 80;", &format!("listen 127.0.0.1:{http_port};"));
    s = replace_once(&s, "listen [::]:80;", "");
    s = replace_once(&s, "server 127.0.0.1:4180;", &gate_server(gate));
    if let Some(app) = app {
        s = replace_once(
            &s,
            "proxy_pass http://127.0.0.1:3000;",
            &format!("proxy_pass http://{app};"),
        );
    }
    (s, certs)
}

fn https_client(port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .resolve(DOMAIN, SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap()
}

/// A session so large it is split over several cookies (300 long groups).
fn big_cookie(gate: &Gate) -> String {
    let config = portcullis::config::from_yaml_str(&gate.yaml).unwrap();
    let ring = portcullis::session::KeyRing::load(&gate.key_file()).unwrap();
    let sessions = portcullis::session::Sessions::new(&config, std::sync::Arc::new(ring));
    let mut id = alice();
    id.groups = (0..300)
        .map(|i| format!("CN=group-number-{i}|OU=Groups|DC=corp|DC=example"))
        .collect();
    let set = sessions
        .mint(&id, portcullis::identity::IdpKind::Saml, &[])
        .unwrap();
    assert!(set.len() >= 3);
    set.iter()
        .map(|c| c.split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn proxy_mode(unix: bool) {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&gate_yaml(&up.url(), unix), &[]);
    let (tls_port, http_port) = (free_port(), free_port());
    let (conf, _certs) = site("nginx-proxy.conf", &gate, tls_port, http_port, None);
    let nginx = Nginx::start(&conf, tls_port);
    let c = https_client(tls_port);
    let url = |p: &str| format!("https://{DOMAIN}:{tls_port}{p}");

    // Signed in: reaches the app with the identity, the honest forwarded
    // headers nginx set, and without Portcullis' cookie.
    let r = c
        .get(url("/dashboard?x=1"))
        .header("cookie", format!("{}; app=1", gate.cookie(&alice())))
        .header("x-forwarded-user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "nginx error log:\n{}", nginx.error_log());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["uri"], "/dashboard?x=1");
    assert_eq!(v["headers"]["x-forwarded-user"], "alice");
    assert_eq!(v["headers"]["x-forwarded-email"], "alice@example.com");
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");
    assert_eq!(v["headers"]["x-forwarded-host"], DOMAIN);
    assert_eq!(v["headers"]["host"], DOMAIN);
    assert_eq!(v["headers"]["x-real-ip"], "127.0.0.1");
    assert_eq!(v["headers"]["cookie"], "app=1");

    // A large, chunked session fits nginx's header buffers.
    let r = c
        .get(url("/big"))
        .header("cookie", big_cookie(&gate))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "large cookies pass nginx");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["headers"]["x-forwarded-groups"]
            .as_str()
            .unwrap()
            .split(',')
            .filter(|g| g.starts_with("CN="))
            .count(),
        300
    );

    // WebSocket through nginx and Portcullis to the app, signed in.
    let r = c
        .get(url("/ws"))
        .header("cookie", gate.cookie(&alice()))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 101, "nginx error log:\n{}", nginx.error_log());
    let upgraded = r.upgrade().await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        upgraded,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        "hello through nginx",
    ))
    .await
    .unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "hello through nginx");
    // Not signed in: no upgrade.
    let r = c
        .get(url("/ws"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Not signed in, browser: the login step (no IdP configured here, so
    // the page that says sign-in is not set up).
    let r = c
        .get(url("/dashboard"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Sign-in is not set up yet")
    );

    // Not signed in, API: 401 with the login URL, never a redirect.
    let r = c
        .get(url("/api/items"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["login_url"], "/.portcullis/login?rd=%2Fapi%2Fitems");

    // Passthrough: served without identity, spoofed identity removed.
    let r = c
        .get(url("/public/logo.png"))
        .header("x-forwarded-user", "root")
        .header("x_forwarded_user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["headers"].get("x-forwarded-user").is_none(), "{v}");

    // Plain http is sent to https.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{http_port}/x"))
        .header("host", DOMAIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], format!("https://{DOMAIN}/x"));
}

async fn auth_request_mode(unix: bool) {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&gate_yaml(&up.url(), unix), &[]);
    let (tls_port, http_port) = (free_port(), free_port());
    let (conf, _certs) = site(
        "nginx-auth-request.conf",
        &gate,
        tls_port,
        http_port,
        Some(up.addr),
    );
    let nginx = Nginx::start(&conf, tls_port);
    let c = https_client(tls_port);
    let url = |p: &str| format!("https://{DOMAIN}:{tls_port}{p}");

    // Signed in: nginx asks Portcullis, then proxies to the app itself with
    // the identity headers it copied from the answer.
    let r = c
        .get(url("/dashboard"))
        .header("cookie", gate.cookie(&alice()))
        .header("x-forwarded-user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "nginx error log:\n{}", nginx.error_log());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["uri"], "/dashboard");
    assert_eq!(v["headers"]["x-forwarded-user"], "alice");
    assert_eq!(v["headers"]["x-forwarded-groups"], "admins,staff");
    assert_eq!(v["headers"]["x-forwarded-email"], "alice@example.com");
    let r = c
        .get(url("/dashboard"))
        .header("cookie", gate.cookie(&bob()))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["headers"]["x-forwarded-user"], "bob");
    assert!(v["headers"].get("x-forwarded-groups").is_some());

    // Large sessions pass the auth subrequest too.
    let r = c
        .get(url("/big"))
        .header("cookie", big_cookie(&gate))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Not signed in, browser: redirected to sign in, with the way back.
    let r = c
        .get(url("/dashboard?tab=2"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "nginx error log:\n{}", nginx.error_log());
    let login = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        login.ends_with("/.portcullis/login?rd=%2Fdashboard%3Ftab%3D2"),
        "{login}"
    );
    // …and the sign-in URL is Portcullis' own (no IdP configured here).
    let r = c
        .get(url("/.portcullis/login?rd=%2Fdashboard%3Ftab%3D2"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Sign-in is not set up yet")
    );

    // Not signed in, API: 401, no redirect.
    let r = c
        .get(url("/api/items"))
        .header("accept", "application/json")
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("location").is_none());

    // Passthrough path: the app answers, a forged identity is dropped.
    let r = c
        .get(url("/public/x"))
        .header("x-forwarded-user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["headers"].get("x-forwarded-user").is_none(), "{v}");
    // A path trick does not make a private path public: the gate's 401
    // (the path battery below tries many more).
    let r = c
        .get(url("/public/..%2Fdashboard"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Portcullis realm=\"{DOMAIN}\"")
    );

    // The auth endpoint itself is internal to nginx.
    let r = c
        .get(url("/.portcullis/auth"))
        .header("x-original-uri", "/public/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn nginx_proxy_mode_over_tcp() {
    proxy_mode(false).await;
}

#[tokio::test]
async fn nginx_proxy_mode_over_unix_socket() {
    proxy_mode(true).await;
}

#[tokio::test]
async fn nginx_auth_request_mode_over_tcp() {
    auth_request_mode(false).await;
}

#[tokio::test]
async fn nginx_auth_request_mode_over_unix_socket() {
    auth_request_mode(true).await;
}

/// Portcullis and nginx (the auth_request example) in front of a recording
/// app; the example gets the two lines an operator adds for `headers.extra`.
async fn auth_request_front(
    extra_yaml: &str,
) -> (
    common::paths::RecordingUpstream,
    Gate,
    Nginx,
    u16,
    tempfile::TempDir,
) {
    let app = common::paths::RecordingUpstream::start().await;
    let yaml = format!(
        "domain: {DOMAIN}\nlisten: 127.0.0.1:0\nupstream:\n  url: {}\nsession:\n  key_file: KEYFILE\nlog:\n  format: json\n  level: info\n{extra_yaml}",
        app.url()
    );
    let gate = Gate::start(&yaml, &[]);
    let (tls_port, http_port) = (free_port(), free_port());
    let (mut conf, certs) = site(
        "nginx-auth-request.conf",
        &gate,
        tls_port,
        http_port,
        Some(app.addr),
    );
    conf = replace_once(
        &conf,
        "        proxy_set_header X-Forwarded-Name               $portcullis_name;\n",
        "        proxy_set_header X-Forwarded-Name               $portcullis_name;\n        auth_request_set $portcullis_dept $upstream_http_x_dept;\n        proxy_set_header X-Dept $portcullis_dept;\n",
    );
    let nginx = Nginx::start(&conf, tls_port);
    (app, gate, nginx, tls_port, certs)
}

/// The path battery through nginx auth_request: nginx judges nothing
/// itself, so every shape is Portcullis' 401 (rendered by nginx's
/// error_page), refused, or reaches the app unchanged and reads as public.
#[tokio::test]
async fn nginx_auth_request_path_battery() {
    use common::paths::*;
    let (app, gate, nginx, port, _certs) =
        auth_request_front("passthrough:\n  paths:\n    - prefix: /public/\n").await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let send = async |head: String| send_tls(addr, DOMAIN, &head).await;
    let mut results = run_battery(DOMAIN, &app, nginx_expect, false, send).await;
    // The gate refused its five: two through /.portcullis/, three
    // questions.
    results.eq("request_refused audit events", refusals(&gate).len(), 5);
    eprintln!("nginx error log:\n{}", nginx.error_log());
    results.finish();
}

fn refusals(gate: &Gate) -> Vec<serde_json::Value> {
    gate.log_lines()
        .into_iter()
        .filter(|v| v["target"] == "audit" && v["event"] == "request_refused")
        .collect()
}

/// What nginx in front changes in the proxy-mode expectation.
fn nginx_expect(case: &common::paths::Case) -> common::paths::Expect {
    use common::paths::Expect::*;
    match (case.method, case.target.as_str()) {
        // nginx refuses these itself (it serves no `*` and opens no tunnel).
        ("OPTIONS", "*") | ("CONNECT", _) => FrontRefused(400),
        (_, "/public/..%00/admin" | "/public/%zz") => FrontRefused(400),
        // nginx resolves it to /admin and asks; Portcullis refuses the
        // question (audited), which nginx answers with a 500.
        (_, "/.portcullis/../admin") => FrontRefused(500),
        // nginx describes a fragment whole in `$request_uri` (a
        // `proxy_pass` with `$request_uri` forwards it so); Portcullis
        // refuses the question (audited).
        (_, "/public/x#/../../admin" | "/admin#/../public/x") => FrontRefused(500),
        // nginx resolves these into /.portcullis/, which it sends to
        // Portcullis itself: the proxy-mode refusal.
        _ => case.expect,
    }
}

/// The header battery through nginx auth_request: the app sees what
/// Portcullis answered (identity, Cookie without the session, Authorization
/// without a token), never the client's forgeries.
#[tokio::test]
async fn nginx_auth_request_header_battery() {
    use common::spoofs::*;
    let (app, gate, nginx, port, _certs) = auth_request_front(&gate_yaml_extra()).await;
    let session = gate.cookie(&alice_with_department());
    let base = format!("https://{DOMAIN}:{port}");
    let results = run_probes(&https_client(port), &base, &app, &session).await;
    eprintln!("nginx error log:\n{}", nginx.error_log());
    results.finish();
}

/// nginx sets X-Original-URI/-Method (the `nginx` family, the default);
/// a client's X-Forwarded-Uri/-Method is never believed: a copy that
/// disagrees is refused and audited, one that agrees changes nothing.
#[tokio::test]
async fn nginx_auth_request_believes_only_its_header_family() {
    use common::paths::*;
    let (app, gate, _nginx, port, _certs) =
        auth_request_front("passthrough:\n  paths:\n    - prefix: /public/\n").await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut results = common::cases::Cases::new();
    // (method, target, extra headers, status, reaches the app)
    for (n, (method, target, extra, want, reaches)) in [
        // The client claims its request for /admin is for /public/x.
        (
            "GET",
            "/admin",
            "\r\nX-Forwarded-Uri: /public/x",
            500,
            false,
        ),
        (
            "GET",
            "/admin",
            "\r\nX-Forwarded-Uri: /public/x\r\nX-Forwarded-Method: GET",
            500,
            false,
        ),
        // …or that its POST is a GET.
        (
            "POST",
            "/public/x",
            "\r\nX-Forwarded-Method: GET",
            500,
            false,
        ),
        // Agreeing copies change nothing either way.
        ("GET", "/admin", "\r\nX-Forwarded-Uri: /admin", 401, false),
        (
            "GET",
            "/public/x",
            "\r\nX-Forwarded-Uri: /public/x",
            200,
            true,
        ),
        // A forged X-Original-URI is replaced by nginx's own.
        ("GET", "/admin", "\r\nX-Original-URI: /public/x", 401, false),
    ]
    .into_iter()
    .enumerate()
    {
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {DOMAIN}\r\nAccept: application/json\r\n{CASE_HEADER}: {n}{extra}"
        );
        let r = send_tls(addr, DOMAIN, &head).await;
        let seen = app.seen_for(n).len();
        results.eq(
            format!("{method} {target} with {extra:?}"),
            (r.status, seen),
            (want, usize::from(reaches)),
        );
    }
    let refused = refusals(&gate);
    let ok = refused.len() == 3
        && refused.iter().all(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("disagrees"))
        });
    results.check("request_refused audit events", ok, || {
        format!("{refused:?}")
    });
    results.finish();
}
