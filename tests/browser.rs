//! Each login flow in a real headless browser (Debian's Chromium driven
//! through chromedriver): only a browser enforces the `__Host-` prefix,
//! `Secure` and `SameSite` rules that decide whether a login works at all.
//! The gate runs on `localhost` (a secure context for Chromium, so `Secure`
//! cookies are kept over plain http) and the provider on `127.0.0.1`: a
//! different site, so the round trip is a real cross-site one.

mod common;

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
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync", "--disable-quic",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
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

async fn browser_login(response_mode: &str) {
    let up = TestUpstream::start().await;
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let idp = OidcIdp::start(&origin, 0, &[]);
    // Secure cookies as in production: __Host- prefix, Secure, SameSite.
    let yaml = base_yaml(
        &up.url(),
        &oidc_yaml(&idp.issuer, &format!("  response_mode: {response_mode}\n")),
    )
    .replace("domain: app.test", &format!("domain: localhost:{port}"))
    .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"))
    .replace("  secure_cookie: false\n", "  secure_cookie: true\n");
    let gate = Gate::start(&yaml);
    let chrome = Chrome::start().await;
    let c = &chrome.client;

    c.goto(&format!("{origin}/dash?from=browser"))
        .await
        .unwrap();
    let login = c
        .wait()
        .for_element(Locator::Css("#login-form"))
        .await
        .expect("provider's login form");
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&idp.issuer)
    );
    login
        .find(Locator::Css("input[name=login]"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    login
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("alice-pw")
        .await
        .unwrap();
    login
        .find(Locator::Css("button[type=submit], input[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

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

    let cookies = c.get_all_cookies().await.unwrap();
    let names: Vec<String> = cookies.iter().map(|c| c.name().to_string()).collect();
    assert!(
        names.iter().any(|n| n == "__Host-portcullis_session"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("portcullis_txn")),
        "transaction cookie cleared: {names:?}"
    );

    // A reload is served from the session, no new login.
    c.refresh().await.unwrap();
    assert!(
        c.source()
            .await
            .unwrap()
            .contains(r#""x-forwarded-user":"alice""#)
    );
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
    let yaml = base_yaml(
        &up.url(),
        &format!(
            "saml:\n  idp_metadata_url: {}\n  sp_entity_id: {entity}\n  sp_key_file: {}\n  sp_cert_file: {}\n",
            idp.metadata_url(),
            pair.key.display(),
            pair.cert.display()
        ),
    )
    .replace("domain: app.test", &format!("domain: localhost:{port}"))
    .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"))
    .replace("  secure_cookie: false\n", "  secure_cookie: true\n");
    let gate = Gate::start(&yaml);
    let chrome = Chrome::start().await;
    let c = &chrome.client;

    c.goto(&format!("{origin}/wiki?page=Home")).await.unwrap();
    let user = c
        .wait()
        .for_element(Locator::Css("input[name=username]"))
        .await
        .expect("SimpleSAMLphp's login form");
    user.send_keys("alice").await.unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("alice-pw")
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit], input[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

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
