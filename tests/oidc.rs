//! OpenID Connect login end to end: the real binary, a real upstream and a
//! real OpenID provider (`oidc-provider`), with a browser-like HTTP client.

mod common;

use common::oidc::*;
use common::*;
use serde_json::{Value, json};

fn failed_reasons(gate: &Gate) -> Vec<String> {
    gate.audit_events()
        .into_iter()
        .filter(|e| e["event"] == "login_failed")
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn login_reaches_upstream_and_survives_provider_outage() {
    let mut s = setup("", "", &[]).await;
    let b = Browser::new();
    let page = login(&b, &s, "/dash?tab=1", "alice", "alice-pw").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.url,
        format!("{}/dash?tab=1", s.origin),
        "back where the user started"
    );
    // The provider's cookies share the host 127.0.0.1 and pass; ours never.
    assert_alice_at_app(&page);
    let ok = s
        .gate
        .audit_events()
        .into_iter()
        .find(|e| e["event"] == "login_succeeded")
        .unwrap();
    assert_eq!(ok["user"], "alice");
    assert_eq!(ok["idp"], "oidc");

    // The provider goes away: the session keeps working (stateless)...
    s.idp.stop();
    let (page, _) = b.follow(&format!("{}/again", s.origin)).await;
    assert_eq!(page.status, 200);
    // ...and a new login gets the friendly 503 page (once the last contact
    // is older than the reachability window).
    tokio::time::sleep(
        portcullis::idp::oidc::provider::REACHABLE_FRESH + std::time::Duration::from_millis(500),
    )
    .await;
    let fresh = Browser::new();
    let (page, _) = fresh.follow(&format!("{}/x", s.origin)).await;
    assert_eq!(page.status, 503);
    assert!(
        page.body.contains("sign-in service cannot be reached"),
        "{}",
        page.body
    );

    // Restart with the provider still down: discovery comes from the cache.
    s.gate.restart();
    assert!(
        s.gate.log().contains("using the cached discovery document"),
        "{}",
        s.gate.log()
    );
    // The keys were cached with the discovery document.
    let cache: Value = serde_json::from_str(
        &std::fs::read_to_string(s.gate.dir.path().join("oidc-provider.json")).unwrap(),
    )
    .unwrap();
    assert!(
        !cache["jwks"]["keys"].as_array().unwrap().is_empty(),
        "signing keys cached"
    );
    let (page, _) = b
        .reconnect()
        .follow(&format!("{}/after-restart", s.origin))
        .await;
    assert_eq!(page.status, 200, "sessions survive a restart");
    let _ = &s.up;
}

#[tokio::test]
async fn return_url_after_login_stays_on_this_origin() {
    let s = setup("", "", &[]).await;
    for (rd, lands) in [
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/%2F%2Fevil.example", "/"),
        ("/reports?id=7", "/reports?id=7"),
    ] {
        let b = Browser::new();
        let start = format!(
            "/.portcullis/login?rd={}",
            percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC)
        );
        let page = login(&b, &s, &start, "alice", "alice-pw").await;
        assert_eq!(page.url, format!("{}{lands}", s.origin), "rd={rd}");
    }
}

#[tokio::test]
async fn user_outside_allowed_groups_gets_403_after_login() {
    let s = setup("access:\n  allowed_groups: [admins]\n", "", &[]).await;
    let (b, page) = login_in_new_browser(&s, "bob").await;
    page.assert_shows(403, "You do not have access to this application");
    only_denial_of_bob(s.gate.events("access_denied"));
    b.assert_no_session(&s.origin);
}

/// `user`'s login at `/` in a browser of its own, kept for the checks on
/// the session it leaves (or does not).
async fn login_in_new_browser(s: &Setup, user: &str) -> (Browser, Page) {
    let b = Browser::new();
    let page = login(&b, s, "/", user, &format!("{user}-pw")).await;
    (b, page)
}

/// Entra ID group overage, from the real provider: the ID token carries
/// `_claim_names.groups` instead of `groups`. No session without groups:
/// the user's page says to ask the admin, the audit reason names the fix.
#[tokio::test]
async fn group_overage_refuses_the_login_and_names_the_fix() {
    let s = setup("", "", &[]).await;
    let (b, page) = login_in_new_browser(&s, "dave").await;
    page.assert_shows(
        500,
        "Ask the administrator of this application to limit the groups sent for it.",
    );
    let failed = s.gate.only_event("login_failed");
    assert_eq!(
        failed["reason"],
        "the ID token carries no groups but a group overage reference (_claim_names.groups); operator fix: in Entra ID emit groups as app roles, or set the token's groups claim to \"groups assigned to the application\" and assign only the groups this application needs"
    );
    b.assert_no_session(&s.origin);
}

#[tokio::test]
async fn unverified_email_does_not_satisfy_email_rules() {
    // bob@example.org is not verified at the provider.
    let s = setup("access:\n  allowed_email_domains: [example.org]\n", "", &[]).await;
    let page = login(&Browser::new(), &s, "/", "bob", "bob-pw").await;
    assert_eq!(
        page.status, 403,
        "an unverified address must not open the door"
    );
    let denied = s.gate.only_event("access_denied");
    assert_eq!(
        (denied["user"].as_str(), denied["rule"].as_str()),
        (
            Some("bob"),
            Some("allowed_groups/allowed_emails/allowed_email_domains/allowed_roles")
        ),
        "refused by the email rule, as bob (not by the address as user name)"
    );
    // The control: the provider does release bob's address, and only its
    // `email_verified: false` kept it out.
    let s = setup(
        "access:\n  allowed_email_domains: [example.org]\n",
        "  allow_unverified_email: true\n",
        &[],
    )
    .await;
    let page = login(&Browser::new(), &s, "/", "bob", "bob-pw").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let v: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(v["headers"]["x-forwarded-email"], "bob@example.org");
    let s = setup("access:\n  allowed_email_domains: [example.com]\n", "", &[]).await;
    let page = login(&Browser::new(), &s, "/", "alice", "alice-pw").await;
    assert_eq!(page.status, 200, "alice's address is verified");
    let v: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(v["headers"]["x-forwarded-email"], "alice@example.com");
}

