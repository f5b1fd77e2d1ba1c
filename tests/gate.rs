//! The gate's decisions end to end: the real binary between a test client
//! and a real upstream. Each security invariant the core owns (docs/design.md,
//! "Security invariants") is attacked here.

mod common;

use common::*;
use portcullis::identity::Identity;
use serde_json::Value;

async fn echo(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200, "expected the upstream's echo");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn passthrough_is_public_and_protected_paths_need_login() {
    let (_up, gate) =
        echo_behind_gate("passthrough:\n  paths:\n    - prefix: /public/\n    - exact: /healthz\n")
            .await;
    let c = client();

    let r = c.get(gate.url("/public/page?x=1")).send().await.unwrap();
    let v = echo(r).await;
    assert_eq!(v["uri"], "/public/page?x=1");
    assert!(v["headers"].get("x-forwarded-user").is_none());

    // A browser navigation gets the login step; no IdP is configured yet,
    // so it is the page that says so.
    let r = browser_get(&c, gate.url("/admin")).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("Sign-in is not set up yet"), "{body}");

    // A script gets 401 JSON naming the login URL, never a redirect.
    let r = get_with_headers(
        &c,
        gate.url("/api/data?q=1"),
        &[
            ("accept", "application/json"),
            ("x-requested-with", "XMLHttpRequest"),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Portcullis realm=\"app.test\""
    );
    assert!(r.headers().get("location").is_none());
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "login_required");
    assert_eq!(
        v["login_url"],
        "/.portcullis/login?rd=%2Fapi%2Fdata%3Fq%3D1"
    );
    assert_eq!(v["request_id"], rid.as_str(), "the id in the header");
    assert!(
        rid.len() == 16 && rid.bytes().all(|b| b.is_ascii_hexdigit()),
        "64 random bits, hex: {rid}"
    );

    // fetch() from a page: Sec-Fetch-Mode cors, even with Accept */*.
    let r = get_with_headers(
        &c,
        gate.url("/admin"),
        &[
            ("accept", "*/*"),
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty"),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);

    // Path tricks do not make a protected path public.
    for attack in [
        "/public/../admin",
        "/public%2F..%2Fadmin",
        "/public/%2e%2e/admin",
        "/public/..;/admin",
        "/public/%252e%252e/admin",
        "/public/..%3B/admin",
        "/public/%c0%ae%c0%ae/admin",
        "/public/..%20/admin",
        "/healthz/../admin",
    ] {
        let r = get_with_headers(&c, gate.url(attack), &[("accept", "application/json")]).await;
        assert_eq!(r.status(), 401, "{attack} must not be public");
    }
}

#[tokio::test]
async fn valid_session_reaches_upstream_with_identity_headers() {
    let (_up, gate) = echo_behind_gate("headers:\n  extra:\n    department: X-Dept\n").await;
    let mut id = alice();
    id.extra.insert("department".into(), "R&D".into());
    let cookie = gate.session_cookie(&id);
    let r = get_with_headers(
        &client(),
        gate.url("/dash?x=1"),
        &[("cookie", &format!("theme=dark; {cookie}; lang=en"))],
    )
    .await;
    assert!(
        r.headers().get("server").is_none(),
        "Server header is stripped"
    );
    assert!(
        r.headers().get("x-powered-by").is_none(),
        "X-Powered-By is stripped"
    );
    let v = echo(r).await;
    let h = &v["headers"];
    assert_eq!(h["x-forwarded-user"], "alice");
    assert_eq!(h["x-forwarded-email"], "alice@example.com");
    assert_eq!(h["x-forwarded-groups"], "admins,staff");
    assert_eq!(h["x-forwarded-preferred-username"], "alice");
    assert_eq!(h["x-forwarded-name"], "Alice Example");
    assert_eq!(h["x-dept"], "R&D");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    // The upstream never sees the session, but keeps its own cookies.
    assert_eq!(h["cookie"], "theme=dark; lang=en");
    assert_eq!(v["uri"], "/dash?x=1");
}

#[tokio::test]
async fn forged_expired_and_foreign_sessions_are_refused() {
    let up = TestUpstream::start().await;
    let yaml = base_yaml(&up.url(), "");
    let gate = Gate::start(&yaml);
    let c = client();
    let get = |cookie: String| {
        let c = c.clone();
        let url = gate.url("/x");
        async move { api_get(&c, url, &cookie).await.status() }
    };
    let good = gate.session_cookie(&alice());
    assert_eq!(get(good.clone()).await, 200);

    // Tampered payload: bob's claims in alice's signature.
    let (name, token) = good.split_once('=').unwrap();
    let bob_token = gate
        .session_cookie(&bob())
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let parts: Vec<&str> = token.split('.').collect();
    let bob_parts: Vec<&str> = bob_token.split('.').collect();
    let tampered = format!("{name}={}.{}.{}", parts[0], bob_parts[1], parts[2]);
    assert_eq!(get(tampered).await, 401);

    // Expired.
    let expired = mint_cookie(
        &yaml.replace("KEYFILE", gate.key_file().to_str().unwrap()),
        &gate.key_file(),
        &alice(),
        |c| {
            c.iat -= 7200;
            c.exp = portcullis::session::now() - 60;
        },
    );
    assert_eq!(get(expired).await, 401);

    // Unknown kid: signed by a key ring the gate does not have.
    let other_dir = tempfile::tempdir().unwrap();
    let other_keys = other_dir.path().join("k.json");
    portcullis::session::KeyRing::generate()
        .write_new(&other_keys)
        .unwrap();
    let foreign_key = mint_cookie(
        &yaml.replace("KEYFILE", other_keys.to_str().unwrap()),
        &other_keys,
        &alice(),
        |_| {},
    );
    assert_eq!(get(foreign_key).await, 401);

    // Same keys, another domain.
    let other_domain_yaml = yaml
        .replace("domain: app.test", "domain: other.test")
        .replace("KEYFILE", gate.key_file().to_str().unwrap());
    let other_domain = mint_cookie(&other_domain_yaml, &gate.key_file(), &alice(), |_| {});
    assert_eq!(get(other_domain).await, 401);

    // alg "none".
    let none = format!("{name}=eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    assert_eq!(get(none).await, 401);

    // Each refusal audited, for its own reason, in order.
    let reasons: Vec<Value> = gate
        .events("session_rejected")
        .iter()
        .map(|e| e["reason"].clone())
        .collect();
    assert_eq!(
        reasons,
        [
            "the session cookie's signature does not verify",
            "the session has expired",
            "the session cookie was signed by a key that is not in the key ring",
            "the session cookie was issued for another domain",
            "the session cookie is malformed",
        ]
    );
    assert!(!gate.log().contains(parts[2]), "no cookie in the logs");
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_upstream() {
    let (_up, gate) = echo_behind_gate("passthrough:\n  paths:\n    - prefix: /public/\n").await;
    let cookie = gate.session_cookie(&bob());
    for (path, with_session) in [("/public/x", false), ("/private", true)] {
        let mut rb = client()
            .get(gate.url(path))
            .header("X-Forwarded-Email", "admin@x")
            .header("X_Forwarded_Email", "admin@x")
            .header("x-forwarded-user", "admin")
            .header("X_FORWARDED_GROUPS", "admins")
            .header("X-Real-IP", "10.9.9.9")
            .header("X-Original-URL", "/admin")
            .header("X-HTTP-Method-Override", "DELETE")
            .header("X_Forwarded_For", "10.0.0.1");
        if with_session {
            rb = rb.header("cookie", cookie.clone());
        }
        let v = echo(rb.send().await.unwrap()).await;
        let h = v["headers"].as_object().unwrap();
        for (k, val) in h {
            assert!(
                !val.as_str().unwrap().contains("admin"),
                "{path}: {k}: {val} leaked"
            );
        }
        assert!(!h.contains_key("x_forwarded_email"));
        assert!(
            !h.contains_key("x-original-url"),
            "routing overrides never pass"
        );
        assert!(!h.contains_key("x-http-method-override"));
        assert!(!h.contains_key("x_forwarded_for"));
        if with_session {
            assert_eq!(h["x-forwarded-email"], "bob@example.org");
        } else {
            assert!(!h.contains_key("x-forwarded-email"));
        }
        assert_eq!(h["x-real-ip"], "127.0.0.1");
    }
}

#[tokio::test]
async fn bearer_tokens_pass_with_their_identity_and_stay_secret() {
    let up = TestUpstream::start().await;
    let token = "monitoring-token-9f8e7d6c5b4a";
    let hash = hex::encode(portcullis::policy::tokens::sha256(token));
    let gate = Gate::start(&base_yaml(
        &up.url(),
        &format!(
            "passthrough:\n  tokens:\n    - name: prometheus\n      sha256: {hash}\n      groups: [monitoring]\n"
        ),
    ));
    let c = client();

    let v = echo(
        c.get(gate.url("/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["headers"]["x-forwarded-user"], "prometheus");
    assert_eq!(v["headers"]["x-forwarded-groups"], "monitoring");
    assert!(
        v["headers"].get("authorization").is_none(),
        "our token is not forwarded"
    );

    // In the product header, the app's own Authorization passes untouched.
    let v = echo(
        get_with_headers(
            &c,
            gate.url("/api"),
            &[
                ("authorization", "Bearer app-own-token"),
                ("X-Portcullis-Authorization", &format!("Bearer {token}")),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(v["headers"]["authorization"], "Bearer app-own-token");
    assert!(v["headers"].get("x-portcullis-authorization").is_none());

    for wrong in ["monitoring-token-9f8e7d6c5b4", "nope", ""] {
        let r = c
            .get(gate.url("/metrics"))
            .bearer_auth(wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{wrong:?}");
    }
    let used: Vec<Value> = gate.events("token_used");
    assert_eq!(used.len(), 2);
    assert_eq!(used[0]["token_name"], "prometheus");
    assert!(
        !gate.log().contains(token),
        "the token never appears in the log"
    );
    assert!(!gate.log().contains("monitoring-token"), "nor a part of it");
}

#[tokio::test]
async fn access_rules_refuse_outsiders() {
    let (_up, gate) = echo_behind_gate(
        "access:\n  allowed_groups: [admins]\n  allowed_email_domains: [corp.example]\n",
    )
    .await;
    let c = client();
    let ok = get_with_headers(
        &c,
        gate.url("/"),
        &[("cookie", &gate.session_cookie(&alice()))],
    )
    .await;
    assert_eq!(ok.status(), 200);
    let r = get_with_headers(
        &c,
        gate.url("/"),
        &[
            ("cookie", &gate.session_cookie(&bob())),
            ("accept", BROWSER_ACCEPT),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("do not have access"));
    assert!(!body.contains("allowed_groups"), "the page names no rule");
    let mut corp = bob();
    corp.email = Some("bob@corp.example".into());
    let r = get_with_headers(
        &c,
        gate.url("/"),
        &[("cookie", &gate.session_cookie(&corp))],
    )
    .await;
    assert_eq!(r.status(), 200, "a matching email domain is enough");
    let denied: Vec<Value> = gate.events("access_denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["user"], "bob");
    assert_eq!(
        denied[0]["rule"],
        "allowed_groups/allowed_emails/allowed_email_domains/allowed_roles"
    );
}

#[tokio::test]
async fn client_ip_rules_and_untrusted_forwarded_for() {
    let up = TestUpstream::start().await;
    let c = client();

    // Loopback is not trusted here: its X-Forwarded-For is ignored.
    let gate = Gate::start(&base_yaml(
        &up.url(),
        "access:\n  allowed_ip_ranges: [203.0.113.0/24]\n  trusted_proxies: []\n",
    ));
    let r = gate.get_as_alice_from(&c, "/", "203.0.113.5").await;
    assert_eq!(r.status(), 403, "a spoofed X-Forwarded-For must not get in");
    let denied = gate
        .audit_events()
        .into_iter()
        .find(|e| e["event"] == "access_denied")
        .unwrap();
    assert_eq!(denied["rule"], "allowed_ip_ranges");
    assert_eq!(denied["client_ip"], "127.0.0.1");
    drop(gate);

    // Loopback trusted (the default): its X-Forwarded-For is believed.
    let gate = Gate::start(&base_yaml(
        &up.url(),
        "access:\n  allowed_ip_ranges: [203.0.113.0/24]\n",
    ));
    let r = gate.get_as_alice_from(&c, "/", "203.0.113.5").await;
    let v = echo(r).await;
    assert_eq!(v["headers"]["x-forwarded-for"], "203.0.113.5, 127.0.0.1");
    assert_eq!(v["headers"]["x-real-ip"], "203.0.113.5");
    let r = gate.get_as_alice_from(&c, "/", "198.51.100.7").await;
    assert_eq!(r.status(), 403);
    drop(gate);

    // Tokens are held to the address rule as well.
    let hash = hex::encode(portcullis::policy::tokens::sha256("backup-token"));
    let gate = Gate::start(&base_yaml(
        &up.url(),
        &format!(
            "access:\n  allowed_ip_ranges: [203.0.113.0/24]\npassthrough:\n  tokens:\n    - name: backup\n      sha256: {hash}\n"
        ),
    ));
    let r = c
        .get(gate.url("/"))
        .bearer_auth("backup-token")
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "a token from outside the ranges is refused"
    );
    let r = c
        .get(gate.url("/"))
        .bearer_auth("backup-token")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn session_cookie_attributes_in_production_settings() {
    let up = TestUpstream::start().await;
    let yaml = base_yaml(&up.url(), "")
        .replace("scheme: http\n", "scheme: https\n")
        .replace(
            "  secure_cookie: false\n",
            "  secure_cookie: true\n  inactivity_timeout: 10m\n",
        );
    let gate = Gate::start(&yaml);
    let now = portcullis::session::now();
    let cookie = mint_cookie(&gate.config_yaml, &gate.key_file(), &alice(), |c| {
        c.iat = now - 400;
        c.exp = now + 200;
    });
    assert!(cookie.starts_with("__Host-portcullis_session="));
    let r = get_with_headers(&client(), gate.url("/"), &[("cookie", &cookie)]).await;
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("__Host-portcullis_session="), "{set}");
    for attr in ["; Path=/", "; HttpOnly", "; Secure", "; SameSite=Lax"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(
        !set.to_ascii_lowercase().contains("domain="),
        "__Host- cookies carry no Domain: {set}"
    );
    // An unprefixed twin (planted from a sibling subdomain) is not read.
    let planted = cookie.replacen("__Host-", "", 1);
    let r = api_get(&client(), gate.url("/"), &planted).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn return_urls_stay_on_this_origin() {
    let (_up, gate) = echo_behind_gate("").await;
    let c = client();
    for evil in [
        "//evil.example",
        "/\\evil.example",
        "https:evil.example",
        "%2F%2Fevil.example",
        "/%2F%2Fevil.example",
        "https://evil.example/path",
        "http://app.test.evil.example/",
        "http://app.test@evil.example/",
        "\\\\evil.example",
        "/%5Cevil.example",
    ] {
        let r = c
            .get(gate.url("/.portcullis/logout"))
            .query(&[("rd", evil)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{evil}");
        assert_eq!(r.headers()["location"], "/", "{evil}");
    }
    let r = c
        .get(gate.url("/.portcullis/logout"))
        .query(&[("rd", "/reports?id=4")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/reports?id=4");
    let r = c
        .get(gate.url("/.portcullis/logout"))
        .query(&[("rd", "http://app.test/a")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/a");
}

#[tokio::test]
async fn logout_clears_the_session_and_shows_a_page() {
    let (_up, gate) = echo_behind_gate(
        "pages:\n  support_url: https://help.example/portcullis\n  footer: ACME IT\n",
    )
    .await;
    let cookie = gate.session_cookie(&alice());
    let r = get_with_headers(
        &client(),
        gate.url("/.portcullis/logout"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let cleared: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("portcullis_session=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body = r.text().await.unwrap();
    assert!(body.contains("You are signed out"));
    assert!(body.contains("https://help.example/portcullis"));
    assert!(body.contains("ACME IT"));
    assert!(body.contains(&rid), "the page shows the request id");
    let ev = gate
        .audit_events()
        .into_iter()
        .find(|e| e["event"] == "logout")
        .unwrap();
    assert_eq!(ev["user"], "alice");
    assert_eq!(
        ev["request_id"],
        rid.as_str(),
        "the log carries the same request id"
    );
}

#[tokio::test]
async fn own_endpoints() {
    let (_up, gate) = echo_behind_gate("").await;
    let c = client();
    let r = c.get(gate.url("/.portcullis/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"status":"ok"}"#);
    let r = browser_get(&c, gate.url("/.portcullis/nothing-here")).await;
    assert_eq!(r.status(), 404);
    let r = browser_get(&c, gate.url("/.portcullis/login?rd=/x")).await;
    assert_eq!(r.status(), 503, "login start without an IdP says so");
}

#[tokio::test]
async fn large_sessions_are_split_and_joined() {
    let up = TestUpstream::start().await;
    // Directory DNs contain commas: such deployments pick another separator.
    let yaml = base_yaml(&up.url(), "headers:\n  groups_separator: \"|\"\n")
        .replace("session:\n", "session:\n  max_cookie_bytes: 30400\n");
    let gate = Gate::start(&yaml);
    let config = portcullis::config::from_yaml_str(
        &yaml.replace("KEYFILE", gate.key_file().to_str().unwrap()),
    )
    .unwrap();
    let ring = portcullis::session::KeyRing::load(&gate.key_file()).unwrap();
    let sessions = portcullis::session::Sessions::new(&config, std::sync::Arc::new(ring));
    let mut id = alice();
    id.groups = (0..300)
        .map(|i| format!("CN=group-number-{i},OU=Groups,DC=corp,DC=example"))
        .collect();
    let set = sessions
        .mint(&id, portcullis::identity::IdpKind::Saml, &[])
        .unwrap();
    assert!(set.len() >= 3, "split over several cookies: {}", set.len());
    let cookie_header = set
        .iter()
        .map(|c| c.split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(cookie_header.len() > 4096);
    let v = echo(
        get_with_headers(
            &client(),
            gate.url("/"),
            &[("cookie", &format!("{cookie_header}; app=1"))],
        )
        .await,
    )
    .await;
    let groups = v["headers"]["x-forwarded-groups"].as_str().unwrap();
    assert_eq!(
        groups
            .split('|')
            .filter(|g| g.starts_with("CN=group-number-"))
            .count(),
        300
    );
    assert_eq!(
        v["headers"]["cookie"], "app=1",
        "no chunk reaches the upstream"
    );
}

#[tokio::test]
async fn inactivity_timeout_renews_and_expires() {
    let up = TestUpstream::start().await;
    let yaml = base_yaml(&up.url(), "").replace(
        "session:\n",
        "session:\n  inactivity_timeout: 10m\n  lifetime: 8h\n",
    );
    let gate = Gate::start(&yaml);
    let resolved = yaml.replace("KEYFILE", gate.key_file().to_str().unwrap());
    let now = portcullis::session::now();
    let c = client();

    // Fresh: no renewal.
    let fresh = mint_cookie(&resolved, &gate.key_file(), &alice(), |_| {});
    let r = get_with_headers(&c, gate.url("/"), &[("cookie", &fresh)]).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none());

    // Used 6 minutes ago, expires in 4: renewed to a full window.
    let aging = mint_cookie(&resolved, &gate.key_file(), &alice(), |cl| {
        cl.iat = now - 360;
        cl.exp = now + 240;
    });
    let r = get_with_headers(&c, gate.url("/"), &[("cookie", &aging)]).await;
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("portcullis_session="), "{set}");
    let max_age: u64 = set
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (590..=600).contains(&max_age),
        "renewed for the inactivity window: {max_age}"
    );

    // Idle past the window: refused.
    let idle = mint_cookie(&resolved, &gate.key_file(), &alice(), |cl| {
        cl.iat = now - 1200;
        cl.exp = now - 600;
    });
    let r = api_get(&c, gate.url("/"), &idle).await;
    assert_eq!(r.status(), 401);

    // Past the absolute lifetime, even if recently used: refused.
    let old = mint_cookie(&resolved, &gate.key_file(), &alice(), |cl| {
        cl.auth_time = now - 9 * 3600;
        cl.iat = now - 10;
        cl.exp = now + 590;
    });
    let r = api_get(&c, gate.url("/"), &old).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn identity_is_fail_closed_when_identity_lacks_fields() {
    // A session without email or groups still forwards, but never with
    // headers the client sent.
    let (_up, gate) = echo_behind_gate("").await;
    let id = Identity {
        subject: "svc".into(),
        user: "svc".into(),
        ..Default::default()
    };
    let v = echo(
        get_with_headers(
            &client(),
            gate.url("/"),
            &[
                ("cookie", &gate.session_cookie(&id)),
                ("x-forwarded-email", "root@x"),
                ("x-forwarded-groups", "admins"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(v["headers"]["x-forwarded-user"], "svc");
    assert!(v["headers"].get("x-forwarded-email").is_none());
    assert!(v["headers"].get("x-forwarded-groups").is_none());
}

#[tokio::test]
async fn basic_auth_and_host_rules_for_the_upstream() {
    let up = TestUpstream::start().await;
    let yaml = base_yaml(&up.url(), "").replace(
        "  timeout: 3s\n",
        "  timeout: 3s\n  preserve_host: false\n  basic_auth:\n    password: app-shared-secret\n",
    );
    let gate = Gate::start(&yaml);
    let v = echo(
        get_with_headers(
            &client(),
            gate.url("/"),
            &[
                ("cookie", &gate.session_cookie(&alice())),
                ("authorization", "Basic Zm9yZ2VkOnVzZXI="),
            ],
        )
        .await,
    )
    .await;
    // alice:app-shared-secret, not what the client sent.
    assert_eq!(
        v["headers"]["authorization"],
        "Basic YWxpY2U6YXBwLXNoYXJlZC1zZWNyZXQ="
    );
    assert_eq!(
        v["headers"]["host"],
        up.addr.to_string(),
        "Host is the upstream's"
    );
    assert_eq!(
        v["headers"]["x-forwarded-host"],
        gate.addr.to_string(),
        "the public host travels in X-Forwarded-Host"
    );
    assert!(!gate.log().contains("app-shared-secret"));
}

#[tokio::test]
async fn a_session_whose_identity_cannot_be_a_header_is_refused_not_trimmed() {
    // A session minted before such values were refused at login, or by an
    // instance sharing the keys: the value cannot be a header, and
    // forwarding without it would tell the app less than the session says.
    let (_up, gate) = echo_behind_gate("headers:\n  extra:\n    department: X-Dept\n").await;
    let c = client();
    let mut cases: Vec<(&str, Identity)> = Vec::new();
    let mut id = alice();
    id.user = "alice\r\nX-Admin: 1".into();
    cases.push(("user with CRLF", id));
    let mut id = alice();
    id.name = Some("Alice\u{7}".into());
    cases.push(("name with BEL", id));
    let mut id = alice();
    id.groups.push("staff\nadmins".into());
    cases.push(("group with LF", id));
    let mut id = alice();
    id.extra.insert("department".into(), "R&D\u{0}".into());
    cases.push(("extra attribute with NUL", id));
    let mut id = alice();
    id.email = Some("alice@example.com\u{85}".into());
    cases.push(("email with NEL", id));

    let mut failures = Vec::new();
    for (name, identity) in &cases {
        let cookie = gate.session_cookie(identity);
        // Proxy mode, a browser: the 403 page, not the app.
        let r = get_with_headers(
            &c,
            gate.url("/dash"),
            &[("cookie", &cookie), ("accept", BROWSER_ACCEPT)],
        )
        .await;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        if status != 403 || !body.contains("You do not have access to this application") {
            failures.push(format!("{name}: proxy answered {status}: {body}"));
        }
        // A script: the JSON twin.
        let r = get_with_headers(
            &c,
            gate.url("/api"),
            &[("cookie", &cookie), ("accept", "application/json")],
        )
        .await;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or_default();
        if status != 403 || v["error"] != "forbidden" {
            failures.push(format!("{name}: API answered {status}: {v}"));
        }
        // Forward-auth: no "yes" with a header left out.
        let r = get_with_headers(
            &c,
            gate.url("/.portcullis/auth"),
            &[
                ("cookie", &cookie),
                ("x-original-uri", "/dash"),
                ("x-original-method", "GET"),
            ],
        )
        .await;
        let status = r.status().as_u16();
        let leaked = r.headers().get("x-forwarded-user").is_some();
        if status != 403 || leaked {
            failures.push(format!(
                "{name}: forward-auth answered {status} (identity headers: {leaked})"
            ));
        }
    }
    let denied = gate.events("access_denied");
    let rules: Vec<&str> = denied.iter().map(|e| e["rule"].as_str().unwrap()).collect();
    if rules != vec!["identity_control_characters"; 3 * cases.len()] {
        failures.push(format!("audit rules: {rules:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The control: the same session with clean values reaches the app.
    let v = echo(
        get_with_headers(
            &c,
            gate.url("/dash"),
            &[("cookie", &gate.session_cookie(&alice()))],
        )
        .await,
    )
    .await;
    assert_eq!(v["headers"]["x-forwarded-user"], "alice");
}

/// The path battery of tests/common/paths.rs through the proxy: every shape
/// is either the gate's own answer (nothing reaches the app) or reaches the
/// app unchanged and is read as `/public/…` by every router.
#[tokio::test]
async fn path_battery_through_the_proxy() {
    use common::paths::*;
    let up = RecordingUpstream::start().await;
    let gate = Gate::start(&base_yaml(
        &up.url(),
        "passthrough:\n  paths:\n    - prefix: /public/\n",
    ));
    let send = async |head: String| send_tcp(gate.addr, &head).await;
    let mut results = run_battery("app.test", &up, |c| c.expect, true, send).await;
    let refusals = cases("app.test")
        .iter()
        .filter(|c| matches!(c.expect, Expect::Refused(_)))
        .count();
    results.eq(
        "request_refused audit events",
        gate.events("request_refused").len(),
        refusals,
    );
    results.finish();
}

/// The header battery of tests/common/spoofs.rs through the proxy: no
/// forged header, session cookie or passthrough token reaches the app on
/// any route; the app's own credentials do.
#[tokio::test]
async fn header_battery_through_the_proxy() {
    use common::spoofs::*;
    let up = common::paths::RecordingUpstream::start().await;
    let gate = Gate::start(&base_yaml(&up.url(), &gate_yaml_extra()));
    let session = gate.session_cookie(&alice_with_department());
    run_probes(&client(), &gate.url(""), &up, &session)
        .await
        .finish();
}

/// strict_host: 421 for any Host (or absolute-form authority) that is not
/// the domain or an alias, on every route; off by default.
#[tokio::test]
async fn strict_host_answers_421_to_other_hosts_and_is_off_by_default() {
    use common::cases::Cases;
    use common::paths::*;
    let up = RecordingUpstream::start().await;
    let gate = Gate::start(&base_yaml(
        &up.url(),
        "strict_host: true\ndomain_aliases: [alias.test]\npassthrough:\n  paths:\n    - prefix: /public/\n",
    ));
    let mut results = Cases::new();
    // (target, Host, status)
    let probes = [
        ("/public/x", "app.test", 200),
        ("/public/x", "APP.test:80", 200),
        ("/public/x", "alias.test", 200),
        ("/public/x", "evil.test", 421),
        ("/public/x", "app.test.evil.test", 421),
        ("/public/x", "app.test:8080", 421),
        ("http://evil.test/public/x", "app.test", 421),
        ("http://app.test/public/x", "evil.test", 421),
        ("/.portcullis/health", "evil.test", 421),
        ("/admin", "evil.test", 421),
    ];
    for (n, (target, host, want)) in probes.iter().enumerate() {
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n{CASE_HEADER}: {n}"
        );
        let r = send_tcp(gate.addr, &head).await;
        let reached = up.seen_for(n).len();
        let ok = match want {
            200 => r.status == 200 && reached == 1,
            _ => {
                r.status == *want
                    && reached == 0
                    && r.json()
                        .is_some_and(|v| v["error"] == "misdirected_request")
            }
        };
        results.check(format!("{target} with Host {host}"), ok, || {
            format!("{} (upstream saw {reached}), expected {want}", r.status)
        });
    }
    // A request without any Host cannot name ours either.
    let r = send_tcp(
        gate.addr,
        "GET /public/x HTTP/1.0\r\nAccept: application/json",
    )
    .await;
    results.eq("HTTP/1.0 without Host", r.status, 421);
    let refused = gate.events("request_refused");
    let ok = refused.len() == 8
        && refused
            .iter()
            .all(|e| e["reason"].as_str().unwrap_or("").contains("strict_host"));
    results.check("request_refused audit events", ok, || {
        format!("{refused:?}")
    });
    drop(gate);

    // Off by default: any Host is forwarded as the client sent it.
    let gate = Gate::start(&base_yaml(
        &up.url(),
        "passthrough:\n  paths:\n    - prefix: /public/\n",
    ));
    let r = send_tcp(
        gate.addr,
        &format!("GET /public/x HTTP/1.1\r\nHost: evil.test\r\n{CASE_HEADER}: off"),
    )
    .await;
    let seen: Vec<_> = up
        .seen()
        .into_iter()
        .filter(|s| s.headers.get(CASE_HEADER).is_some_and(|v| v == "off"))
        .collect();
    let ok = r.status == 200 && seen.len() == 1 && seen[0].headers["host"] == "evil.test";
    results.check("strict_host off", ok, || format!("{} {seen:?}", r.status));
    results.finish();
}

/// Forward-auth with the header set Traefik's forwardAuth sends (its own
/// Host is the auth address; the original is in X-Forwarded-*), asked
/// directly: Traefik cannot be installed here, so its set is exercised
/// against Portcullis alone.
#[tokio::test]
async fn forward_auth_with_traefiks_header_set() {
    use common::cases::Cases;
    use common::paths::*;
    let up = RecordingUpstream::start().await;
    let gate = Gate::start(&base_yaml(
        &up.url(),
        "strict_host: true\nforward_auth:\n  headers: forwarded\npassthrough:\n  paths:\n    - prefix: /public/\n",
    ));
    let ask = |uri: &str, method: &str, extra: &str| {
        format!(
            "GET /.portcullis/auth HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\nX-Forwarded-Method: {method}\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.test\r\nX-Forwarded-Uri: {uri}\r\nX-Forwarded-For: 203.0.113.9{extra}"
        )
    };
    let mut results = Cases::new();
    for (head, want, what) in [
        (ask("/public/x", "GET", ""), 200, "passthrough"),
        (ask("/admin", "GET", ""), 401, "protected"),
        (ask("/public/../admin", "GET", ""), 401, "dot segments"),
        (
            ask("/admin", "GET", "\r\nX-Original-URI: /public/x"),
            400,
            "a client's X-Original-URI",
        ),
        (
            ask("/public/x", "GET", "")
                .replace("X-Forwarded-Host: app.test", "X-Forwarded-Host: evil.test"),
            421,
            "another host",
        ),
        (
            ask("/public/x", "GET", "").replace("X-Forwarded-Uri: /public/x\r\n", ""),
            400,
            "no X-Forwarded-Uri",
        ),
    ] {
        let r = send_tcp(gate.addr, &head).await;
        results.check(what, r.status == want, || {
            format!("{} {}, expected {want}", r.status, r.body)
        });
    }
    // The answer to a passthrough question, header by header.
    let r = send_tcp(
        gate.addr,
        &ask("/public/x", "GET", "\r\nCookie: app=1; portcullis_session=abc\r\nAuthorization: Basic YTpi\r\nX-Forwarded-User: forged"),
    )
    .await;
    for (name, want) in [
        ("x-forwarded-user", ""),
        ("x-forwarded-email", ""),
        ("x-forwarded-groups", ""),
        ("x-portcullis-authorization", ""),
        ("cookie", "app=1"),
        ("authorization", "Basic YTpi"),
    ] {
        results.eq(format!("answer {name}"), r.header(name), Some(want));
    }
    results.eq("questions that reached the upstream", up.seen().len(), 0);
    results.finish();
}

/// `access.rules`: the first rule whose canonical path and method match
/// decides; the domain-wide lists are the default. Raw requests, so the
/// client sends each spelling byte for byte.
#[tokio::test]
async fn per_path_rules_decide_on_the_canonical_path() {
    use common::paths::send_tcp;
    let (_up, gate) = echo_behind_gate("access:\n  allowed_groups: [staff]\n  rules:\n    - description: Admin console <b>\n      paths: [{prefix: /admin/}]\n      allowed_groups: [admins]\n    - description: API writes\n      paths: [{prefix: /api/}]\n      methods: [POST]\n      allowed_groups: [admins]\n").await;
    let (a, b) = (gate.session_cookie(&alice()), gate.session_cookie(&bob()));
    let get = async |method: &str, path: &str, cookie: &str| {
        send_tcp(
            gate.addr,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nContent-Length: 0\r\nCookie: {cookie}"
            ),
        )
        .await
    };
    let mut failures = Vec::new();
    for (method, path, cookie, who, want) in [
        ("GET", "/admin/", &a, "alice", 200),
        ("GET", "/admin/", &b, "bob", 403),
        ("GET", "/elsewhere", &b, "bob", 200),
        ("GET", "/admin/../admin/x", &b, "bob", 403),
        ("GET", "/%61dmin/", &b, "bob", 403),
        ("GET", "//admin/", &b, "bob", 403),
        ("GET", "/admin/./x", &b, "bob", 403),
        ("GET", "/x/../admin/", &b, "bob", 403),
        // A raw-prefix router behind the gate would read this as /admin/.
        ("GET", "/admin/../x", &b, "bob", 403),
        // No normal form: no rule can be chosen once rules exist.
        ("GET", "/admin%2f..", &b, "bob", 403),
        ("GET", "/admin%2f..", &a, "alice", 403),
        // Letter case is the app's: another path, the default rule.
        ("GET", "/ADMIN/", &b, "bob", 200),
        ("GET", "/%61dmin/", &a, "alice", 200),
        ("POST", "/api/x", &b, "bob", 403),
        ("GET", "/api/x", &b, "bob", 200),
        ("POST", "/api/x", &a, "alice", 200),
    ] {
        let r = get(method, path, cookie).await;
        if r.status != want {
            failures.push(format!("{who} {method} {path}: {} (want {want})", r.status));
        }
        if r.status == 403 && path.contains("admin") && !path.contains("%2f") {
            if !r.body.contains("Admin console &lt;b&gt;") {
                failures.push(format!("{method} {path}: the page does not name the rule"));
            }
            if r.body.contains("allowed_groups") || r.body.contains("rules[") {
                failures.push(format!("{method} {path}: the page names internals"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let denied = gate.events("access_denied");
    assert_eq!(denied.len(), 10, "{denied:#?}");
    assert_eq!(denied[0]["user"], "bob");
    assert_eq!(denied[0]["access_rule"], "rules[0]");
    assert_eq!(denied[0]["access_rule_description"], "Admin console <b>");
    assert_eq!(
        denied[0]["rule"],
        "allowed_groups/allowed_emails/allowed_email_domains/allowed_roles"
    );
    let unplaced: Vec<_> = denied
        .iter()
        .filter(|e| e["rule"] == "path_without_normal_form")
        .collect();
    assert_eq!(unplaced.len(), 2);
    assert_eq!(unplaced[0]["access_rule"], "none");
    let api = denied
        .iter()
        .filter(|e| e["access_rule"] == "rules[1]")
        .count();
    assert_eq!(api, 1);
}
