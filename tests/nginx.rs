//! Real nginx (the Debian package) in front of Portcullis, configured from
//! the shipped examples in config-examples/ (only host names, ports,
//! certificate paths and addresses replaced), over TLS, in proxy mode and in
//! auth_request mode, with Portcullis on TCP and on a Unix socket.

mod common;
mod operations_support;

use std::net::SocketAddr;

use common::{TestUpstream, alice, bob, browser_get, get_with_headers};
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

/// Portcullis with `yaml` behind nginx configured from `example` as
/// `tune` leaves it (an operator's edits), on ports reserved before the
/// gate's config names them; `app` is where nginx itself proxies in
/// auth_request mode. The certificates stay while the returned dir does.
fn behind_nginx(
    example: &str,
    yaml: &str,
    (tls_port, http_port): (u16, u16),
    app: Option<SocketAddr>,
    tune: impl FnOnce(String) -> String,
) -> (Gate, Nginx, tempfile::TempDir) {
    let gate = Gate::start(yaml, &[]);
    let (conf, certs) = site(example, &gate, tls_port, http_port, app);
    let nginx = Nginx::start(&tune(conf), tls_port);
    (gate, nginx, certs)
}

/// The echo app behind Portcullis behind the shipped nginx `example`, as the
/// mode tests run it (with nginx itself proxying to the app when
/// `nginx_reaches_app`): the app, gate, nginx, certificates and (TLS, http) ports.
async fn echo_behind_shipped(
    example: &str,
    unix: bool,
    nginx_reaches_app: bool,
) -> (TestUpstream, Gate, Nginx, tempfile::TempDir, (u16, u16)) {
    let up = TestUpstream::start().await;
    let ports = (free_port(), free_port());
    let (gate, nginx, certs) = behind_nginx(
        example,
        &gate_yaml(&up.url(), unix),
        ports,
        nginx_reaches_app.then_some(up.addr),
        as_shipped,
    );
    (up, gate, nginx, certs, ports)
}

/// A browser's GET of `url` with no IdP configured: Portcullis' 503 page
/// saying sign-in is not set up.
async fn assert_sign_in_not_set_up(c: &reqwest::Client, url: String) {
    let r = browser_get(c, url).await;
    assert_eq!(r.status(), 503);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Sign-in is not set up yet")
    );
}

/// The page is `status`; if not, the page and nginx's error log say why.
fn assert_page_status(page: &common::oidc::Page, status: u16, nginx: &Nginx) {
    assert_eq!(
        page.status,
        status,
        "{}\nnginx:\n{}",
        page.body,
        nginx.error_log()
    );
}

/// The shipped example as it is.
fn as_shipped(conf: String) -> String {
    conf
}

/// A browser (cookies, no redirects followed) that reaches nginx's TLS
/// port with its self-signed certificate.
fn browser(tls_port: u16) -> common::oidc::Browser {
    common::oidc::Browser::with_client(
        reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .resolve(DOMAIN, SocketAddr::from(([127, 0, 0, 1], tls_port))),
    )
}

