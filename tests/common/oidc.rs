//! The real OpenID provider (`oidc-provider` from npm, in tests/idp/oidc)
//! started on a loopback port, and a browser-like HTTP client that follows
//! redirects with a cookie jar and submits the provider's login form.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use serde_json::{Value, json};

pub struct OidcIdp {
    pub server: super::process::Server,
    pub issuer: String,
    pub port: u16,
}

pub const CLIENT_ID: &str = "portcullis-test";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";

impl OidcIdp {
    /// Starts the provider with one confidential client for a gate at
    /// `gate_origin`; `port` 0 picks a free port.
    pub fn start(gate_origin: &str, port: u16, extra_env: &[(&str, &str)]) -> OidcIdp {
        Self::start_with_client(gate_origin, port, extra_env, &json!({}))
    }

    /// [`Self::start`] with more client metadata (e.g.
    /// `backchannel_logout_uri`) merged into the one client.
    pub fn start_with_client(
        gate_origin: &str,
        port: u16,
        extra_env: &[(&str, &str)],
        extra_client: &Value,
    ) -> OidcIdp {
        let mut client = json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [format!("{gate_origin}/.portcullis/oidc/callback")],
            "post_logout_redirect_uris": [format!("{gate_origin}/.portcullis/signed-out")],
            "token_endpoint_auth_method": "client_secret_basic",
        });
        if let (Some(c), Some(extra)) = (client.as_object_mut(), extra_client.as_object()) {
            c.extend(extra.clone());
        }
        let clients = json!([client]);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/idp/oidc");
        let mut cmd = Command::new("node");
        cmd.arg(format!("{dir}/server.mjs"))
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_CLIENTS", clients.to_string())
            .env("OIDC_TEST_CONTROL", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut server = super::process::Server::spawn(
            "oidc-provider",
            &mut cmd,
            super::process::Shutdown::Term,
            Duration::from_secs(10),
        )
        .expect("node runs the test provider (the test command installs Node.js and runs npm ci)");
        // The provider's first line says it listens; EOF means it exited.
        let stdout = server.take_stdout().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!("test provider did not start: {line:?} (run `npm ci --prefix tests/idp/oidc`)")
        });
        OidcIdp {
            server,
            issuer: ready["issuer"].as_str().unwrap().to_string(),
            port: u16::try_from(ready["port"].as_u64().unwrap()).unwrap(),
        }
    }

    /// Stops the provider (SIGTERM) and waits until it is gone.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// A JWT signed as the test says (see tests/idp/oidc/server.mjs).
    pub async fn sign(&self, body: Value) -> String {
        let v = self.control("sign", Some(&body)).await;
        v["jwt"].as_str().unwrap().to_string()
    }

    pub async fn rotate_keys(&self) -> String {
        let v = self.control("rotate-keys", None).await;
        v["kid"].as_str().unwrap().to_string()
    }

    /// The test provider's answer to a POST at its control endpoint
    /// `/__test/<what>` (with a JSON `body` if given).
    async fn control(&self, what: &str, body: Option<&Value>) -> Value {
        let mut rb = reqwest::Client::new().post(format!("{}/__test/{what}", self.issuer));
        if let Some(body) = body {
            rb = rb.json(body);
        }
        rb.send().await.unwrap().json().await.unwrap()
    }
}

/// The `oidc:` section for a gate using `idp`.
pub fn oidc_yaml(issuer: &str, extra: &str) -> String {
    format!(
        "oidc:\n  issuer: {issuer}\n  client_id: {CLIENT_ID}\n  client_secret: {CLIENT_SECRET}\n  scopes: [openid, email, profile]\n{extra}"
    )
}

/// A cookie-keeping, non-redirecting client: one browser.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
}

/// Checks that `page` is the echo app's answer carrying alice's identity
/// headers (`alice`, `alice@example.com`, `admins,staff`, `Alice Example`)
/// and no Portcullis cookie; returns the echoed request for further checks.
pub fn assert_alice_at_app(page: &Page) -> Value {
    let v: Value = serde_json::from_str(&page.body)
        .unwrap_or_else(|e| panic!("the app's echo is JSON ({e}): {}", page.body));
    let h = &v["headers"];
    assert_eq!(h["x-forwarded-user"], "alice");
    assert_eq!(h["x-forwarded-email"], "alice@example.com");
    assert_eq!(h["x-forwarded-groups"], "admins,staff");
    assert_eq!(h["x-forwarded-name"], "Alice Example");
    let cookies = h["cookie"].as_str().unwrap_or_default();
    assert!(
        !cookies.contains("portcullis"),
        "no Portcullis cookie reaches the app: {cookies}"
    );
    v
}

/// The `portcullis new` flags of an OIDC app: its upstream, the provider,
/// the test client with its secret file, and where the gate listens.
pub fn new_oidc_flags<'a>(
    upstream: &'a str,
    issuer: &'a str,
    secret_file: &'a str,
    listen: &'a str,
) -> [&'a str; 10] {
    [
        "--upstream",
        upstream,
        "--oidc",
        issuer,
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        secret_file,
        "--listen",
        listen,
    ]
}

