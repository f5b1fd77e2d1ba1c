//! Each login flow in a real headless browser (Debian's Chromium driven
//! through chromedriver): only a browser enforces the `__Host-` prefix,
//! `Secure` and `SameSite` rules that decide whether a login works at all.
//! The gate runs on `localhost` (a secure context for Chromium, so `Secure`
//! cookies are kept over plain http) and the provider on `127.0.0.1`: a
//! different site, so the round trip is a real cross-site one.

mod common;
mod operations_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::oidc::*;
use common::process::{Server, Shutdown};
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver and the Chromium it starts, in one process group: stopping
/// the driver's group ends the browser's processes too. (Chromium's crash
/// handler runs in a session of its own and exits with the browser.)
struct Chrome {
    driver: Server,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Chrome {
    async fn start() -> Chrome {
        Self::start_with(&[]).await
    }

    /// With further command line switches (name resolution, certificates).
    async fn start_with(extra_args: &[String]) -> Chrome {
        Self::start_with_prefs(extra_args, serde_json::json!({})).await
    }

    /// With switches and profile preferences (content settings).
    async fn start_with_prefs(extra_args: &[String], prefs: serde_json::Value) -> Chrome {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let port = free_port();
        let driver = Server::spawn(
            "chromedriver",
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            Shutdown::Term,
            Duration::from_secs(10),
        )
        .expect("chromedriver (Debian package chromium-driver) is installed by the test command");
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--disable-quic",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend_from_slice(extra_args);
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": args,
                "prefs": prefs,
            }
        });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let attempt = ClientBuilder::rustls()
                .unwrap()
                .capabilities(caps.as_object().unwrap().clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot start Chromium through chromedriver: {e}"),
            }
        };
        Chrome {
            driver,
            client,
            _profile: profile,
        }
    }

    /// Ends the WebDriver session (Chromium exits), then the driver.
    async fn stop(mut self) {
        let _ = self.client.close().await;
        self.driver.stop();
    }
}

/// A gate configuration served at `http://localhost:PORT`: a secure
/// context for Chromium, so the cookies are `Secure` and `__Host-` as in
/// production.
fn at_localhost(yaml: &str, port: u16) -> String {
    yaml.replace("domain: app.test", &format!("domain: localhost:{port}"))
        .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"))
        .replace("  secure_cookie: false\n", "  secure_cookie: true\n")
}

/// The provider and a gate at `localhost` in front of `up`.
fn oidc_gate_at_localhost(up: &TestUpstream) -> (String, OidcIdp, Gate) {
    oidc_gate_at_localhost_with(up, |issuer| oidc_yaml(issuer, ""))
}

/// The same, with the config lines after the upstream made by `config` from
/// the provider's issuer (an OIDC section, access rules).
fn oidc_gate_at_localhost_with(
    up: &TestUpstream,
    config: impl FnOnce(&str) -> String,
) -> (String, OidcIdp, Gate) {
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let idp = OidcIdp::start(&origin, 0, &[]);
    let yaml = at_localhost(&base_yaml(&up.url(), &config(&idp.issuer)), port);
    (origin, idp, Gate::start(&yaml))
}

/// The kept-form tests' stage: an app behind an OIDC gate on localhost and a
/// Chrome to drive it, as (app, origin, provider, gate, Chrome).
async fn chrome_at_oidc_gate() -> (TestUpstream, String, OidcIdp, Gate, Chrome) {
    let up = TestUpstream::start().await;
    let (origin, idp, gate) = oidc_gate_at_localhost(&up);
    (up, origin, idp, gate, Chrome::start().await)
}

/// Replaces the page's body with `html` (a form of the app's origin).
async fn put_form(c: &Client, html: &str) {
    c.execute(
        "document.body.innerHTML = arguments[0]; return true;",
        vec![serde_json::Value::String(html.to_string())],
    )
    .await
    .unwrap();
}

