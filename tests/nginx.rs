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
    // The shipped examples' buffers carry the largest session.
    format!(
        "domain: {DOMAIN}\nlisten: {listen}\nupstream:\n  url: {upstream}\n  timeout: 5s\nsession:\n  key_file: KEYFILE\n  max_cookie_bytes: 30400\npassthrough:\n  paths:\n    - prefix: /public/\nlog:\n  format: json\n  level: info\n"
    )
}

/// The shipped example with this test's ports, certificate and addresses.
fn site(
    example: &str,
    gate: &Gate,
    tls_port: u16,
    http_port: u16,
    app: Option<SocketAddr>,
) -> (String, tempfile::TempDir) {
    nginx_site(example, DOMAIN, &gate.at, tls_port, http_port, app)
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
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Portcullis realm=\"{DOMAIN}\"")
    );
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
    assert_eq!(v["headers"]["x-forwarded-groups"], "staff");

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
    // A path trick does not make a private path public: Portcullis said
    // 401 (nginx's @portcullis_401 answers with the challenge), not nginx
    // refusing the path for a reason of its own.
    let r = c
        .get(url("/public/..%2Fdashboard"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "nginx error log:\n{}", nginx.error_log());
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

/// A gate that logs in at `issuer`, for the public origin nginx serves
/// (`https://app.test:<tls_port>`, the port being part of the redirect URI).
fn oidc_gate_yaml(upstream: &str, issuer: &str, tls_port: u16) -> String {
    format!(
        "domain: {DOMAIN}:{tls_port}\nlisten: 127.0.0.1:0\nupstream:\n  url: {upstream}\n  timeout: 5s\nsession:\n  key_file: KEYFILE\naccess:\n  allowed_groups: [admins]\nlog:\n  format: json\n  level: info\n{}",
        common::oidc::oidc_yaml(issuer, "")
    )
}

/// A whole OpenID Connect login with the real provider, through real nginx
/// configured from `example`, then a refused user and a logout.
async fn oidc_login_through(example: &str, nginx_proxies_to_the_app: bool) {
    use common::oidc::{Browser, OidcIdp};
    let up = TestUpstream::start().await;
    let (tls_port, http_port) = (free_port(), free_port());
    let origin = format!("https://{DOMAIN}:{tls_port}");
    let idp = OidcIdp::start(&origin, 0, &[]);
    let gate = Gate::start(&oidc_gate_yaml(&up.url(), &idp.issuer, tls_port), &[]);
    let app = nginx_proxies_to_the_app.then_some(up.addr);
    let (conf, _certs) = site(example, &gate, tls_port, http_port, app);
    let nginx = Nginx::start(&conf, tls_port);
    let browser = || {
        Browser::with_client(
            reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .resolve(DOMAIN, SocketAddr::from(([127, 0, 0, 1], tls_port))),
        )
    };

    let b = browser();
    let (form, trail) = b.follow(&format!("{origin}/dashboard?tab=2")).await;
    assert!(
        form.url
            .starts_with(&format!("{}/interaction/", idp.issuer))
            && form.body.contains("login-form"),
        "at the provider's login form: {trail:?}\n{}\nnginx:\n{}",
        form.body,
        nginx.error_log()
    );
    let resp = b.submit_login(&form, "alice", "alice-pw").await;
    let (page, trail) = b.follow_response(resp, &form.url).await;
    assert_eq!(
        page.status,
        200,
        "{trail:?}\n{}\ngate:\n{}",
        page.body,
        gate.log()
    );
    assert_eq!(
        page.url,
        format!("{origin}/dashboard?tab=2"),
        "back where alice started"
    );
    assert!(
        trail
            .iter()
            .any(|u| u.starts_with(&format!("{origin}/.portcullis/oidc/callback?"))),
        "the provider answered at the callback through nginx: {trail:?}"
    );
    let v: Value = serde_json::from_str(&page.body).unwrap();
    let h = &v["headers"];
    assert_eq!(v["uri"], "/dashboard?tab=2");
    assert_eq!(h["x-forwarded-user"], "alice");
    assert_eq!(h["x-forwarded-email"], "alice@example.com");
    assert_eq!(h["x-forwarded-groups"], "admins,staff");
    assert_eq!(h["x-forwarded-name"], "Alice Example");
    assert_eq!(h["x-forwarded-proto"], "https");
    let cookies = h["cookie"].as_str().unwrap_or_default();
    assert!(
        !cookies.contains("portcullis"),
        "no Portcullis cookie reaches the app: {cookies}"
    );
    assert!(
        b.cookies_for(&origin)
            .contains("__Host-portcullis_session="),
        "{}",
        b.cookies_for(&origin)
    );
    let ok = gate.log_lines();
    let succeeded: Vec<&Value> = ok
        .iter()
        .filter(|e| e["target"] == "audit" && e["event"] == "login_succeeded")
        .collect();
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0]["user"], "alice");

    // The session carries on: another page, no new login.
    let (page, trail) = b.follow(&format!("{origin}/reports")).await;
    assert_eq!((page.status, trail.len()), (200, 1), "{trail:?}");

    // Logout through nginx: the session cookie is cleared, the provider's
    // end-session endpoint is next, and the app asks for a login again.
    let r = b.get(&format!("{origin}/.portcullis/logout")).await;
    assert_eq!(r.status(), 302);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with(&format!("{}/session/end?", idp.issuer)),
        "{to}"
    );
    assert!(
        !b.cookies_for(&origin).contains("portcullis_session"),
        "{}",
        b.cookies_for(&origin)
    );
    let r = b.get(&format!("{origin}/dashboard")).await;
    assert_eq!(r.status(), 302, "signed out: sent to sign in again");

    // bob is not in allowed_groups: after a complete login, the 403 page.
    let b = browser();
    let (form, _) = b.follow(&format!("{origin}/dashboard")).await;
    let resp = b.submit_login(&form, "bob", "bob-pw").await;
    let (page, _) = b.follow_response(resp, &form.url).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body
            .contains("You do not have access to this application"),
        "{}",
        page.body
    );
    assert!(!b.cookies_for(&origin).contains("portcullis_session"));
    let denied: Vec<Value> = gate
        .log_lines()
        .into_iter()
        .filter(|e| e["target"] == "audit" && e["event"] == "access_denied")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["user"], "bob");
    assert_eq!(
        denied[0]["rule"],
        "allowed_groups/allowed_emails/allowed_email_domains/allowed_roles"
    );
}