pub struct Page {
    pub status: u16,
    pub url: String,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The page is a `status` page saying `text`; if not, its body shows.
    pub fn assert_shows(&self, status: u16, text: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(self.body.contains(text), "{}", self.body);
    }
}

impl Browser {
    pub fn new() -> Browser {
        Self::with_jar(Arc::new(Jar::default()))
    }

    fn with_jar(jar: Arc<Jar>) -> Browser {
        Self::from_builder(reqwest::Client::builder(), jar)
    }

    /// A browser on a client configured by the test (name resolution, a
    /// self-signed certificate), with its own cookie jar.
    pub fn with_client(builder: reqwest::ClientBuilder) -> Browser {
        Self::from_builder(builder, Arc::new(Jar::default()))
    }

    fn from_builder(builder: reqwest::ClientBuilder, jar: Arc<Jar>) -> Browser {
        let http = builder
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .unwrap();
        Browser { http, jar }
    }

    /// The same cookies over new connections (after a server restart).
    pub fn reconnect(&self) -> Browser {
        Self::with_jar(self.jar.clone())
    }

    /// Checks that the jar holds no Portcullis session cookie for `origin`.
    pub fn assert_no_session(&self, origin: &str) {
        assert!(
            self.cookies_for(origin)
                .find("portcullis_session=")
                .is_none(),
            "no session minted"
        );
    }

    pub fn cookies_for(&self, url: &str) -> String {
        self.jar
            .cookies(&url.parse().unwrap())
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// One request as a top-level navigation.
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("accept", super::BROWSER_ACCEPT)
            .send()
            .await
            .unwrap()
    }

    /// Follows redirects (and records each URL) until a non-redirect.
    pub async fn follow(&self, start: &str) -> (Page, Vec<String>) {
        self.follow_response(self.get(start).await, start).await
    }

    pub async fn follow_response(
        &self,
        mut resp: reqwest::Response,
        start: &str,
    ) -> (Page, Vec<String>) {
        let mut url = reqwest::Url::parse(start).unwrap();
        let mut trail = vec![url.to_string()];
        for _ in 0..20 {
            if !resp.status().is_redirection() {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let body = resp.text().await.unwrap();
                return (
                    Page {
                        status,
                        url: url.to_string(),
                        body,
                        headers,
                    },
                    trail,
                );
            }
            let loc = resp.headers()["location"].to_str().unwrap().to_string();
            url = url.join(&loc).unwrap();
            trail.push(url.to_string());
            resp = self.get(url.as_str()).await;
        }
        panic!("too many redirects: {trail:?}");
    }