/// The headers of a WebSocket upgrade request.
const WS_UPGRADE: [(&str, &str); 4] = [
    ("connection", "Upgrade"),
    ("upgrade", "websocket"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

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
    let (_up, gate, nginx, _certs, (tls_port, http_port)) =
        echo_behind_shipped("nginx-proxy.conf", unix, false).await;
    let c = https_client(tls_port);
    let url = |p: &str| format!("https://{DOMAIN}:{tls_port}{p}");

    // Signed in: reaches the app with the identity, the honest forwarded
    // headers nginx set, and without Portcullis' cookie.
    let cookie = format!("{}; app=1", gate.cookie(&alice()));
    let v = alice_reaches_app_despite_forged_user(
        &c,
        url("/dashboard?x=1"),
        &cookie,
        "/dashboard?x=1",
        || format!("nginx error log:\n{}", nginx.error_log()),
    )
    .await;
    assert_eq!(v["headers"]["x-forwarded-email"], "alice@example.com");
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");
    assert_eq!(v["headers"]["x-forwarded-host"], DOMAIN);
    assert_eq!(v["headers"]["host"], DOMAIN);
    assert_eq!(v["headers"]["x-real-ip"], "127.0.0.1");
    assert_eq!(v["headers"]["cookie"], "app=1");

    // A large, chunked session fits nginx's header buffers.
    let r = get_with_headers(&c, url("/big"), &[("cookie", &big_cookie(&gate))]).await;
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
    let cookie = gate.cookie(&alice());
    let signed_in_upgrade: Vec<(&str, &str)> = [("cookie", cookie.as_str())]
        .into_iter()
        .chain(WS_UPGRADE)
        .collect();
    let r = get_with_headers(&c, url("/ws"), &signed_in_upgrade).await;
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
    let r = get_with_headers(&c, url("/ws"), &WS_UPGRADE).await;
    assert_eq!(r.status(), 401);

    // Not signed in, browser: the login step (no IdP configured here, so
    // the page that says sign-in is not set up).
    assert_sign_in_not_set_up(&c, url("/dashboard")).await;

    // Not signed in, API: 401 with the login URL, never a redirect.
    let r = get_with_headers(&c, url("/api/items"), &[("accept", "application/json")]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Portcullis realm=\"{DOMAIN}\"")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["login_url"], "/.portcullis/login?rd=%2Fapi%2Fitems");

    // Passthrough: served without identity, spoofed identity removed.
    let r = get_with_headers(
        &c,
        url("/public/logo.png"),
        &[("x-forwarded-user", "root"), ("x_forwarded_user", "root")],
    )
    .await;
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
    let (_up, gate, nginx, _certs, (tls_port, _)) =
        echo_behind_shipped("nginx-auth-request.conf", unix, true).await;
    let c = https_client(tls_port);
    let url = |p: &str| format!("https://{DOMAIN}:{tls_port}{p}");

    // Signed in: nginx asks Portcullis, then proxies to the app itself with
    // the identity headers it copied from the answer.
    let cookie = gate.cookie(&alice());
    let v =
        alice_reaches_app_despite_forged_user(&c, url("/dashboard"), &cookie, "/dashboard", || {
            format!("nginx error log:\n{}", nginx.error_log())
        })
        .await;
    assert_eq!(v["headers"]["x-forwarded-groups"], "admins,staff");
    assert_eq!(v["headers"]["x-forwarded-email"], "alice@example.com");
    let r = get_with_headers(&c, url("/dashboard"), &[("cookie", &gate.cookie(&bob()))]).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["headers"]["x-forwarded-user"], "bob");
    assert_eq!(v["headers"]["x-forwarded-groups"], "staff");

    // Large sessions pass the auth subrequest too.
    let r = get_with_headers(&c, url("/big"), &[("cookie", &big_cookie(&gate))]).await;
    assert_eq!(r.status(), 200);

    // Not signed in, browser: redirected to sign in, with the way back.
    let r = browser_get(&c, url("/dashboard?tab=2")).await;
    assert_eq!(r.status(), 302, "nginx error log:\n{}", nginx.error_log());
    let login = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        login.ends_with("/.portcullis/login?rd=%2Fdashboard%3Ftab%3D2"),
        "{login}"
    );
    // …and the sign-in URL is Portcullis' own (no IdP configured here).
    assert_sign_in_not_set_up(&c, url("/.portcullis/login?rd=%2Fdashboard%3Ftab%3D2")).await;

    // Not signed in, API: 401, no redirect.
    let r = get_with_headers(
        &c,
        url("/api/items"),
        &[
            ("accept", "application/json"),
            ("x-requested-with", "XMLHttpRequest"),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("location").is_none());

    // Passthrough path: the app answers, a forged identity is dropped.
    let r = get_with_headers(&c, url("/public/x"), &[("x-forwarded-user", "root")]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["headers"].get("x-forwarded-user").is_none(), "{v}");
    // A path trick does not make a private path public: Portcullis said
    // 401 (nginx's @portcullis_401 answers with the challenge), not nginx
    // refusing the path for a reason of its own.
    let r = get_with_headers(
        &c,
        url("/public/..%2Fdashboard"),
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(r.status(), 401, "nginx error log:\n{}", nginx.error_log());
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Portcullis realm=\"{DOMAIN}\"")
    );

    // The auth endpoint itself is internal to nginx.
    let r = get_with_headers(
        &c,
        url("/.portcullis/auth"),
        &[("x-original-uri", "/public/x")],
    )
    .await;
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
    use common::oidc::OidcIdp;
    let up = TestUpstream::start().await;
    let (tls_port, http_port) = (free_port(), free_port());
    let origin = format!("https://{DOMAIN}:{tls_port}");
    let idp = OidcIdp::start(&origin, 0, &[]);
    let (gate, nginx, _certs) = behind_nginx(
        example,
        &oidc_gate_yaml(&up.url(), &idp.issuer, tls_port),
        (tls_port, http_port),
        nginx_proxies_to_the_app.then_some(up.addr),
        as_shipped,
    );

    let b = browser(tls_port);
    let (form, _) = b
        .follow_to_login_form(&format!("{origin}/dashboard?tab=2"), &idp.issuer, || {
            format!("nginx:\n{}", nginx.error_log())
        })
        .await;
    let (page, trail) = b.submit_alice_login_to_200(&form, || gate.log()).await;
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
    let v = common::oidc::assert_alice_at_app(&page);
    assert_eq!(v["uri"], "/dashboard?tab=2");
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");
    assert!(
        b.cookies_for(&origin)
            .contains("__Host-portcullis_session="),
        "{}",
        b.cookies_for(&origin)
    );
    let succeeded = gate.events("login_succeeded");
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
    let b = browser(tls_port);
    b.assert_bob_signs_in_to_403(&format!("{origin}/dashboard"))
        .await;
    assert!(!b.cookies_for(&origin).contains("portcullis_session"));
    common::only_denial_of_bob(gate.events("access_denied"));
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
    let (tls_port, http_port) = (free_port(), free_port());
    let (gate, nginx, certs) = behind_nginx(
        "nginx-auth-request.conf",
        &yaml,
        (tls_port, http_port),
        Some(app.addr),
        |conf| {
            replace_once(
                &conf,
                "        proxy_set_header X-Forwarded-Name               $portcullis_name;\n",
                "        proxy_set_header X-Forwarded-Name               $portcullis_name;\n        auth_request_set $portcullis_dept $upstream_http_x_dept;\n        proxy_set_header X-Dept $portcullis_dept;\n",
            )
        },
    );
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
    results.eq(
        "request_refused audit events",
        gate.events("request_refused").len(),
        5,
    );
    eprintln!("nginx error log:\n{}", nginx.error_log());
    results.finish();
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
    let cases: [FamilyCase; 6] = [
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
    ];
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let send = async |head: String| send_tls(addr, DOMAIN, &head).await;
    let mut results = run_family_cases(DOMAIN, &cases, &app, send).await;
    check_refused_as_disagreeing(&mut results, &gate.events("request_refused"), 3);
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
    use common::oidc::OidcIdp;
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
            let (gate, nginx, certs) = behind_nginx(
                "nginx-proxy.conf",
                &yaml,
                (tls_port, http_port),
                None,
                |conf| stock_buffers(&conf),
            );
            let b = browser(tls_port);
            let (page, _) = b
                .sign_in(&format!("{origin}/dashboard"), "many", "many-pw")
                .await;
            (gate, nginx, certs, b, page)
        }
    };

    // No filter: the session would be about 25 kB. Portcullis refuses to
    // mint what this nginx cannot carry, with its own page.
    let (gate, nginx, _certs, b, page) = login("").await;
    assert_page_status(&page, 431, &nginx);
    assert!(
        page.body
            .contains("Your account information is too large for a cookie"),
        "{}",
        page.body
    );
    assert!(!b.cookies_for(&origin).contains("portcullis_session"));
    let failed = gate.events("login_failed");
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
    assert_page_status(&page, 200, &nginx);
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
    assert_page_status(&page, 200, &nginx);
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
    let ok = gate.events("login_succeeded");
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(ok[0]["groups"], 11);
    assert_eq!(ok[0]["groups_dropped"], 491);
    // And the next request through nginx carries it.
    let (page, trail) = b.follow(&format!("{origin}/reports")).await;
    assert_eq!((page.status, trail.len()), (200, 1), "{trail:?}");
}