#[tokio::test]
async fn oidc_login_through_nginx_proxy_mode() {
    oidc_login_through("nginx-proxy.conf", false).await;
}

#[tokio::test]
async fn oidc_login_through_nginx_auth_request_mode() {
    oidc_login_through("nginx-auth-request.conf", true).await;
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
        // nginx refuses these itself (it serves no `*`, opens no tunnel and
        // reads no NUL or bad escape).
        ("OPTIONS", "*") | ("CONNECT", _) | (_, "/public/..%00/admin" | "/public/%zz") => {
            FrontRefused(400)
        }
        // nginx resolves the first to /admin and asks; it describes a
        // fragment whole in `$request_uri` (a `proxy_pass` with
        // `$request_uri` forwards it so). Portcullis refuses the question
        // (audited), which nginx answers with a 500.
        (_, "/.portcullis/../admin" | "/public/x#/../../admin" | "/admin#/../public/x") => {
            FrontRefused(500)
        }
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

/// The shipped proxy example without its larger header buffers: nginx as
/// Debian installs it.
fn stock_buffers(conf: &str) -> String {
    let out: String = conf
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.starts_with("large_client_header_buffers")
                || l.starts_with("proxy_buffer_size")
                || l.starts_with("proxy_buffers")
                || l.starts_with("proxy_busy_buffers_size"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!out.contains("32k"), "{out}");
    out
}

/// A user in 500 groups (`many` at the real provider) through nginx with
/// its stock header buffers and Portcullis' defaults: the login ends on
/// Portcullis' own page naming the fix, never nginx's 400 or 502; a session
/// just under the default limit passes that nginx both ways; with
/// `session.groups` the session fits one cookie and the app gets exactly
/// the kept groups.
#[tokio::test]
async fn a_user_in_500_groups_through_nginx_with_stock_buffers() {
    use common::oidc::{Browser, OidcIdp};
    let up = TestUpstream::start().await;
    let (tls_port, http_port) = (free_port(), free_port());
    let origin = format!("https://{DOMAIN}:{tls_port}");
    let idp = OidcIdp::start(&origin, 0, &[]);
    let login = |gate_extra: &'static str| {
        let up = &up;
        let idp = &idp;
        let origin = origin.clone();
        async move {
            let yaml = oidc_gate_yaml(&up.url(), &idp.issuer, tls_port)
                .replace("session:\n", &format!("session:\n{gate_extra}"))
                // The groups are LDAP names, commas included.
                + "headers:\n  groups_separator: ';'\n";
            let gate = Gate::start(&yaml, &[]);
            let (conf, certs) = site("nginx-proxy.conf", &gate, tls_port, http_port, None);
            let nginx = Nginx::start(&stock_buffers(&conf), tls_port);
            let b = Browser::with_client(
                reqwest::Client::builder()
                    .danger_accept_invalid_certs(true)
                    .resolve(DOMAIN, SocketAddr::from(([127, 0, 0, 1], tls_port))),
            );
            let (form, _) = b.follow(&format!("{origin}/dashboard")).await;
            let resp = b.submit_login(&form, "many", "many-pw").await;
            let (page, _) = b.follow_response(resp, &form.url).await;
            (gate, nginx, certs, b, page)
        }
    };

    // No filter: the session would be about 25 kB. Portcullis refuses to
    // mint what this nginx cannot carry, with its own page.
    let (gate, nginx, _certs, b, page) = login("").await;
    assert_eq!(
        page.status,
        431,
        "{}\nnginx:\n{}",
        page.body,
        nginx.error_log()
    );
    assert!(
        page.body
            .contains("Your account information is too large for a cookie"),
        "{}",
        page.body
    );
    assert!(!b.cookies_for(&origin).contains("portcullis_session"));
    let failed: Vec<Value> = gate
        .log_lines()
        .into_iter()
        .filter(|e| e["target"] == "audit" && e["event"] == "login_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("operator fix: keep only the groups the app needs with session.groups"),
        "{failed:?}"
    );
    drop((gate, nginx));

    // A session just under the default limit: the login answer fits
    // nginx's stock response buffer, the next request its header line.
    let (gate, nginx, _certs, b, page) =
        login("  groups: ['cn=grp-0[0-3]*', 'cn=grp-04[0-4]*']\n").await;
    assert_eq!(
        page.status,
        200,
        "{}\nnginx:\n{}",
        page.body,
        nginx.error_log()
    );
    let jar = b.cookies_for(&origin);
    let session = jar
        .split("; ")
        .find_map(|c| c.strip_prefix("__Host-portcullis_session="))
        .unwrap_or_default();
    assert!(session.len() > 2850 && session.len() <= 3000, "{jar}");
    let (page, _) = b.follow(&format!("{origin}/reports")).await;
    assert_eq!(page.status, 200, "{}", nginx.error_log());
    drop((gate, nginx));

    // With the filter: one cookie, through the same nginx, to the app.
    let (gate, nginx, _certs, b, page) = login("  groups: ['cn=grp-00*']\n").await;
    assert_eq!(
        page.status,
        200,
        "{}\nnginx:\n{}",
        page.body,
        nginx.error_log()
    );
    let v: Value = serde_json::from_str(&page.body).unwrap();
    let mut want = vec!["admins".to_string()];
    want.extend((0..10).map(|i| format!("cn=grp-00{i},ou=groups,dc=example,dc=com")));
    assert_eq!(v["headers"]["x-forwarded-groups"], want.join(";"));
    let jar = b.cookies_for(&origin);
    let chunks: Vec<&str> = jar
        .split("; ")
        .filter(|c| c.starts_with("__Host-portcullis_session"))
        .collect();
    assert_eq!(chunks.len(), 1, "{jar}");
    assert!(chunks[0].starts_with("__Host-portcullis_session="), "{jar}");
    let ok: Vec<Value> = gate
        .log_lines()
        .into_iter()
        .filter(|e| e["target"] == "audit" && e["event"] == "login_succeeded")
        .collect();
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(ok[0]["groups"], 11);
    assert_eq!(ok[0]["groups_dropped"], 491);
    // And the next request through nginx carries it.
    let (page, trail) = b.follow(&format!("{origin}/reports")).await;
    assert_eq!((page.status, trail.len()), (200, 1), "{trail:?}");
}