    /// Fills and submits the provider's login form on `page`, then follows
    /// redirects up to (not including) `stop_prefix` if given.
    pub async fn submit_login(&self, page: &Page, user: &str, password: &str) -> reqwest::Response {
        let action = attr_after(&page.body, "id=\"login-form\"", "action=\"")
            .expect("login form on the page");
        let url = reqwest::Url::parse(&page.url)
            .unwrap()
            .join(&action)
            .unwrap();
        self.http
            .post(url)
            .header("accept", super::BROWSER_ACCEPT)
            .form(&[("login", user), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    /// Submits `user`'s login on the provider's `form` page and follows the
    /// redirects after it; returns the page it ends on and its trail.
    pub async fn submit_login_and_follow(
        &self,
        form: &Page,
        user: &str,
        password: &str,
    ) -> (Page, Vec<String>) {
        let resp = self.submit_login(form, user, password).await;
        self.follow_response(resp, &form.url).await
    }

    /// Follows `start` as a browser with no session does, to the provider's
    /// login form; `log()` shows what the proxy in front saw if it ends elsewhere.
    pub async fn follow_to_login_form(
        &self,
        start: &str,
        issuer: &str,
        log: impl FnOnce() -> String,
    ) -> (Page, Vec<String>) {
        let (form, trail) = self.follow(start).await;
        assert!(
            form.url.starts_with(&format!("{issuer}/interaction/"))
                && form.body.contains("login-form"),
            "at the provider's login form: {trail:?}\n{}\n{}",
            form.body,
            log()
        );
        (form, trail)
    }

    /// Submits alice's login on the provider's `form` and follows it back: it
    /// must end on a 200 page, else the trail, page and `gate_log()` say why.
    pub async fn submit_alice_login_to_200(
        &self,
        form: &Page,
        gate_log: impl FnOnce() -> String,
    ) -> (Page, Vec<String>) {
        let (page, trail) = self
            .submit_login_and_follow(form, "alice", "alice-pw")
            .await;
        assert_eq!(
            page.status,
            200,
            "{trail:?}\n{}\ngate:\n{}",
            page.body,
            gate_log()
        );
        (page, trail)
    }

    /// Signs bob, who is outside allowed_groups, in at `start` to the end:
    /// the provider lets him in, Portcullis answers with the 403 page.
    pub async fn assert_bob_signs_in_to_403(&self, start: &str) {
        let (page, _) = self.sign_in(start, "bob", "bob-pw").await;
        page.assert_shows(403, "You do not have access to this application");
    }

    /// A sign-in from scratch for a test that checks only where it ends:
    /// to `start`, on to the provider's form, `user`'s login, and back.
    pub async fn sign_in(&self, start: &str, user: &str, password: &str) -> (Page, Vec<String>) {
        let (form, _) = self.follow(start).await;
        self.submit_login_and_follow(&form, user, password).await
    }

    /// Signs out at the provider as a browser does: its end-session page at
    /// `url` (`/session/end`, with or without RP-initiated logout
    /// parameters), then its confirmation form (the `xsrf` field, and
    /// `logout=yes`, which the test provider's page adds for the whole IdP
    /// session). Returns the provider's answer to the form and its URL.
    pub async fn confirm_logout_at_provider(&self, url: &str) -> (reqwest::Response, String) {
        let page = self.get(url).await;
        assert_eq!(
            page.status(),
            200,
            "the provider refused the end-session request"
        );
        let html = page.text().await.unwrap();
        let value_of = |anchor: &str, attr: &str| -> String {
            let at = html
                .find(anchor)
                .unwrap_or_else(|| panic!("no {anchor} in the end-session page: {html}"));
            let rest = &html[at..];
            let v = rest.find(attr).unwrap() + attr.len();
            rest[v..v + rest[v..].find('"').unwrap()].to_string()
        };
        let xsrf = value_of("name=\"xsrf\"", "value=\"");
        let action = reqwest::Url::parse(url)
            .unwrap()
            .join(&value_of("id=\"op.logoutForm\"", "action=\""))
            .unwrap()
            .to_string();
        let resp = self
            .http
            .post(&action)
            .header("accept", super::BROWSER_ACCEPT)
            .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
            .send()
            .await
            .unwrap();
        (resp, action)
    }

    /// Follows redirects until the next hop would go to `prefix`; returns
    /// that URL without requesting it (to capture a callback).
    pub async fn follow_until(
        &self,
        mut resp: reqwest::Response,
        base: &str,
        prefix: &str,
    ) -> String {
        let mut url = reqwest::Url::parse(base).unwrap();
        for _ in 0..20 {
            assert!(
                resp.status().is_redirection(),
                "expected a redirect at {url}, got {}",
                resp.status()
            );
            let loc = resp.headers()["location"].to_str().unwrap().to_string();
            url = url.join(&loc).unwrap();
            if url.as_str().starts_with(prefix) {
                return url.to_string();
            }
            resp = self.get(url.as_str()).await;
        }
        panic!("never reached {prefix}");
    }
}

fn attr_after(html: &str, anchor: &str, attr: &str) -> Option<String> {
    let start = html.find(anchor)?;
    let tag_start = html[..start].rfind('<')?;
    let tag_end = start + html[start..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find(attr)? + attr.len();
    let end = tag[v..].find('"')?;
    Some(html_unescape(&tag[v..v + end]))
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
}

// The gate and provider set-up the OIDC test files share.

pub struct Setup {
    pub up: super::TestUpstream,
    pub idp: OidcIdp,
    pub gate: super::Gate,
    pub origin: String,
}

impl Setup {
    /// `path` at the gate.
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

/// A gate on a fixed loopback port (its redirect URI is registered at the
/// provider before it starts).
pub async fn setup(gate_extra: &str, oidc_extra: &str, idp_env: &[(&str, &str)]) -> Setup {
    setup_with_client(gate_extra, oidc_extra, idp_env, |_| json!({})).await
}

/// [`setup`] with more client metadata at the provider, made from the
/// gate's origin (e.g. its `backchannel_logout_uri`).
pub async fn setup_with_client(
    gate_extra: &str,
    oidc_extra: &str,
    idp_env: &[(&str, &str)],
    client: impl Fn(&str) -> Value,
) -> Setup {
    let up = super::TestUpstream::start().await;
    let port = super::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let idp = OidcIdp::start_with_client(&origin, 0, idp_env, &client(&origin));
    let gate = super::Gate::start(&gate_yaml(&up, port, &idp.issuer, gate_extra, oidc_extra));
    Setup {
        up,
        idp,
        gate,
        origin,
    }
}

pub fn gate_yaml(
    up: &super::TestUpstream,
    port: u16,
    issuer: &str,
    gate_extra: &str,
    oidc_extra: &str,
) -> String {
    super::base_yaml(
        &up.url(),
        &format!("{gate_extra}{}", oidc_yaml(issuer, oidc_extra)),
    )
    .replace("domain: app.test", &format!("domain: 127.0.0.1:{port}"))
    .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"))
}

/// Logs `user` in through the provider's form; returns the final page
/// (after the redirect back to the app).
pub async fn login(b: &Browser, s: &Setup, path: &str, user: &str, password: &str) -> Page {
    let (form, trail) = b.follow(&format!("{}{path}", s.origin)).await;
    assert!(
        trail[1].starts_with(&s.idp.issuer),
        "sent to the provider: {trail:?}"
    );
    assert!(
        form.body.contains("login-form"),
        "login form expected at {}:\n{}",
        form.url,
        form.body
    );
    let resp = b.submit_login(&form, user, password).await;
    b.follow_response(resp, &form.url).await.0
}
