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
use common::{TestUpstream, alice, browser_get, get_with_headers};
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

/// A gate in forward_auth mode (the `forwarded` header family, which Caddy
/// sends) listening at `listen`, in front of `upstream`, `extra` appended.
fn gate_yaml(listen: &str, upstream: &str, extra: &str) -> String {
    format!(
        "domain: app.test\nscheme: http\nlisten: {listen}\nupstream:\n  url: {upstream}\nsession:\n  secure_cookie: false\n  key_file: KEYFILE\nlog:\n  format: json\nforward_auth:\n  headers: forwarded\n{extra}"
    )
}

/// A client that reaches `app.test` at Caddy's `port`, never following a
/// redirect.
fn client(port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("app.test", SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap()
}

async fn forward_auth(unix: bool) {
    let up = TestUpstream::start().await;
    let listen = if unix {
        "unix:DIR/gate.sock"
    } else {
        "127.0.0.1:0"
    };
    let gate = Gate::start(
        &gate_yaml(
            listen,
            &up.url(),
            &format!(
                "passthrough:\n  paths:\n    - prefix: /public/\n  tokens:\n    - name: backup\n      sha256: {}\n",
                hex::encode(portcullis::policy::tokens::sha256(TOKEN))
            ),
        ),
        &[],
    );
    let port = free_port();
    let caddy = Caddy::start(&caddyfile(&gate, port, up.addr, ""), port);
    let c = client(port);
    let url = |p: &str| format!("http://app.test:{port}{p}");

    // Signed in: the app gets the identity Portcullis answered with.
    let cookie = gate.cookie(&alice());
    let v =
        alice_reaches_app_despite_forged_user(&c, url("/dashboard"), &cookie, "/dashboard", || {
            format!("caddy log: {}", caddy.log())
        })
        .await;
    assert_eq!(v["headers"]["x-forwarded-groups"], "admins,staff");

    // Browser without a session: straight to the sign-in page.
    let r = browser_get(&c, url("/dashboard?tab=2")).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/.portcullis/login?rd=%2Fdashboard%3Ftab%3D2"
    );
    let r = browser_get(&c, url("/.portcullis/login?rd=%2Fdashboard")).await;
    assert_eq!(
        r.status(),
        503,
        "Portcullis' own sign-in page (no IdP here)"
    );

    // Script without a session: 401.
    let r = get_with_headers(&c, url("/api/items"), &[("accept", "application/json")]).await;
    assert_eq!(r.status(), 401);

    // Passthrough: the app answers, and a forged identity never reaches it.
    let r = get_with_headers(
        &c,
        url("/public/x"),
        &[
            ("x-forwarded-user", "root"),
            ("x-forwarded-groups", "admins"),
        ],
    )
    .await;
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
    let bearer = format!("Bearer {TOKEN}");
    let r = get_with_headers(
        &c,
        url("/api/backup"),
        &[("x-portcullis-authorization", &bearer)],
    )
    .await;
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
    let gate = Gate::start(&gate_yaml("127.0.0.1:0", &app.url(), extra_yaml), &[]);
    let port = free_port();
    let caddy = Caddy::start(&caddyfile(&gate, port, app.addr, "X-Dept"), port);
    (app, gate, caddy, port)
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
    results.eq(
        "request_refused audit events",
        gate.events("request_refused").len(),
        4,
    );
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
    let c = client(port);
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
    let cases: [FamilyCase; 6] = [
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
    ];
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let send = async |head: String| send_tcp(addr, &head).await;
    let mut results = run_family_cases(&format!("app.test:{port}"), &cases, &app, send).await;
    check_refused_as_disagreeing(&mut results, &gate.events("request_refused"), 3);
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
    // The public origin, port included, is the domain the redirect URI
    // is made of.
    let yaml = gate_yaml(
        "127.0.0.1:0",
        &up.url(),
        &format!(
            "access:\n  allowed_groups: [admins]\n{}",
            oidc_yaml(&idp.issuer, "")
        ),
    );
    let gate = Gate::start(
        &replace_once(
            &yaml,
            "domain: app.test\n",
            &format!("domain: app.test:{port}\n"),
        ),
        &[],
    );
    let caddy = Caddy::start(&caddyfile(&gate, port, up.addr, ""), port);
    let browser = || {
        Browser::with_client(
            reqwest::Client::builder()
                .resolve("app.test", SocketAddr::from(([127, 0, 0, 1], port))),
        )
    };

    let b = browser();
    let (form, trail) = b
        .follow_to_login_form(&format!("{origin}/dashboard?tab=2"), &idp.issuer, || {
            format!("caddy: {}", caddy.log())
        })
        .await;
    assert_eq!(
        trail[1],
        format!("{origin}/.portcullis/login?rd=%2Fdashboard%3Ftab%3D2"),
        "Caddy passed Portcullis' redirect to its sign-in URL"
    );
    let (page, trail) = b.submit_alice_login_to_200(&form, || gate.log()).await;
    assert_eq!(page.url, format!("{origin}/dashboard?tab=2"));
    assert!(
        trail
            .iter()
            .any(|u| u.starts_with(&format!("{origin}/.portcullis/oidc/callback?"))),
        "{trail:?}"
    );
    let v = common::oidc::assert_alice_at_app(&page);
    assert_eq!(v["uri"], "/dashboard?tab=2");
    let (page, trail) = b.follow(&format!("{origin}/reports")).await;
    assert_eq!(
        (page.status, trail.len()),
        (200, 1),
        "the session carries on: {trail:?}"
    );

    // bob is not in allowed_groups: the 403 page after a complete login.
    let b = browser();
    b.assert_bob_signs_in_to_403(&format!("{origin}/dashboard"))
        .await;
    let denied = gate.events("access_denied");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["user"], "bob");
}