async fn browser_login(response_mode: &str) {
    let up = TestUpstream::start().await;
    // Secure cookies as in production: __Host- prefix, Secure, SameSite.
    let (origin, idp, gate) = oidc_gate_at_localhost_with(&up, |issuer| {
        oidc_yaml(issuer, &format!("  response_mode: {response_mode}\n"))
    });
    let chrome = Chrome::start().await;
    let c = &chrome.client;

    c.goto(&format!("{origin}/dash?from=browser"))
        .await
        .unwrap();
    sign_in_at_provider(c, &idp.issuer, "alice", "alice-pw").await;

    // Back at the app, through the gate, with the identity headers.
    let body = wait_for_app(c, &format!("{origin}/dash"), &gate).await;
    assert!(body.contains(r#""x-forwarded-user":"alice""#), "{body}");
    assert!(
        body.contains(r#""x-forwarded-groups":"admins,staff""#),
        "{body}"
    );
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{origin}/dash?from=browser")
    );

    assert_session_kept_and_transaction_cleared(c).await;

    // A reload is served from the session, no new login.
    assert_reload_still_shows_alice(c).await;
    assert_eq!(
        gate.audit_events()
            .iter()
            .filter(|e| e["event"] == "login_succeeded")
            .count(),
        1
    );
    chrome.stop().await;
}

/// Waits until the browser is back at `prefix` showing the upstream's echo.
async fn wait_for_app(c: &Client, prefix: &str, gate: &Gate) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = c.current_url().await.unwrap();
        let text = c.source().await.unwrap_or_default();
        if url.as_str().starts_with(prefix) && text.contains("x-forwarded-user") {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "did not get back to the app; at {url}:\n{text}\n\ngate log:\n{}",
            gate.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn saml_login_in_a_real_browser() {
    // SimpleSAMLphp answers with an auto-submitting cross-site POST to the
    // ACS: the transaction cookie must be SameSite=None; Secure to come along.
    let up = TestUpstream::start().await;
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let entity = format!("{origin}/.portcullis/saml/metadata");
    let pair = common::saml::sp_pair();
    let idp = common::saml::Idp::start(serde_json::json!([common::saml::sp_at(
        &origin,
        &entity,
        &pair.cert,
        serde_json::json!({})
    )]));
    let yaml = at_localhost(
        &base_yaml(
            &up.url(),
            &format!(
                "saml:\n  idp_metadata_url: {}\n  sp_entity_id: {entity}\n  sp_key_file: {}\n  sp_cert_file: {}\n",
                idp.metadata_url(),
                pair.key.display(),
                pair.cert.display()
            ),
        ),
        port,
    );
    let gate = Gate::start(&yaml);
    let chrome = Chrome::start().await;
    let c = &chrome.client;

    c.goto(&format!("{origin}/wiki?page=Home")).await.unwrap();
    sign_in_at_simplesamlphp(c, "alice", "alice-pw").await;

    let body = wait_for_app(c, &format!("{origin}/wiki"), &gate).await;
    assert!(body.contains(r#""x-forwarded-user":"alice""#), "{body}");
    assert!(
        body.contains(r#""x-forwarded-email":"alice@example.com""#),
        "{body}"
    );
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{origin}/wiki?page=Home")
    );
    assert_session_kept_and_transaction_cleared(c).await;
    chrome.stop().await;
}

#[tokio::test]
async fn oidc_login_in_a_real_browser() {
    browser_login("query").await;
}

#[tokio::test]
async fn oidc_form_post_login_in_a_real_browser() {
    // The provider POSTs back cross-site: only a SameSite=None; Secure
    // transaction cookie comes along.
    browser_login("form_post").await;
}

/// Types the user name into `user_field` and the password into the
/// password field of `form`, and submits it.
async fn fill_sign_in(
    form: &fantoccini::elements::Element,
    user_field: &str,
    user: &str,
    password: &str,
) {
    for (css, text) in [(user_field, user), ("input[name=password]", password)] {
        form.find(Locator::Css(css))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }
    form.find(Locator::Css("button[type=submit], input[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Fills and submits SimpleSAMLphp's login form once the browser shows it.
async fn sign_in_at_simplesamlphp(c: &Client, user: &str, password: &str) {
    let form = c
        .wait()
        .for_element(Locator::Css("form:has(input[name=username])"))
        .await
        .expect("SimpleSAMLphp's login form");
    fill_sign_in(&form, "input[name=username]", user, password).await;
}

/// Fills and submits the provider's login form once the browser shows it.
async fn sign_in_at_provider(c: &Client, issuer: &str, user: &str, password: &str) {
    let form = c
        .wait()
        .for_element(Locator::Css("#login-form"))
        .await
        .expect("provider's login form");
    let at = c.current_url().await.unwrap();
    assert!(at.as_str().starts_with(issuer), "at {at}");
    fill_sign_in(&form, "input[name=login]", user, password).await;
}

/// Signs alice in at the provider and waits for the app's echo at `prefix`,
/// which must name her; returns the page's source.
async fn alice_signs_in_to(
    c: &Client,
    issuer: &str,
    prefix: &str,
    log: impl Fn() -> String,
) -> String {
    sign_in_at_provider(c, issuer, "alice", "alice-pw").await;
    let body = wait_for_page(c, prefix, |t| t.contains("x-forwarded-user"), log).await;
    assert!(body.contains(r#""x-forwarded-user":"alice""#), "{body}");
    body
}

/// A reload is served from the session: the app's echo names alice again.
async fn assert_reload_still_shows_alice(c: &Client) {
    c.refresh().await.unwrap();
    assert!(
        c.source()
            .await
            .unwrap()
            .contains(r#""x-forwarded-user":"alice""#)
    );
}

/// After a login the browser holds the session cookie and no longer the
/// transaction cookie.
async fn assert_session_kept_and_transaction_cleared(c: &Client) {
    let names: Vec<String> = c
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n == "__Host-portcullis_session"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("portcullis_txn")),
        "transaction cookie cleared: {names:?}"
    );
}

/// Clicks the first element matching `css`.
async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits until the page at `prefix` satisfies `done`; returns its source.
async fn wait_for_page(
    c: &Client,
    prefix: &str,
    done: impl Fn(&str) -> bool,
    log: impl Fn() -> String,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = c.current_url().await.unwrap();
        let text = c.source().await.unwrap_or_default();
        if url.as_str().starts_with(prefix) && done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "not there; at {url}:\n{text}\n\ngate log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `css`.
async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn oidc_login_through_nginx_auth_request_in_chromium() {
    // Production-like: TLS at nginx (the shipped auth_request example),
    // __Host- Secure cookies over https, the provider on another site.
    let up = TestUpstream::start().await;
    let (tls_port, http_port) = (
        operations_support::free_port(),
        operations_support::free_port(),
    );
    let domain = "app.test";
    let origin = format!("https://{domain}:{tls_port}");
    let idp = OidcIdp::start(&origin, 0, &[]);
    let gate = operations_support::Gate::start(
        &format!(
            "domain: {domain}:{tls_port}\nlisten: 127.0.0.1:0\nupstream:\n  url: {}\nsession:\n  key_file: KEYFILE\nlog:\n  format: json\n  level: info\n{}",
            up.url(),
            oidc_yaml(&idp.issuer, "")
        ),
        &[],
    );
    let (conf, _certs) = operations_support::nginx_site(
        "nginx-auth-request.conf",
        domain,
        &gate.at,
        tls_port,
        http_port,
        Some(up.addr),
    );
    let nginx = operations_support::Nginx::start(&conf, tls_port);
    let chrome = Chrome::start_with(&[
        format!("--host-resolver-rules=MAP {domain} 127.0.0.1"),
        "--ignore-certificate-errors".into(),
    ])
    .await;
    let c = &chrome.client;
    let log = || format!("{}\nnginx:\n{}", gate.log(), nginx.error_log());

    c.goto(&format!("{origin}/dash?from=chromium"))
        .await
        .unwrap();
    let body = alice_signs_in_to(c, &idp.issuer, &format!("{origin}/dash"), log).await;
    assert!(
        body.contains(r#""x-forwarded-groups":"admins,staff""#),
        "{body}"
    );
    assert!(
        !body.contains("portcullis_session"),
        "the app never sees the session cookie: {body}"
    );
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{origin}/dash?from=chromium")
    );
    let cookies = c.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|k| k.name() == "__Host-portcullis_session")
        .unwrap_or_else(|| panic!("session cookie kept: {cookies:?}"));
    assert_eq!(
        (session.secure(), session.http_only(), session.path()),
        (Some(true), Some(true), Some("/")),
        "{session:?}"
    );
    assert!(
        !cookies.iter().any(|k| k.name().contains("portcullis_txn")),
        "transaction cookie cleared: {cookies:?}"
    );
    // A reload is served from the session through nginx's auth_request.
    assert_reload_still_shows_alice(c).await;
    let logins = gate
        .log_lines()
        .into_iter()
        .filter(|e| e["target"] == "audit" && e["event"] == "login_succeeded")
        .count();
    assert_eq!(logins, 1);
    chrome.stop().await;
}

#[tokio::test]
async fn refused_user_expired_session_and_logout_in_chromium() {
    let up = TestUpstream::start().await;
    // prompt=login: every login shows the provider's form, so "back at the
    // provider" is visible even while the provider's own session lives.
    let (origin, idp, gate) = oidc_gate_at_localhost_with(&up, |issuer| {
        format!(
            "access:\n  allowed_groups: [admins]\n{}",
            oidc_yaml(issuer, "  extra_auth_params:\n    prompt: login\n")
        )
    });
    let chrome = Chrome::start().await;
    let c = &chrome.client;
    let log = || gate.log();
    let session_cookie = |cookies: &[fantoccini::cookies::Cookie<'static>]| {
        cookies
            .iter()
            .find(|k| k.name() == "__Host-portcullis_session")
            .map(|k| k.value().to_string())
    };

    // bob is not in allowed_groups: the 403 page, no session.
    c.goto(&format!("{origin}/dash")).await.unwrap();
    sign_in_at_provider(c, &idp.issuer, "bob", "bob-pw").await;
    wait_for_page(c, &origin, |t| t.contains("<h1>"), log).await;
    assert_eq!(
        text_of(c, "h1").await,
        "You do not have access to this application"
    );
    let denied = only_denial_of_bob(gate.events("access_denied"));
    let rid = denied["request_id"].as_str().unwrap();
    assert_eq!(
        text_of(c, ".rid").await,
        format!("403 · request id {rid}"),
        "the 403 page, with the request id of the audit event"
    );
    let cookies = c.get_all_cookies().await.unwrap();
    assert_eq!(session_cookie(&cookies), None, "{cookies:?}");

    // alice signs in.
    c.goto(&format!("{origin}/dash")).await.unwrap();
    alice_signs_in_to(c, &idp.issuer, &format!("{origin}/dash"), log).await;

    // Her session expires (the browser still holds the cookie): the next
    // navigation goes back to the provider, then to the app again.
    let expired = mint_cookie(&gate.config_yaml, &gate.key_file(), &alice(), |cl| {
        cl.iat -= 7200;
        cl.exp = portcullis::session::now() - 60;
    });
    let value = expired.split_once('=').unwrap().1.to_string();
    // WebDriver cannot add a cookie for `localhost` (chromedriver: "invalid
    // domain"); the page's script can, once the HttpOnly one is gone.
    c.delete_cookie("__Host-portcullis_session").await.unwrap();
    c.execute(
        "document.cookie = arguments[0];",
        vec![serde_json::json!(format!(
            "__Host-portcullis_session={value}; Path=/; Secure; SameSite=Lax"
        ))],
    )
    .await
    .unwrap();
    assert_eq!(
        session_cookie(&c.get_all_cookies().await.unwrap()),
        Some(value),
        "the browser holds the expired session"
    );
    c.goto(&format!("{origin}/later")).await.unwrap();
    sign_in_at_provider(c, &idp.issuer, "alice", "alice-pw").await;
    wait_for_page(
        c,
        &format!("{origin}/later"),
        |t| t.contains(r#""x-forwarded-user":"alice""#),
        log,
    )
    .await;
    let rejected: Vec<serde_json::Value> = gate
        .events("session_rejected")
        .iter()
        .map(|e| e["reason"].clone())
        .collect();
    assert_eq!(rejected, ["the session has expired"]);
    assert_eq!(gate.events("login_succeeded").len(), 2);

    // Logout: through the provider's end-session page back to the
    // signed-out page, with the session cookie gone.
    c.goto(&format!("{origin}/.portcullis/logout"))
        .await
        .unwrap();
    wait_for_page(
        c,
        &format!("{origin}/.portcullis/signed-out"),
        |t| t.contains("<h1>"),
        log,
    )
    .await;
    assert_eq!(text_of(c, "h1").await, "You are signed out");
    let cookies = c.get_all_cookies().await.unwrap();
    assert_eq!(session_cookie(&cookies), None, "{cookies:?}");
    let out = gate.events("logout");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["user"], "alice");
    // And the app asks for a login again.
    c.goto(&format!("{origin}/dash")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#login-form"))
        .await
        .expect("sent to sign in again");
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&idp.issuer)
    );
    chrome.stop().await;
}

/// Runs programs inside the booted systemd container of
/// scripts/test-systemd-container.sh, which names the way in (an `nsenter`
/// command line) in `SYSTEMD_CONTAINER_ENTER`. The container shares this
/// machine's network: its services and this test's reach each other on
/// 127.0.0.1. Programs there get a root shell's clean environment, not
/// this test's (a `PORTCULLIS_*` variable would be read as configuration).
struct Container {
    enter: Vec<String>,
}

impl Container {
    fn from_env() -> Container {
        let enter: Vec<String> = std::env::var("SYSTEMD_CONTAINER_ENTER")
            .expect(
                "SYSTEMD_CONTAINER_ENTER: run this test through scripts/test-systemd-container.sh",
            )
            .split_whitespace()
            .map(String::from)
            .collect();
        assert!(!enter.is_empty(), "SYSTEMD_CONTAINER_ENTER is empty");
        Container { enter }
    }

    fn run(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(&self.enter[0])
            .args(&self.enter[1..])
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; its output, stdout then stderr.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with_input(args, "")
    }

    fn ok_with_input(&self, args: &[&str], stdin: &str) -> String {
        let o = self.run(args, stdin);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success(),
            "in the container, {args:?} failed ({}):\n{out}",
            o.status
        );
        out
    }

    fn journal(&self, unit: &str) -> String {
        let o = self.run(&["journalctl", "-u", unit, "-o", "cat", "--no-pager"], "");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `systemctl enable --now`, then `portcullis doctor NAME`: it must
    /// pass (warnings allowed, no failure), as the issue's third command.
    fn enable_and_doctor(&self, name: &str) -> String {
        let unit = format!("portcullis@{name}");
        let o = self.run(&["systemctl", "enable", "--now", &unit], "");
        assert!(
            o.status.success(),
            "systemctl enable --now {unit}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.journal(&unit)
        );
        let doctor = self.run(&["portcullis", "doctor", name], "");
        let report = String::from_utf8_lossy(&doctor.stdout).into_owned();
        assert_eq!(
            doctor.status.code(),
            Some(0),
            "portcullis doctor {name}:\n{report}{}",
            String::from_utf8_lossy(&doctor.stderr)
        );
        assert!(report.contains("ok   instance"), "{report}");
        assert!(report.contains("ok   unit"), "{report}");
        report
    }

    /// Waits until the browser shows the app's echo at `prefix`, behind
    /// `nginx` and the instance `name`, whose logs a failure shows.
    async fn app_page(
        &self,
        c: &Client,
        prefix: &str,
        name: &str,
        nginx: &operations_support::Nginx,
    ) -> String {
        let unit = format!("portcullis@{name}");
        wait_for_page(
            c,
            prefix,
            |t| t.contains("x-forwarded-user"),
            || format!("{}\nnginx:\n{}", self.journal(&unit), nginx.error_log()),
        )
        .await
    }

    /// Leaves the container as the script's later checks expect it.
    fn remove(&self, name: &str) {
        self.ok(&[
            "systemctl",
            "disable",
            "--now",
            &format!("portcullis@{name}"),
        ]);
        self.ok(&[
            "sh",
            "-c",
            "rm -rf /etc/portcullis/\"$0\".* /var/lib/portcullis/\"$0\"",
            name,
        ]);
    }
}

/// The nginx site `portcullis new` wrote, on this test's loopback ports
/// and with a fresh certificate for the host: what the operator does when
/// they "review the certificate paths".
fn host_nginx(
    snippet: &str,
    host: &str,
    tls_port: u16,
) -> (operations_support::Nginx, tempfile::TempDir) {
    use operations_support::replace_once;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = operations_support::self_signed(certs.path(), host);
    let mut s = replace_once(
        snippet,
        &format!("/etc/ssl/certs/{host}.pem"),
        cert.to_str().unwrap(),
    );
    s = replace_once(
        &s,
        &format!("/etc/ssl/private/{host}.key"),
        key.to_str().unwrap(),
    );
    s = replace_once(
        &s,
        &format!("listen {tls_port} ssl http2;"),
        &format!("listen 127.0.0.1:{tls_port} ssl http2;"),
    );
    s = replace_once(&s, &format!("listen [::]:{tls_port} ssl http2;"), "");
    s = replace_once(
        &s,
        "listen 80;",
        &format!("listen 127.0.0.1:{};", operations_support::free_port()),
    );
    s = replace_once(&s, "listen [::]:80;", "");
    (operations_support::Nginx::start(&s, tls_port), certs)
}

/// The issue's three commands in a booted Debian with systemd, the package
/// installed from the APT repository: `portcullis new` against the real
/// provider, `systemctl enable --now`, `portcullis doctor`; then nginx (on
/// this machine, with the snippet `new` wrote) in front, and Chromium signs
/// in through it to the app. Once with oidc-provider, once with
/// SimpleSAMLphp and `--saml`.
#[tokio::test]
#[ignore = "needs the booted container of scripts/test-systemd-container.sh"]
async fn new_enable_doctor_and_sign_in_inside_a_systemd_container() {
    let ct = Container::from_env();
    let up = TestUpstream::start().await;
    let chrome = Chrome::start_with(&[
        "--host-resolver-rules=MAP grafana.test 127.0.0.1, MAP wiki.test 127.0.0.1".into(),
        "--ignore-certificate-errors".into(),
    ])
    .await;
    let c = &chrome.client;

    // OpenID Connect.
    let tls_port = operations_support::free_port();
    let origin = format!("https://grafana.test:{tls_port}");
    let idp = OidcIdp::start(&origin, 0, &[]);
    // The secret first, as the operator writes it, so that `new` can
    // check the whole configuration and the provider on the spot.
    ct.ok_with_input(
        &[
            "install",
            "-m",
            "0640",
            "-g",
            "portcullis",
            "/dev/stdin",
            "/etc/portcullis/grafana.client-secret",
        ],
        CLIENT_SECRET,
    );
    let listen = format!("127.0.0.1:{}", operations_support::free_port());
    let domain = format!("grafana.test:{tls_port}");
    let up_url = up.url();
    let flags = new_oidc_flags(
        &up_url,
        &idp.issuer,
        "/etc/portcullis/grafana.client-secret",
        &listen,
    );
    let out = ct.ok(&[
        &["portcullis", "new", "grafana", "--domain", &domain][..],
        &flags,
    ]
    .concat());
    assert!(out.contains("ok   discovery"), "{out}");
    let report = ct.enable_and_doctor("grafana");
    assert!(report.contains("ok   client"), "{report}");
    let (nginx, _certs) = host_nginx(
        &ct.ok(&["cat", "/etc/portcullis/grafana.nginx.conf"]),
        "grafana.test",
        tls_port,
    );
    c.goto(&format!("{origin}/dash?from=container"))
        .await
        .unwrap();
    sign_in_at_provider(c, &idp.issuer, "alice", "alice-pw").await;
    let body = ct
        .app_page(c, &format!("{origin}/dash"), "grafana", &nginx)
        .await;
    assert!(body.contains(r#""x-forwarded-user":"alice""#), "{body}");
    assert!(
        body.contains(r#""x-forwarded-groups":"admins,staff""#),
        "{body}"
    );
    let journal = ct.journal("portcullis@grafana");
    assert!(journal.contains("login_succeeded"), "{journal}");
    drop(nginx);
    ct.remove("grafana");

    // SAML: `new` reads the IdP's metadata, then the IdP learns the SP
    // from the key pair `new` made.
    let tls_port = operations_support::free_port();
    let origin = format!("https://wiki.test:{tls_port}");
    let mut idp = common::saml::Idp::start(serde_json::json!([]));
    let listen = format!("127.0.0.1:{}", operations_support::free_port());
    let out = ct.ok(&[
        "portcullis",
        "new",
        "wiki",
        "--domain",
        &format!("wiki.test:{tls_port}"),
        "--upstream",
        &up.url(),
        "--saml",
        &idp.metadata_url(),
        "--listen",
        &listen,
    ]);
    assert!(out.contains("ok   metadata"), "{out}");
    let entity = format!("{origin}/.portcullis/saml/metadata");
    assert!(
        out.contains(&format!("SP entity ID:     {entity}")),
        "{out}"
    );
    let cert_dir = tempfile::tempdir().unwrap();
    let cert = cert_dir.path().join("sp.crt");
    std::fs::write(
        &cert,
        ct.ok(&["cat", "/var/lib/portcullis/wiki/saml-sp.crt"]),
    )
    .unwrap();
    idp.restart_with_sps(serde_json::json!([common::saml::sp_at(
        &origin,
        &entity,
        &cert,
        serde_json::json!({})
    )]));
    ct.enable_and_doctor("wiki");
    let (nginx, _certs) = host_nginx(
        &ct.ok(&["cat", "/etc/portcullis/wiki.nginx.conf"]),
        "wiki.test",
        tls_port,
    );
    c.goto(&format!("{origin}/pages?p=Home")).await.unwrap();
    sign_in_at_simplesamlphp(c, "alice", "alice-pw").await;
    let body = ct
        .app_page(c, &format!("{origin}/pages"), "wiki", &nginx)
        .await;
    assert!(body.contains(r#""x-forwarded-user":"alice""#), "{body}");
    assert!(
        body.contains(r#""x-forwarded-email":"alice@example.com""#),
        "{body}"
    );
    drop(nginx);
    ct.remove("wiki");
    chrome.stop().await;
}

/// A form submitted after the session ended is not lost: the gate keeps it
/// in the tab while the user signs in again, then the browser posts it to
/// the app, once, with the fields as typed (markup and line breaks
/// included).
#[tokio::test]
async fn a_form_submitted_after_the_session_ended_reaches_the_app_after_login() {
    let (_up, origin, idp, gate, chrome) = chrome_at_oidc_gate().await;
    let c = &chrome.client;

    c.goto(&format!("{origin}/notes")).await.unwrap();
    sign_in_at_provider(c, &idp.issuer, "alice", "alice-pw").await;
    wait_for_app(c, &format!("{origin}/notes"), &gate).await;
    // The app's form, on the app's origin.
    put_form(
        c,
        r#"<form method="post" action="/echo-body?from=form"><input name="title"><textarea name="notes"></textarea><input type="hidden" name="csrf" value="tok-123"><button id="send">Send</button></form>"#,
    )
    .await;
    c.find(Locator::Css("input[name=title]"))
        .await
        .unwrap()
        .send_keys("Q3 report & more")
        .await
        .unwrap();
    c.find(Locator::Css("textarea[name=notes]"))
        .await
        .unwrap()
        .send_keys("line one\nline two </script><b>")
        .await
        .unwrap();
    // The session ends while the user types.
    c.delete_cookie("__Host-portcullis_session").await.unwrap();
    click(c, "#send").await;

    // Signed in again at the provider (with or without its form), back at
    // the app with the form sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let url = c.current_url().await.unwrap();
        let text = c.source().await.unwrap_or_default();
        if url.as_str().starts_with(&format!("{origin}/echo-body")) && text.contains("\"body\"") {
            break text;
        }
        if url.as_str().starts_with(&idp.issuer)
            && c.find(Locator::Css("#login-form")).await.is_ok()
        {
            sign_in_at_provider(c, &idp.issuer, "alice", "alice-pw").await;
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "not back at the app; at {url}:\n{text}\n\ngate log:\n{}",
            gate.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let json_text = c
        .execute("return document.body.innerText;", vec![])
        .await
        .unwrap();
    let echo: serde_json::Value = serde_json::from_str(json_text.as_str().unwrap_or_default())
        .unwrap_or_else(|_| panic!("{body}"));
    assert_eq!(echo["method"], "POST", "{echo}");
    assert_eq!(echo["uri"], "/echo-body?from=form", "{echo}");
    let fields: Vec<(String, String)> =
        url::form_urlencoded::parse(echo["body"].as_str().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        fields,
        [
            ("title".to_string(), "Q3 report & more".to_string()),
            (
                "notes".to_string(),
                "line one\r\nline two </script><b>".to_string()
            ),
            ("csrf".to_string(), "tok-123".to_string()),
        ]
    );
    let kept = gate.audit_events();
    let kept: Vec<_> = kept.iter().filter(|e| e["event"] == "form_kept").collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["fields"], 3);
    assert!(
        !gate.log().contains("tok-123"),
        "form values are never logged"
    );

    // Sent once: the page that sends it has nothing left.
    let text = open_resubmit_with_nothing_to_send(c, &origin, &gate).await;
    assert!(text.contains("Go to the application"), "{text}");
    chrome.stop().await;
}

/// Opens the resubmit page and waits until it says it has no form to send
/// (nothing kept, or what was kept is refused); returns the page's text.
async fn open_resubmit_with_nothing_to_send(c: &Client, origin: &str, gate: &Gate) -> String {
    let url = format!("{origin}/.portcullis/resubmit");
    c.goto(&url).await.unwrap();
    wait_for_page(
        c,
        &url,
        |t| t.contains("There is no form to send"),
        || gate.log(),
    )
    .await
}

/// A browser that refuses site storage (cookies and `sessionStorage` blocked
/// for every site) cannot keep a form: the page says so and stays, instead
/// of starting a login that would lose the form silently.
#[tokio::test]
async fn a_browser_that_refuses_storage_is_told_the_form_cannot_be_kept() {
    let up = TestUpstream::start().await;
    let (origin, _idp, gate) = oidc_gate_at_localhost(&up);
    let chrome = Chrome::start_with_prefs(
        &[],
        serde_json::json!({"profile.default_content_setting_values.cookies": 2}),
    )
    .await;
    let c = &chrome.client;
    // A document of the app's origin that needs no session, and a form in it.
    c.goto(&format!("{origin}/.portcullis/health"))
        .await
        .unwrap();
    put_form(
        c,
        r#"<form method="post" action="/notes"><input name="title" value="kept?"><button id="send">Send</button></form>"#,
    )
    .await;
    click(c, "#send").await;
    let text = wait_for_page(
        c,
        &format!("{origin}/notes"),
        |t| t.contains("does not let the page keep your form"),
        || gate.log(),
    )
    .await;
    assert!(text.contains("Your session has ended"), "{text}");
    // It stayed: no login was started behind the user's back.
    assert!(
        c.current_url().await.unwrap().as_str().starts_with(&origin),
        "{text}"
    );
    chrome.stop().await;
}

/// The resubmit page posts only to a path of this origin: a kept form
/// whose target was planted as another site (`//host`, `/\\host`, a full
/// URL) is dropped, not sent, and the browser stays on the gate.
#[tokio::test]
async fn the_resubmit_page_never_posts_to_another_origin() {
    let (_up, origin, _idp, gate, chrome) = chrome_at_oidc_gate().await;
    let c = &chrome.client;
    let mut failed = Vec::new();
    for target in [
        "//127.0.0.1:9/x",
        "/\\127.0.0.1:9/x",
        "http://127.0.0.1:9/x",
        "javascript:alert(1)",
    ] {
        c.goto(&format!("{origin}/.portcullis/health"))
            .await
            .unwrap();
        c.execute(
            "sessionStorage.setItem('portcullis.form', JSON.stringify({action: arguments[0], enctype: 'application/x-www-form-urlencoded', fields: [['a', '1']]})); return true;",
            vec![serde_json::Value::String(target.to_string())],
        )
        .await
        .unwrap();
        let text = open_resubmit_with_nothing_to_send(c, &origin, &gate).await;
        let at = c.current_url().await.unwrap();
        if !at.as_str().starts_with(&origin) || !text.contains("Go to the application") {
            failed.push(format!("{target}: at {at}"));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
    chrome.stop().await;
}