#[tokio::test]
async fn key_rollover_at_the_provider_needs_no_restart() {
    let s = setup("", "", &[]).await;
    let page = login(&Browser::new(), &s, "/", "alice", "alice-pw").await;
    assert_eq!(page.status, 200);
    let new_kid = s.idp.rotate_keys().await;
    let page = login(&Browser::new(), &s, "/", "bob", "bob-pw").await;
    assert_eq!(
        page.status, 200,
        "login after rotation to {new_kid}: {}",
        page.body
    );
    assert!(s.gate.log().contains("keys refetched"), "{}", s.gate.log());
}

#[tokio::test]
async fn two_logins_in_two_tabs_both_complete() {
    let s = setup("", "", &[]).await;
    let b = Browser::new();
    // Both tabs are sent to the provider before either finishes.
    let tab_a = b.get(&format!("{}/a", s.origin)).await;
    let auth_a = tab_a.headers()["location"].to_str().unwrap().to_string();
    let (form_b, _) = b.follow(&format!("{}/b", s.origin)).await;
    // Tab B logs in first.
    let resp = b.submit_login(&form_b, "alice", "alice-pw").await;
    let (page_b, _) = b.follow_response(resp, &form_b.url).await;
    assert_eq!(page_b.url, format!("{}/b", s.origin));
    assert_eq!(page_b.status, 200);
    // Tab A then completes through the provider's SSO session.
    let (page_a, _) = b.follow(&auth_a).await;
    assert_eq!(page_a.status, 200, "{}", page_a.body);
    assert_eq!(page_a.url, format!("{}/a", s.origin));
}

