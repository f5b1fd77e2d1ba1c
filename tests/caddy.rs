//! Real Caddy (the Debian package) in front of the app with `forward_auth`
//! to Portcullis, configured from config-examples/Caddyfile-forward-auth
//! (only the site address and backend addresses replaced), with Portcullis
//! on TCP and on a Unix socket.

mod common;
mod operations_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{Server, Shutdown};
use common::{BROWSER_ACCEPT, TestUpstream, alice};
use operations_support::*;
use serde_json::Value;

/// Dropping it stops Caddy gracefully (SIGTERM), before its temp dir goes.
struct Caddy {
    server: Server,
    dir: tempfile::TempDir,
}

impl Drop for Caddy {
    fn drop(&mut self) {
        self.server.stop();
    }
}

fn caddy_bin() -> &'static str {
    assert!(
        Path::new("/usr/bin/caddy").exists(),
        "caddy is not installed: `apt-get install caddy` (listed in scripts/apt-packages-ship.txt)"
    );
    "/usr/bin/caddy"
}

impl Caddy {
    fn start(caddyfile: &str, port: u16) -> Caddy {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Caddyfile");
        std::fs::write(&file, caddyfile).unwrap();
        let log = std::fs::File::create(dir.path().join("caddy.log")).unwrap();
        let server = Server::spawn(
            "caddy",
            Command::new(caddy_bin())
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(&file)
                .env("HOME", dir.path())
                .env("XDG_DATA_HOME", dir.path())
                .env("XDG_CONFIG_HOME", dir.path())
                .stdout(Stdio::null())
                .stderr(log),
            Shutdown::Term,
            Duration::from_secs(10),
        )
        .unwrap();
        let mut caddy = Caddy { server, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(s) = caddy.server.try_exit() {
                panic!("caddy exited ({s}): {}", caddy.log());
            }
            assert!(
                Instant::now() < deadline,
                "caddy did not start: {}",
                caddy.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        caddy
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("caddy.log")).unwrap_or_default()
    }
}

async fn forward_auth(unix: bool) {
    let up = TestUpstream::start().await;
    let listen = if unix {
        "unix:DIR/gate.sock"
    } else {
        "127.0.0.1:0"
    };
    let gate = Gate::start(
        &format!(
            "domain: app.test\nscheme: http\nlisten: {listen}\nupstream:\n  url: {}\nsession:\n  secure_cookie: false\n  key_file: KEYFILE\npassthrough:\n  paths:\n    - prefix: /public/\n  tokens:\n    - name: backup\n      sha256: {}\nlog:\n  format: json\nforward_auth:\n  headers: forwarded\n",
            up.url(),
            hex::encode(portcullis::policy::tokens::sha256(TOKEN))
        ),
        &[],
    );
    let port = free_port();
    let caddy = Caddy::start(&caddyfile(&gate, port, up.addr, ""), port);
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("app.test", SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap();
    let url = |p: &str| format!("http://app.test:{port}{p}");

    // Signed in: the app gets the identity Portcullis answered with.
    let r = c
        .get(url("/dashboard"))
        .header("cookie", gate.cookie(&alice()))
        .header("x-forwarded-user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "caddy log: {}", caddy.log());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["uri"], "/dashboard");
    assert_eq!(v["headers"]["x-forwarded-user"], "alice");
    assert_eq!(v["headers"]["x-forwarded-groups"], "admins,staff");

    // Browser without a session: straight to the sign-in page.
    let r = c
        .get(url("/dashboard?tab=2"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/.portcullis/login?rd=%2Fdashboard%3Ftab%3D2"
    );
    let r = c
        .get(url("/.portcullis/login?rd=%2Fdashboard"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        503,
        "Portcullis' own sign-in page (no IdP here)"
    );

    // Script without a session: 401.
    let r = c
        .get(url("/api/items"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Passthrough: the app answers, and a forged identity never reaches it.
    let r = c
        .get(url("/public/x"))
        .header("x-forwarded-user", "root")
        .header("x-forwarded-groups", "admins")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    // The example removes the client's copies and copy_headers sets what
    // Portcullis answered: empty here, never the client's value.
    let mut cases = common::cases::Cases::new();
    for h in ["x-forwarded-user", "x-forwarded-groups"] {
        let got = v["headers"].get(h).and_then(Value::as_str).unwrap_or("");
        cases.eq(h, got, "");
    }
    cases.finish();

    // A passthrough token: the app gets the token's identity, not the token.
    let r = c
        .get(url("/api/backup"))
        .header("x-portcullis-authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["headers"]["x-forwarded-user"], "backup");
    assert!(
        v["headers"].get("x-portcullis-authorization").is_none(),
        "{v}"
    );
}

const TOKEN: &str = "caddy-token-0123456789abcdef";

/// The shipped example with this test's site address and backends, and
/// `extra_copies` added to copy_headers (an operator's `headers.extra`).
fn caddyfile(gate: &Gate, port: u16, app: SocketAddr, extra_copies: &str) -> String {
    let gate_addr = match &gate.at {
        Where::Tcp(a) => a.to_string(),
        Where::Unix(p) => format!("unix/{}", p.display()),
    };
    let root = env!("CARGO_MANIFEST_DIR");
    let example =
        std::fs::read_to_string(format!("{root}/config-examples/Caddyfile-forward-auth")).unwrap();
    let mut conf = replace_once(
        &example,
        "app.example.com {",
        &format!("{{\n\tadmin off\n}}\n\nhttp://app.test:{port} {{"),
    );
    conf = replace_once(&conf, "127.0.0.1:4180", &gate_addr);
    conf = replace_once(
        &conf,
        "reverse_proxy 127.0.0.1:3000",
        &format!("reverse_proxy {app}"),
    );
    if !extra_copies.is_empty() {
        conf = replace_once(
            &conf,
            "X-Forwarded-Name Cookie Authorization",
            &format!("X-Forwarded-Name {extra_copies} Cookie Authorization"),
        );
        conf = replace_once(
            &conf,
            "\t\t\trequest_header -X-Forwarded-Name\n",
            &format!(
                "\t\t\trequest_header -X-Forwarded-Name\n\t\t\trequest_header -{extra_copies}\n"
            ),
        );
    }
    conf
}

/// Portcullis (`forward_auth.headers: forwarded`) and Caddy (the example)
/// in front of a recording app; returns Caddy's port.
async fn front(extra_yaml: &str) -> (common::paths::RecordingUpstream, Gate, Caddy, u16) {
    let app = common::paths::RecordingUpstream::start().await;
    let gate = Gate::start(
        &format!(
            "domain: app.test\nscheme: http\nlisten: 127.0.0.1:0\nupstream:\n  url: {}\nsession:\n  secure_cookie: false\n  key_file: KEYFILE\nlog:\n  format: json\nforward_auth:\n  headers: forwarded\n{extra_yaml}",
            app.url()
        ),
        &[],
    );
    let port = free_port();
    let caddy = Caddy::start(&caddyfile(&gate, port, app.addr, "X-Dept"), port);
    (app, gate, caddy, port)
}

fn refusals(gate: &Gate) -> Vec<Value> {
    gate.log_lines()
        .into_iter()
        .filter(|v| v["target"] == "audit" && v["event"] == "request_refused")
        .collect()
}

/// The path battery through Caddy forward_auth: every shape is the gate's
/// own answer (passed on by Caddy), refused, or reaches the app unchanged
/// and reads as public.
#[tokio::test]
async fn caddy_forward_auth_path_battery() {
    use common::paths::*;
    let (app, gate, caddy, port) = front("passthrough:\n  paths:\n    - prefix: /public/\n").await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let send = async |head: String| send_tcp(addr, &head).await;
    let mut results =
        run_battery(&format!("app.test:{port}"), &app, caddy_expect, true, send).await;
    // The gate refused its four: CONNECT, and the reserved prefix read two
    // ways (Caddy sends all of those to it in a question).
    results.eq("request_refused audit events", refusals(&gate).len(), 4);
    eprintln!("caddy log:\n{}", caddy.log());
    results.finish();
}

/// What Caddy in front changes in the proxy-mode expectation.
fn caddy_expect(case: &common::paths::Case) -> common::paths::Expect {
    use common::paths::Expect::*;
    match case.target.as_str() {
        // Go's URL parser refuses a bad escape before Caddy asks anyone.
        "/public/%zz" => FrontRefused(400),
        // Go reads `#` in a request target as part of the path; what Caddy
        // describes is then not canonical, so it needs a login.
        "/public/x#/../../admin" => Login,
        // Go's server answers `OPTIONS *` itself, like Portcullis does.
        _ => case.expect,
    }
}

/// The header battery through Caddy forward_auth.
#[tokio::test]
async fn caddy_forward_auth_header_battery() {
    use common::spoofs::*;
    let (app, gate, caddy, port) = front(&gate_yaml_extra()).await;
    let session = gate.cookie(&alice_with_department());
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("app.test", SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap();
    let results = run_probes(&c, &format!("http://app.test:{port}"), &app, &session).await;
    eprintln!("caddy log:\n{}", caddy.log());
    results.finish();
}

/// Caddy sets X-Forwarded-Uri/-Method (the `forwarded` family) and copies
/// the client's other headers into its question: a client's X-Original-URI
/// that disagrees is refused (400, passed on by Caddy) and audited.
#[tokio::test]
async fn caddy_forward_auth_believes_only_its_header_family() {
    use common::paths::*;
    let (app, gate, _caddy, port) = front("passthrough:\n  paths:\n    - prefix: /public/\n").await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut results = common::cases::Cases::new();
    // (method, target, extra headers, status, reaches the app)
    for (n, (method, target, extra, want, reaches)) in [
        ("GET", "/admin", "\r\nX-Original-URI: /public/x", 400, false),
        (
            "GET",
            "/admin",
            "\r\nX-Original-URI: /public/x\r\nX-Original-Method: GET",
            400,
            false,
        ),
        (
            "POST",
            "/public/x",
            "\r\nX-Original-Method: GET",
            400,
            false,
        ),
        ("GET", "/admin", "\r\nX-Original-URI: /admin", 401, false),
        (
            "GET",
            "/public/x",
            "\r\nX-Original-URI: /public/x",
            200,
            true,
        ),
        // A forged X-Forwarded-Uri is replaced by Caddy's own.
        (
            "GET",
            "/admin",
            "\r\nX-Forwarded-Uri: /public/x",
            401,
            false,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: app.test:{port}\r\nAccept: application/json\r\n{CASE_HEADER}: {n}{extra}"
        );
        let r = send_tcp(addr, &head).await;
        let seen = app.seen_for(n).len();
        results.check(
            format!("{method} {target} with {extra:?}"),
            (r.status, seen) == (want, usize::from(reaches)),
            || {
                format!(
                    "{} (the app saw {seen}), expected {want}: {}",
                    r.status, r.body
                )
            },
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

#[tokio::test]
async fn caddy_forward_auth_over_tcp() {
    forward_auth(false).await;
}

#[tokio::test]
async fn caddy_forward_auth_over_unix_socket() {
    forward_auth(true).await;
}

#[tokio::test]
async fn oidc_login_through_caddy_forward_auth() {
    use common::oidc::{Browser, OidcIdp, oidc_yaml};
    let up = TestUpstream::start().await;
    let port = free_port();
    let origin = format!("http://app.test:{port}");
    let idp = OidcIdp::start(&origin, 0, &[]);
    let gate = Gate::start(
        &format!(
            "domain: app.test:{port}\nscheme: http\nlisten: 127.0.0.1:0\nupstream:\n  url: {}\nsession:\n  secure_cookie: false\n  key_file: KEYFILE\naccess:\n  allowed_groups: [admins]\nlog:\n  format: json\nforward_auth:\n  headers: forwarded\n{}",
            up.url(),
            oidc_yaml(&idp.issuer, "")
        ),
        &[],
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let example =
        std::fs::read_to_string(format!("{root}/config-examples/Caddyfile-forward-auth")).unwrap();
    let mut conf = replace_once(
        &example,
        "app.example.com {",
        &format!("{{\n\tadmin off\n}}\n\nhttp://app.test:{port} {{"),
    );
    conf = replace_once(&conf, "127.0.0.1:4180", &gate.addr().to_string());
    conf = replace_once(
        &conf,
        "reverse_proxy 127.0.0.1:3000",
        &format!("reverse_proxy {}", up.addr),
    );
    let caddy = Caddy::start(&conf, port);
    let browser = || {
        Browser::with_client(
            reqwest::Client::builder()
                .resolve("app.test", SocketAddr::from(([127, 0, 0, 1], port))),
        )
    };

    let b = browser();
    let (form, trail) = b.follow(&format!("{origin}/dashboard?tab=2")).await;
    assert!(
        form.url
            .starts_with(&format!("{}/interaction/", idp.issuer))
            && form.body.contains("login-form"),
        "at the provider's login form: {trail:?}\n{}\ncaddy: {}",
        form.body,
        caddy.log()
    );
    assert_eq!(
        trail[1],
        format!("{origin}/.portcullis/login?rd=%2Fdashboard%3Ftab%3D2"),
        "Caddy passed Portcullis' redirect to its sign-in URL"
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
    assert_eq!(page.url, format!("{origin}/dashboard?tab=2"));
    assert!(
        trail
            .iter()
            .any(|u| u.starts_with(&format!("{origin}/.portcullis/oidc/callback?"))),
        "{trail:?}"
    );
    let v: Value = serde_json::from_str(&page.body).unwrap();
    let h = &v["headers"];
    assert_eq!(v["uri"], "/dashboard?tab=2");
    assert_eq!(h["x-forwarded-user"], "alice");
    assert_eq!(h["x-forwarded-email"], "alice@example.com");
    assert_eq!(h["x-forwarded-groups"], "admins,staff");
    assert_eq!(h["x-forwarded-name"], "Alice Example");
    let cookies = h["cookie"].as_str().unwrap_or_default();
    assert!(
        !cookies.contains("portcullis"),
        "no Portcullis cookie reaches the app: {cookies}"
    );
    let (page, trail) = b.follow(&format!("{origin}/reports")).await;
    assert_eq!(
        (page.status, trail.len()),
        (200, 1),
        "the session carries on: {trail:?}"
    );

    // bob is not in allowed_groups: the 403 page after a complete login.
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
    let denied: Vec<Value> = gate
        .log_lines()
        .into_iter()
        .filter(|e| e["target"] == "audit" && e["event"] == "access_denied")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["user"], "bob");
}