#[tokio::test]
async fn provider_error_is_shown_and_audited() {
    let s = setup("", "", &[]).await;
    let b = Browser::new();
    let (form, _) = b.follow(&format!("{}/", s.origin)).await;
    let uid_url = form.url.clone();
    let resp = b
        .http
        .post(format!("{uid_url}/abort"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    let (page, _) = b.follow_response(resp, &format!("{uid_url}/abort")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("The identity provider said"),
        "{}",
        page.body
    );
    assert_eq!(
        failed_reasons(&s.gate),
        ["provider returned error `access_denied`"]
    );
}

/// The `end_session_endpoint` query of a logout redirect, as a map.
fn query_of(loc: &str) -> std::collections::BTreeMap<String, String> {
    reqwest::Url::parse(loc)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn logout_ends_the_session_and_sends_the_id_token_hint_the_provider_accepts() {
    let s = setup("", "", &[]).await;
    let b = Browser::new();
    let page = login(&b, &s, "/", "alice", "alice-pw").await;
    assert_eq!(page.status, 200, "{}", page.body);
    // The hint cookie exists only for the logout path: neither an ordinary
    // request nor the app ever carries it.
    let logout_url = format!("{}/.portcullis/logout", s.origin);
    let at_logout = b.cookies_for(&logout_url);
    let hint = at_logout
        .split("; ")
        .find_map(|c| c.strip_prefix("portcullis_logout_hint="))
        .unwrap_or_else(|| panic!("no logout hint for the logout path: {at_logout}"))
        .to_string();
    for path in [
        "/",
        "/.portcullis/",
        "/.portcullis/logoutx",
        "/app/.portcullis/logout",
    ] {
        let jar = b.cookies_for(&format!("{}{path}", s.origin));
        assert!(
            !jar.contains("logout_hint"),
            "{path} carries the hint: {jar}"
        );
    }
    let v: Value = serde_json::from_str(&page.body).unwrap();
    assert!(
        !v["headers"]["cookie"]
            .as_str()
            .unwrap_or_default()
            .contains("logout_hint"),
        "{}",
        page.body
    );
    // It is the provider's ID token of this login.
    let payload = hint.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], s.idp.issuer.as_str());
    assert_eq!(claims["aud"], "portcullis-test");
    assert_eq!(claims["sub"], "alice");

    let r = b.get(&logout_url).await;
    assert_eq!(r.status(), 302);
    let cleared: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .filter(|c| c.starts_with("portcullis_logout_hint="))
        .collect();
    assert_eq!(
        cleared,
        ["portcullis_logout_hint=; Max-Age=0; Path=/.portcullis/logout; HttpOnly; SameSite=Lax"]
    );
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    // Exactly our client, this login's ID token and our own signed-out
    // page, nothing else: a redirect target taken from the request would be
    // an open redirect.
    let want: std::collections::BTreeMap<String, String> = [
        ("client_id", "portcullis-test".to_string()),
        ("id_token_hint", hint.clone()),
        (
            "post_logout_redirect_uri",
            format!("{}/.portcullis/signed-out", s.origin),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(query_of(&loc), want, "{loc}");
    assert!(
        !b.cookies_for(&logout_url).contains("logout_hint"),
        "the hint is gone with the session"
    );
    // The session cookie is gone: the app asks for a login again.
    let again = b.get(&format!("{}/", s.origin)).await;
    assert_eq!(again.status(), 302);
    assert!(
        again.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&s.idp.issuer)
    );

    // The provider accepts the hint: its confirmation form, then back to
    // Portcullis' signed-out page.
    let (resp, action) = b.confirm_logout_at_provider(&loc).await;
    let (done, _) = b.follow_response(resp, &action).await;
    assert_eq!(done.url, format!("{}/.portcullis/signed-out", s.origin));
    assert_eq!(done.status, 200, "{}", done.body);

    // Negative control: the provider really checks the hint. A token whose
    // signature was altered makes it refuse the same request.
    // (A character inside the signature: the last one may carry only
    // padding bits, which decoders ignore.)
    let at = hint.rfind('.').unwrap() + 10;
    let was = &hint[at..=at];
    let forged = format!(
        "{}{}{}",
        &hint[..at],
        if was == "A" { "B" } else { "A" },
        &hint[at + 1..]
    );
    let mut bad = query_of(&loc);
    bad.insert("id_token_hint".into(), forged);
    let mut bad_url = reqwest::Url::parse(&loc).unwrap();
    bad_url.query_pairs_mut().clear().extend_pairs(bad.iter());
    let refused = b.get(bad_url.as_str()).await;
    assert_eq!(
        refused.status(),
        400,
        "a forged hint is refused by the provider"
    );
}

#[tokio::test]
async fn no_logout_hint_is_kept_when_logout_stays_local() {
    let s = setup("", "  logout_at_provider: false\n", &[]).await;
    let b = Browser::new();
    assert_eq!(login(&b, &s, "/", "alice", "alice-pw").await.status, 200);
    let logout_url = format!("{}/.portcullis/logout", s.origin);
    let jar = b.cookies_for(&logout_url);
    assert!(jar.contains("portcullis_session"), "{jar}");
    assert!(!jar.contains("logout_hint"), "{jar}");
    let (page, _) = b.follow(&logout_url).await;
    assert_eq!(page.url, format!("{}/.portcullis/logout", s.origin));
    assert_eq!(page.status, 200, "Portcullis' own signed-out page");
}

#[tokio::test]
async fn a_client_sent_logout_hint_never_reaches_the_app() {
    let s = setup("", "", &[]).await;
    let b = Browser::new();
    assert_eq!(login(&b, &s, "/", "alice", "alice-pw").await.status, 200);
    for name in ["portcullis_logout_hint", "__Secure-portcullis_logout_hint"] {
        let r = b
            .http
            .get(format!("{}/echo", s.origin))
            .header(
                "cookie",
                format!("{}; {name}=x.y.z; app=1", b.cookies_for(&s.origin)),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let cookie = v["headers"]["cookie"].as_str().unwrap_or_default();
        assert!(!cookie.contains("logout_hint"), "{name}: {cookie}");
        assert!(cookie.contains("app=1"), "{name}: {cookie}");
    }
}

#[tokio::test]
async fn login_loop_ends_on_an_explaining_page() {
    let s = setup("login:\n  loop_max: 3\n", "", &[]).await;
    // A browser that completes every login but never keeps the session
    // cookie (blocked, eaten by a proxy): only the loop counter survives.
    let mut carried = String::new();
    for round in 1..=3 {
        let b = Browser::new();
        if !carried.is_empty() {
            b.jar
                .add_cookie_str(&format!("{carried}; Path=/"), &s.origin.parse().unwrap());
        }
        let cb = callback_in(&b, &s, "alice").await;
        let done = b
            .http
            .get(&cb)
            .header("cookie", b.cookies_for(&s.origin))
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 302, "round {round} logs in");
        carried = done
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .find(|c| c.starts_with("portcullis_loop="))
            .expect("the gate counts completed logins");
    }
    let b = Browser::new();
    b.jar
        .add_cookie_str(&format!("{carried}; Path=/"), &s.origin.parse().unwrap());
    let r = b.get(&format!("{}/", s.origin)).await;
    assert_eq!(r.status(), 508);
    let body = r.text().await.unwrap();
    assert!(body.contains("Sign-in keeps starting over"));
    assert!(body.contains("clock"), "tells the admin what to check");
    let loops = s.gate.only_event("login_loop");
    assert_eq!(loops["attempts"], 3, "three completed logins counted");

    // Restored tabs (many starts, nothing completed) are not a loop...
    let b = Browser::new();
    let mut pending = Vec::new();
    for _ in 0..6 {
        assert_eq!(b.get(&format!("{}/", s.origin)).await.status(), 302);
        pending.push(b.cookies_for(&s.origin).matches("portcullis_txn_").count());
    }
    // ...and their transaction cookies do not pile up: at most 4 unfinished
    // logins per browser (README), the fifth start clears them.
    assert_eq!(
        pending,
        [1, 2, 3, 4, 1, 2],
        "transaction cookies after each start"
    );
}

/// Starts a login and returns (callback URL from the provider, Browser).
async fn callback_for(s: &Setup, user: &str) -> (String, Browser) {
    let b = Browser::new();
    let cb = callback_in(&b, s, user).await;
    (cb, b)
}

/// `user`'s login in `b` up to the provider's answer: the callback URL,
/// not yet visited.
async fn callback_in(b: &Browser, s: &Setup, user: &str) -> String {
    let (form, _) = b.follow(&format!("{}/", s.origin)).await;
    let resp = b.submit_login(&form, user, &format!("{user}-pw")).await;
    b.follow_until(
        resp,
        &form.url,
        &format!("{}/.portcullis/oidc/callback", s.origin),
    )
    .await
}

fn param(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[tokio::test]
async fn callback_attacks_are_refused_and_audited() {
    let s = setup("", "", &[]).await;

    // State that matches no transaction of this browser.
    let (cb, b) = callback_for(&s, "alice").await;
    let forged = cb.replace(&param(&cb, "state"), &"0".repeat(32));
    let r = b.get(&forged).await;
    assert_eq!(r.status(), 400);

    // Missing transaction cookie: the callback URL replayed in another browser.
    let (cb, _) = callback_for(&s, "alice").await;
    let r = Browser::new().get(&cb).await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("does not belong to a sign-in started in this browser")
    );

    // The authorization code replayed, with the transaction cookie restored.
    let (cb, b) = callback_for(&s, "alice").await;
    let txn_cookie = b.cookies_for(&s.origin);
    let r = b.get(&cb).await;
    assert_eq!(r.status(), 302, "first use logs in");
    let r = Browser::new()
        .http
        .get(&cb)
        .header("cookie", txn_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "second use of the code is refused");

    // A transaction cookie minted for another domain with the same keys.
    let other = s
        .gate
        .config_yaml
        .replace("domain: 127.0.0.1", "domain: other.example");
    let other_cfg = portcullis::config::from_yaml_str(&other).unwrap();
    let ring = std::sync::Arc::new(portcullis::session::KeyRing::load(&s.gate.key_file()).unwrap());
    let txns = portcullis::session::Transactions::new(&other_cfg, ring);
    let (txn, set_cookie) = txns
        .begin(
            "/",
            portcullis::session::LoginFlow::Oidc {
                nonce: "n".into(),
                pkce_verifier: Some("p".into()),
            },
        )
        .unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let r = Browser::new()
        .http
        .get(format!(
            "{}/.portcullis/oidc/callback?code=x&state={}",
            s.origin, txn.id
        ))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Each refused for its own reason, in order.
    let missing = "state/transaction check failed: the login transaction cookie is missing (it expired, was blocked by the browser, or the login was started elsewhere)";
    assert_eq!(
        failed_reasons(&s.gate),
        [
            missing,
            missing,
            "token endpoint refused the code: invalid_grant",
            "state/transaction check failed: the login transaction belongs to another domain",
        ]
    );
}

#[tokio::test]
async fn id_token_from_another_login_fails_the_nonce_check() {
    // PKCE off on both sides, so the swapped code is accepted by the
    // provider and only the nonce can catch it.
    let s = setup("", "  pkce: false\n", &[("OIDC_PKCE_REQUIRED", "0")]).await;
    let b = Browser::new();
    let (form_a, _) = b.follow(&format!("{}/a", s.origin)).await;
    let resp = b.submit_login(&form_a, "alice", "alice-pw").await;
    let cb_a = b
        .follow_until(
            resp,
            &form_a.url,
            &format!("{}/.portcullis/oidc/callback", s.origin),
        )
        .await;
    let auth_b = b.get(&format!("{}/b", s.origin)).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    let resp = b.get(&auth_b).await;
    let cb_b = b
        .follow_until(
            resp,
            &auth_b,
            &format!("{}/.portcullis/oidc/callback", s.origin),
        )
        .await;
    // B's code delivered with A's state.
    let swapped = format!(
        "{}/.portcullis/oidc/callback?code={}&state={}",
        s.origin,
        param(&cb_b, "code"),
        param(&cb_a, "state")
    );
    let r = b.get(&swapped).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        failed_reasons(&s.gate),
        ["ID token refused: Invalid nonce: nonce mismatch"]
    );
}

/// A token endpoint that answers every code with the ID token the test
/// chose: it stands in for an attacker who controls the token response, to
/// present Portcullis with tokens the real provider would never issue. The
/// tokens are signed by the real provider's key (or not at all).
/// It also fronts the real provider's key set at `/jwks`, counting every
/// request for it: the provider's side of the key refetch, seen from outside.
struct ForgedTokenEndpoint {
    url: String,
    next: std::sync::Arc<std::sync::Mutex<String>>,
    /// Where `/jwks` is fetched from (the real provider's key set).
    jwks_source: std::sync::Arc<std::sync::Mutex<String>>,
    jwks_requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl ForgedTokenEndpoint {
    async fn start() -> ForgedTokenEndpoint {
        use http_body_util::Full;
        use hyper::service::service_fn;
        let next = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let jwks_source = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let jwks_requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let n = next.clone();
        let (source, count) = (jwks_source.clone(), jwks_requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let n = n.clone();
                let (source, count) = (source.clone(), count.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let id_token = n.lock().unwrap().clone();
                        let jwks = (req.uri().path() == "/jwks").then(|| {
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            source.lock().unwrap().clone()
                        });
                        async move {
                            if let Some(source) = jwks {
                                let keys =
                                    reqwest::get(source).await.unwrap().text().await.unwrap();
                                return Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .header("content-type", "application/json")
                                        .body(Full::new(bytes::Bytes::from(keys)))
                                        .unwrap(),
                                );
                            }
                            let body = json!({"access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": id_token});
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(bytes::Bytes::from(body.to_string())))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        ForgedTokenEndpoint {
            url,
            next,
            jwks_source,
            jwks_requests,
            _task: task,
        }
    }

    fn jwks_url(&self) -> String {
        self.url.replace("/token", "/jwks")
    }

    fn jwks_requests(&self) -> usize {
        self.jwks_requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn forged_id_tokens_are_refused() {
    let Forged {
        forge,
        idp,
        gate,
        origin,
        _up,
    } = Forged::start_with_keys(false).await;
    let now = portcullis::session::now();

    // Each case: (name, alg, claims changes); all else correct.
    let cases: Vec<(&str, &str, Value)> = vec![
        ("valid", "RS256", json!({})),
        ("alg none", "none", json!({})),
        ("HMAC with the client secret", "HS256", json!({})),
        ("wrong aud", "RS256", json!({"aud": "someone-else"})),
        (
            "extra untrusted aud",
            "RS256",
            json!({"aud": [CLIENT_ID, "someone-else"], "azp": CLIENT_ID}),
        ),
        (
            "azp of another client",
            "RS256",
            json!({"azp": "someone-else"}),
        ),
        ("wrong iss", "RS256", json!({"iss": "http://127.0.0.1:1"})),
        (
            "expired",
            "RS256",
            json!({"exp": now - 3600, "iat": now - 7200}),
        ),
        (
            "issued in the future",
            "RS256",
            json!({"iat": now + 3600, "exp": now + 7200}),
        ),
        (
            "issued long before this login",
            "RS256",
            json!({"iat": now - 3600, "exp": now + 300}),
        ),
        (
            "nonce of another login",
            "RS256",
            json!({"nonce": "not-this-login"}),
        ),
    ];
    for (name, alg, changes) in cases {
        let b = Browser::new();
        let r = b.get(&format!("{origin}/{}", name.replace(' ', "-"))).await;
        let auth = r.headers()["location"].to_str().unwrap().to_string();
        let (state, nonce) = (param(&auth, "state"), param(&auth, "nonce"));
        let mut claims = json!({
            "iss": idp.issuer, "aud": CLIENT_ID, "sub": "mallory", "preferred_username": "mallory",
            "email": "mallory@example.com", "groups": ["admins"], "nonce": nonce,
            "iat": now, "exp": now + 300,
        });
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let jwt = idp
            .sign(json!({"alg": alg, "claims": claims, "secret": CLIENT_SECRET}))
            .await;
        *forge.next.lock().unwrap() = jwt;
        let r = b
            .get(&format!(
                "{origin}/.portcullis/oidc/callback?code=x&state={state}"
            ))
            .await;
        if name == "valid" {
            assert_eq!(
                r.status(),
                302,
                "the harness itself works: a well-formed token logs in"
            );
            continue;
        }
        // A token from the token endpoint (the back channel) that fails a
        // check every login would fail is the operator's to fix: the
        // "misconfigured" page (500); the others are 400.
        let operator_fixes = [
            "HMAC with the client secret",
            "wrong aud",
            "extra untrusted aud",
            "azp of another client",
            "wrong iss",
            "expired",
            "issued in the future",
            "issued long before this login",
        ];
        let want = if operator_fixes.contains(&name) {
            500
        } else {
            400
        };
        assert_eq!(r.status(), want, "{name} must be refused");
        assert!(
            !b.cookies_for(&origin).contains("portcullis_session"),
            "{name}: no session cookie"
        );
    }
    // Each refused for its own reason, in order. Whole reasons where they
    // are fixed; up to the varying part (a time, the provider's algorithm
    // list in no set order) where they are not.
    let reasons = failed_reasons(&gate);
    let whole = |r: &str| (r.to_string(), true);
    let up_to = |r: &str| (r.to_string(), false);
    let expected = [
        whole("ID token refused: Signature verification failed: No signature found"),
        up_to(
            "ID token refused: Signature verification failed: Disallowed signature algorithm: algorithm `HS256` is not one of: ",
        ),
        whole(
            "ID token refused: Invalid audiences: must contain `portcullis-test` (found audiences: `someone-else`)",
        ),
        whole("ID token refused: Invalid audiences: `someone-else` is not a trusted audience"),
        whole("ID token refused: Invalid audiences: azp `someone-else` is not this client"),
        whole(&format!(
            "ID token refused: Invalid issuer: expected `{}` (found `http://127.0.0.1:1`)",
            idp.issuer
        )),
        up_to("ID token refused: Expired: ID token expired at "),
        up_to("ID token refused: Expired: issued in the future ("),
        up_to("ID token refused: Expired: issued too long ago ("),
        whole("ID token refused: Invalid nonce: nonce mismatch"),
    ];
    let matches = reasons.len() == expected.len()
        && reasons.iter().zip(&expected).all(|(r, (want, exact))| {
            // The operator's fix that follows is checked elsewhere.
            let r = r.split("; operator fix: ").next().unwrap_or_default();
            if *exact {
                r == want
            } else {
                r.starts_with(want.as_str())
            }
        });
    assert!(
        matches,
        "audited reasons {reasons:#?}\nexpected {expected:#?}"
    );
}

/// A gate whose token endpoint is the forge and whose key set is the real
/// provider's, fetched through the forge's counting front.
struct Forged {
    forge: ForgedTokenEndpoint,
    idp: OidcIdp,
    gate: Gate,
    origin: String,
    _up: TestUpstream,
}

impl Forged {
    async fn start() -> Forged {
        Forged::start_with_keys(true).await
    }

    /// The same gate, its key set fetched through the forge's counting front
    /// when `through_forge`, else straight from the provider.
    async fn start_with_keys(through_forge: bool) -> Forged {
        let forge = ForgedTokenEndpoint::start().await;
        let up = TestUpstream::start().await;
        let port = free_port();
        let origin = format!("http://127.0.0.1:{port}");
        let idp = OidcIdp::start(&origin, 0, &[]);
        let jwks_uri = if through_forge {
            *forge.jwks_source.lock().unwrap() = format!("{}/jwks", idp.issuer);
            forge.jwks_url()
        } else {
            format!("{}/jwks", idp.issuer)
        };
        let explicit = format!(
            "  discovery: false\n  authorization_endpoint: {}/auth\n  jwks_uri: {jwks_uri}\n  token_endpoint: {}\n",
            idp.issuer, forge.url,
        );
        let gate = Gate::start(&gate_yaml(&up, port, &idp.issuer, "", &explicit));
        Forged {
            forge,
            idp,
            gate,
            origin,
            _up: up,
        }
    }

    /// A login started in a fresh browser: (browser, state, nonce).
    async fn begin(&self) -> (Browser, String, String) {
        let b = Browser::new();
        let r = b.get(&format!("{}/app", self.origin)).await;
        assert_eq!(r.status(), 302, "login starts");
        let auth = r.headers()["location"].to_str().unwrap().to_string();
        (b, param(&auth, "state"), param(&auth, "nonce"))
    }

    /// Claims a real provider would issue for this login.
    fn claims(&self, nonce: &str) -> Value {
        let now = portcullis::session::now();
        json!({
            "iss": self.idp.issuer, "aud": CLIENT_ID, "sub": "mallory",
            "preferred_username": "mallory", "email": "mallory@example.com",
            "nonce": nonce, "iat": now, "exp": now + 300,
        })
    }

    /// A well-formed ID token for this login, signed by a key the provider
    /// never published.
    async fn foreign_token(&self, nonce: &str) -> String {
        self.idp
            .sign(json!({"alg": "RS256", "claims": self.claims(nonce), "foreign": true}))
            .await
    }

    /// Delivers `id_token` for the login `state` of browser `b`.
    async fn finish(&self, b: &Browser, state: &str, id_token: String) -> reqwest::Response {
        *self.forge.next.lock().unwrap() = id_token;
        b.get(&format!(
            "{}/.portcullis/oidc/callback?code=x&state={state}",
            self.origin
        ))
        .await
    }
}

/// The same JWT with one byte of its signature changed.
fn corrupt_signature(jwt: &str) -> String {
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let mut sig = sig.as_bytes().to_vec();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
    format!("{input}.{}", String::from_utf8(sig).unwrap())
}

// Multi-threaded: the forge must answer while the gate starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_unknown_key_missing_nonce_and_unusable_values_are_refused() {
    let f = Forged::start().await;
    let at_start = f.forge.jwks_requests();
    assert_eq!(at_start, 1, "the key set is fetched once at start");

    // Each case: name, the ID token, the reason that must be audited, and
    // how many key set requests the callback may cause.
    struct Case {
        name: &'static str,
        reason: &'static str,
        refetches: usize,
    }
    let cases = [
        Case {
            name: "valid",
            reason: "",
            refetches: 0,
        },
        Case {
            name: "RS256 with a corrupted signature",
            reason: "ID token refused: Signature verification failed: Crypto error",
            refetches: 0,
        },
        Case {
            name: "RS256 signed by a key the provider never published",
            reason: "ID token refused: Signature verification failed: No matching key found",
            refetches: 1,
        },
        Case {
            name: "no nonce",
            reason: "ID token refused: Invalid nonce: missing nonce claim",
            refetches: 0,
        },
        Case {
            name: "a name with a control character",
            reason: "identity from the IdP contains control characters",
            refetches: 0,
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let (b, state, nonce) = f.begin().await;
        let mut claims = f.claims(&nonce);
        let mut foreign = false;
        match case.name {
            "no nonce" => {
                claims.as_object_mut().unwrap().remove("nonce");
            }
            "a name with a control character" => claims["name"] = json!("Mallory\u{7}"),
            "RS256 signed by a key the provider never published" => foreign = true,
            _ => {}
        }
        let mut jwt = f
            .idp
            .sign(json!({"alg": "RS256", "claims": claims, "foreign": foreign}))
            .await;
        if case.name == "RS256 with a corrupted signature" {
            jwt = corrupt_signature(&jwt);
        }
        let before = f.forge.jwks_requests();
        let r = f.finish(&b, &state, jwt).await;
        let refetched = f.forge.jwks_requests() - before;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        let session = b.cookies_for(&f.origin).contains("portcullis_session");
        if case.name == "valid" {
            if status != 302 || !session {
                failures.push(format!("the harness itself: a valid token got {status}"));
            }
            continue;
        }
        // A key the provider never published is the operator's to fix
        // (the misconfigured page, 500); the others are this login's (400).
        let (want_status, want_page) = if case.refetches == 1 {
            (500, "Sign-in to this application is misconfigured")
        } else {
            (400, "Sign-in did not complete")
        };
        if status != want_status || !body.contains(want_page) || session {
            failures.push(format!(
                "{}: {status}, session cookie {session}: {body}",
                case.name
            ));
        }
        if refetched != case.refetches {
            failures.push(format!(
                "{}: {refetched} key set requests, expected {}",
                case.name, case.refetches
            ));
        }
    }
    let reasons = failed_reasons(&f.gate);
    let expected: Vec<&str> = cases[1..].iter().map(|c| c.reason).collect();
    let matched = reasons.len() == expected.len()
        && reasons.iter().zip(&expected).all(|(r, e)| r.starts_with(e));
    if !matched {
        failures.push(format!(
            "audited reasons {reasons:#?}\nexpected {expected:#?}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// Multi-threaded: the forge must answer while the gate starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_without_a_nonce_never_matches_an_empty_one() {
    // Fail closed on our own data too: a transaction cookie that carries no
    // nonce (signed with the gate's keys, so only a bug could make one) must
    // not accept an ID token whose nonce is the empty string.
    let f = Forged::start().await;
    let config = portcullis::config::from_yaml_str(&f.gate.config_yaml).unwrap();
    let ring = std::sync::Arc::new(portcullis::session::KeyRing::load(&f.gate.key_file()).unwrap());
    let txns = portcullis::session::Transactions::new(&config, ring);
    let mut failures = Vec::new();
    // A transaction without a nonce cannot be built (the flow's type needs
    // one); an empty one can.
    for (name, flow) in [(
        "empty nonce",
        portcullis::session::LoginFlow::Oidc {
            nonce: String::new(),
            pkce_verifier: None,
        },
    )] {
        let (txn, set_cookie) = txns.begin("/", flow).unwrap();
        let b = Browser::new();
        b.jar
            .add_cookie_str(&set_cookie, &f.origin.parse().unwrap());
        let jwt = f
            .idp
            .sign(json!({"alg": "RS256", "claims": f.claims("")}))
            .await;
        let r = f.finish(&b, &txn.id, jwt).await;
        if r.status() != 400 || b.cookies_for(&f.origin).contains("portcullis_session") {
            failures.push(format!("{name}: {}", r.status()));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
    let reasons = failed_reasons(&f.gate);
    assert_eq!(
        reasons,
        vec!["the sign-in transaction carries no nonce"; 1],
        "{reasons:?}"
    );
}

// Multi-threaded: the forge must answer while the gate starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_refetch_is_rate_limited() {
    // At most one key set refetch per 10 seconds (the README's promise):
    // a flood of tokens naming unknown keys costs the provider one request,
    // and a later one refetches again (a rollover is not missed forever).
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
    let f = Forged::start().await;
    // Logins are started first: a login start may probe the provider, and
    // only callbacks may count here.
    let mut logins = Vec::new();
    for _ in 0..70 {
        logins.push(f.begin().await);
    }
    let mut logins = logins.into_iter();
    let base = f.forge.jwks_requests();
    let mut statuses = Vec::new();
    let (b, state, nonce) = logins.next().unwrap();
    let first = std::time::Instant::now();
    statuses.push(
        f.finish(&b, &state, f.foreign_token(&nonce).await)
            .await
            .status(),
    );
    assert_eq!(
        f.forge.jwks_requests(),
        base + 1,
        "the first unknown key refetches"
    );
    for _ in 0..20 {
        let (b, state, nonce) = logins.next().unwrap();
        statuses.push(
            f.finish(&b, &state, f.foreign_token(&nonce).await)
                .await
                .status(),
        );
    }
    let flood_done = first.elapsed();
    assert!(
        flood_done < WINDOW,
        "the flood took {flood_done:?}, longer than the window"
    );
    assert_eq!(
        f.forge.jwks_requests(),
        base + 1,
        "20 more unknown keys within the window: no request to the provider"
    );
    // Paced probes until the next refetch: never before the window ends.
    let refetched_after = loop {
        let (b, state, nonce) = logins.next().expect("refetched again within the probes");
        let sent = first.elapsed();
        statuses.push(
            f.finish(&b, &state, f.foreign_token(&nonce).await)
                .await
                .status(),
        );
        if f.forge.jwks_requests() > base + 1 {
            break sent;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert!(
        refetched_after >= WINDOW,
        "refetched again after {refetched_after:?}"
    );
    assert_eq!(f.forge.jwks_requests(), base + 2);
    assert!(
        statuses.iter().all(|s| *s == 500),
        "every forged token refused: {statuses:?}"
    );
    let reasons = failed_reasons(&f.gate);
    assert_eq!(reasons.len(), statuses.len());
    assert!(
        reasons.iter().all(|r| r.starts_with(
            "ID token refused: Signature verification failed: No matching key found; operator fix: "
        )),
        "{reasons:?}"
    );
}

/// `roles:` against the real provider: the first entry that matches wins
/// in the written order (alice is in admins and staff, bob in staff with
/// an address in the `outsider` domain); everyone else gets `default_role`.
/// The app gets the role in one header no client can supply, and an access
/// rule can require a role.
#[tokio::test]
async fn roles_first_match_default_role_header_and_allowed_roles() {
    let s = setup(
        "roles:\n  - name: admin\n    groups: [admins]\n  - name: editor\n    groups: [staff]\n  - name: outsider\n    email_domains: [example.org]\ndefault_role: viewer\naccess:\n  rules:\n    - description: Admin console\n      paths: [{prefix: /admin/}]\n      allowed_roles: [admin]\n",
        "",
        &[],
    )
    .await;
    let mut cases = common::cases::Cases::new();
    for (user, role, admin_status) in [
        ("alice", "admin", 200),
        ("bob", "editor", 403),
        ("carol", "viewer", 403),
    ] {
        let b = Browser::new();
        let page = login(&b, &s, "/work", user, &format!("{user}-pw")).await;
        cases.eq(format!("{user}: login"), page.status, 200);
        let v: Value = serde_json::from_str(&page.body).unwrap_or_default();
        cases.eq(
            format!("{user}: role header"),
            v["headers"]["x-forwarded-role"].as_str(),
            Some(role),
        );
        // A client's own role header, in both spellings, never arrives.
        let spoofed = b
            .http
            .get(s.url_of("/work"))
            .header("x-forwarded-role", "admin")
            .header("x-forwarded_role", "admin")
            .send()
            .await
            .unwrap();
        let v: Value = spoofed.json().await.unwrap_or_default();
        cases.eq(
            format!("{user}: role header with a spoof sent"),
            v["headers"]["x-forwarded-role"].as_str(),
            Some(role),
        );
        cases.eq(
            format!("{user}: no spoof reaches the app"),
            v["headers"].get("x-forwarded_role"),
            None,
        );
        let admin = b
            .http
            .get(s.url_of("/admin/users"))
            .header("x-forwarded-role", "admin")
            .send()
            .await
            .unwrap();
        cases.eq(
            format!("{user}: /admin/"),
            admin.status().as_u16(),
            admin_status,
        );
    }
    let roles: Vec<String> = s
        .gate
        .events("login_succeeded")
        .iter()
        .map(|e| {
            format!(
                "{}={}",
                e["user"].as_str().unwrap_or("?"),
                e["role"].as_str().unwrap_or("?")
            )
        })
        .collect();
    cases.eq(
        "audited roles",
        roles,
        vec![
            "alice=admin".to_string(),
            "bob=editor".into(),
            "carol=viewer".into(),
        ],
    );
    cases.finish();
}

/// Without `default_role`, a user no role matches is refused at login with
/// Portcullis' own page, and gets no session; the others still get in.
#[tokio::test]
async fn without_a_default_role_a_user_no_role_matches_gets_no_session() {
    let s = setup(
        "roles:\n  - name: admin\n    groups: [admins]\n  - name: editor\n    groups: [staff]\n",
        "",
        &[],
    )
    .await;
    let b = Browser::new();
    let page = login(&b, &s, "/work", "carol", "carol-pw").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body
            .contains("Your account has no role in this application"),
        "{}",
        page.body
    );
    assert!(!b.cookies_for(&s.origin).contains("portcullis_session"));
    let failed = s.gate.only_event("login_failed");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no entry of roles matches the user and default_role is not set"),
        "{failed:?}"
    );
    let again = b.get(&s.url_of("/work")).await;
    assert_eq!(again.status(), 302, "no session: sent to sign in again");

    let b = Browser::new();
    let page = login(&b, &s, "/work", "bob", "bob-pw").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let v: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(v["headers"]["x-forwarded-role"], "editor");
}

/// A form POST that finds no session: a small urlencoded form is kept (the
/// page carries it, escaped, and the login is already started); too large,
/// malformed forms and forms with files get the "could not be kept" page
/// (a multipart form of text fields is kept); a POST
/// that is not a person's form (no `Content-Type`, JSON, a script's fetch)
/// gets today's 401, and nothing is kept.
#[tokio::test]
async fn form_posts_without_a_session_are_kept_or_answered_cleanly() {
    let s = setup("", "", &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |ct: Option<&'static str>, mode: &'static str, body: Vec<u8>| {
        let mut r = http
            .post(s.url_of("/notes?id=7"))
            .header("accept", BROWSER_ACCEPT)
            .header("sec-fetch-mode", mode)
            .header(
                "sec-fetch-dest",
                if mode == "navigate" {
                    "document"
                } else {
                    "empty"
                },
            )
            .body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        async move {
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            let cookies: Vec<String> = resp
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            let csp = resp
                .headers()
                .get("content-security-policy")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, cookies, csp, resp.text().await.unwrap())
        }
    };
    let form = Some("application/x-www-form-urlencoded");
    let mut cases = common::cases::Cases::new();

    let (status, cookies, csp, body) = post(
        form,
        "navigate",
        b"title=Q3&notes=%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_vec(),
    )
    .await;
    cases.eq("kept: status", status, 401);
    cases.check(
        "kept: the page says so",
        body.contains("Your session has ended"),
        || body.clone(),
    );
    cases.check(
        "kept: the login is started",
        body.contains(&s.idp.issuer),
        || body.clone(),
    );
    cases.check(
        "kept: with its transaction cookie",
        cookies.iter().any(|c| c.contains("portcullis_txn")),
        || format!("{cookies:?}"),
    );
    cases.check(
        "kept: one script, by nonce",
        csp.contains("script-src 'nonce-"),
        || csp.clone(),
    );
    cases.check(
        "kept: a field cannot end the data block",
        body.matches("</script>").count() == 2 && body.contains("\\u003c/script\\u003e"),
        || body.clone(),
    );
    cases.check(
        "kept: the action is the form's",
        body.contains("\"action\":\"/notes?id=7\""),
        || body.clone(),
    );

    // Text fields of a multipart form are kept, with their encoding.
    let (status, _, _, body) = post(
        Some("multipart/form-data; boundary=x"),
        "navigate",
        b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n".to_vec(),
    )
    .await;
    cases.eq("multipart text: status", status, 401);
    cases.check(
        "multipart text: kept as multipart",
        body.contains("\"enctype\":\"multipart/form-data\"") && body.contains("[[\"a\",\"1\"]]"),
        || body.clone(),
    );

    for (name, ct, payload, reason) in [
        (
            "too large",
            form,
            vec![b'a'; 64 * 1024 + 1],
            "larger than 65536 bytes",
        ),
        (
            "malformed",
            form,
            b"a=%FF".to_vec(),
            "not valid application/x-www-form-urlencoded",
        ),
        (
            "a file",
            Some("multipart/form-data; boundary=x"),
            b"--x\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"cv.pdf\"\r\n\r\n%PDF\r\n--x--\r\n".to_vec(),
            "forms with files are not kept",
        ),
    ] {
        let (status, cookies, _, body) = post(ct, "navigate", payload).await;
        cases.eq(format!("{name}: status"), status, 401);
        cases.check(
            format!("{name}: the page says so"),
            body.contains("Your form could not be kept"),
            || body.clone(),
        );
        cases.check(
            format!("{name}: no login started"),
            !cookies.iter().any(|c| c.contains("portcullis_txn")),
            || format!("{cookies:?}"),
        );
        let audited = s
            .gate
            .events("form_not_kept")
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or_default().contains(reason));
        cases.check(format!("{name}: audited"), audited, || {
            format!("{:?}", s.gate.events("form_not_kept"))
        });
    }

    for (name, ct, mode) in [
        ("no content type", None, "navigate"),
        ("json", Some("application/json"), "navigate"),
        ("a script's fetch", form, "cors"),
    ] {
        let (status, _, _, body) = post(ct, mode, b"a=1".to_vec()).await;
        cases.eq(format!("{name}: status"), status, 401);
        cases.check(
            format!("{name}: not a kept form"),
            !body.contains("Your session has ended") && !body.contains("could not be kept"),
            || body.clone(),
        );
    }
    cases.eq("kept in all", s.gate.events("form_kept").len(), 2);
    cases.finish();
}
