//! `max_auth_age` on an access rule, end to end with the real
//! `oidc-provider`: a sign-in older than the rule allows is sent back to the
//! provider with `prompt=login` and `max_age`, the provider's new
//! `auth_time` is checked on return, and a provider that ignores the
//! request cannot satisfy the rule. (SAML's `ForceAuthn` twin is in
//! tests/saml.rs.)

mod common;

use std::time::Duration;

use common::oidc::*;
use serde_json::{Value, json};

/// `/admin/` asks for a sign-in at most 2 s old (1 s of clock skew allowed
/// on top); the rest of the app asks nothing.
const RULES: &str = "access:\n  rules:\n    - description: Admin console\n      paths: [{prefix: /admin/}]\n      max_auth_age: 2s\n";
const SKEW: &str = "  clock_skew: 1s\n";
/// Longer than the age and the skew together, whole seconds included.
const AGED: Duration = Duration::from_millis(4500);

fn query_of(url: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The provider puts `auth_time` in every ID token for this client, not
/// only when `max_age` is asked (client metadata `require_auth_time`).
async fn setup_telling_auth_time(idp_env: &[(&str, &str)]) -> Setup {
    setup_with_client(RULES, SKEW, idp_env, |_| json!({"require_auth_time": true})).await
}

async fn api_status(b: &Browser, url: &str) -> (u16, Value) {
    let resp = b
        .http
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_old_sign_in_is_sent_back_to_sign_in_again_and_a_fresh_one_gets_in() {
    let s = setup_telling_auth_time(&[]).await;
    let b = Browser::new();
    // A login for the rest of the app does not ask for a fresh sign-in.
    let (form, trail) = b.follow(&s.url_of("/")).await;
    let q = query_of(&trail[1]);
    assert_eq!(param(&q, "prompt"), None, "{trail:?}");
    assert_eq!(param(&q, "max_age"), None, "{trail:?}");
    let resp = b.submit_login(&form, "alice", "alice-pw").await;
    let (page, _) = b.follow_response(resp, &form.url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // Just signed in: the admin console opens.
    let (page, _) = b.follow(&s.url_of("/admin/users")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let echo: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(echo["uri"], "/admin/users");

    tokio::time::sleep(AGED).await;
    // The rest of the app keeps working with the same session.
    let (page, _) = b.follow(&s.url_of("/reports")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // A script is told that re-authentication is needed, not redirected.
    let (status, body) = api_status(&b, &s.url_of("/admin/users")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "reauthentication_required", "{body}");
    // A navigation goes back to the provider, asking for a fresh sign-in.
    let resp = b.get(&s.url_of("/admin/users")).await;
    assert_eq!(resp.status(), 302);
    let to_idp = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(to_idp.starts_with(&s.idp.issuer), "{to_idp}");
    let q = query_of(&to_idp);
    assert_eq!(param(&q, "prompt"), Some("login"), "{to_idp}");
    assert_eq!(param(&q, "max_age"), Some("2"), "{to_idp}");
    let required = s.gate.events("reauth_required");
    assert_eq!(
        required.len(),
        2,
        "the script and the navigation: {required:?}"
    );
    assert_eq!(required[1]["user"], "alice");
    assert_eq!(required[1]["max_auth_age_secs"], 2);
    // The provider has a session for alice, yet shows its login form again.
    let (form, _) = b.follow(&to_idp).await;
    assert!(form.body.contains("login-form"), "{}", form.body);
    let resp = b.submit_login(&form, "alice", "alice-pw").await;
    let (page, trail) = b.follow_response(resp, &form.url).await;
    assert_eq!(page.status, 200, "{}: {trail:?}", page.body);
    assert_eq!(page.url, s.url_of("/admin/users"));
    let echo: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-user"], "alice");
    assert_eq!(s.gate.events("login_succeeded").len(), 2);
}

#[tokio::test]
async fn a_first_login_to_a_guarded_page_asks_for_a_fresh_sign_in() {
    let s = setup(RULES, SKEW, &[]).await;
    let b = Browser::new();
    signs_in_afresh_to(&b, &s, "/admin/").await;
}

/// A navigation to `path` goes to the provider asking for a fresh sign-in
/// (`prompt=login`, `max_age=2`); alice signs in and lands on `path`.
async fn signs_in_afresh_to(b: &Browser, s: &Setup, path: &str) {
    let (form, trail) = b.follow(&s.url_of(path)).await;
    let q = query_of(&trail[1]);
    assert_eq!(param(&q, "prompt"), Some("login"), "{trail:?}");
    assert_eq!(param(&q, "max_age"), Some("2"), "{trail:?}");
    assert!(form.body.contains("login-form"), "{}", form.body);
    let resp = b.submit_login(&form, "alice", "alice-pw").await;
    let (page, _) = b.follow_response(resp, &form.url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url, s.url_of(path));
}

/// A provider that names no sign-in time unless asked (`oidc-provider`'s
/// default): the session's sign-in time is unknown, which no rule takes for
/// recent; the fresh sign-in the gate then asks for carries one.
#[tokio::test]
async fn an_unknown_sign_in_time_counts_as_old() {
    let s = setup(RULES, SKEW, &[]).await;
    let b = Browser::new();
    let page = login(&b, &s, "/", "alice", "alice-pw").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (status, body) = api_status(&b, &s.url_of("/admin/users")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "reauthentication_required", "{body}");
    signs_in_afresh_to(&b, &s, "/admin/users").await;
}

/// The provider drops `prompt` and `max_age` (`OIDC_IGNORE_REAUTH`): it
/// answers at once from its session, with the old `auth_time`, or none.
/// The rule must not be satisfied, and no new session is minted.
#[tokio::test]
async fn a_provider_that_ignores_the_request_does_not_satisfy_the_rule() {
    let s = setup_telling_auth_time(&[("OIDC_IGNORE_REAUTH", "1")]).await;
    let reason = "the IdP reported a sign-in older than max_auth_age (2 s); operator fix: the IdP must honour prompt=login/max_age (OIDC) or ForceAuthn (SAML) for this application";
    ignored_request_is_refused(&s, reason).await;
    let s = setup(RULES, SKEW, &[("OIDC_IGNORE_REAUTH", "1")]).await;
    let reason = "the IdP reported no sign-in time, so max_auth_age (2 s) cannot be met; operator fix: the IdP must send auth_time (OIDC) or AuthnInstant (SAML)";
    ignored_request_is_refused(&s, reason).await;
}

async fn ignored_request_is_refused(s: &Setup, reason: &str) {
    let b = Browser::new();
    let page = login(&b, s, "/", "alice", "alice-pw").await;
    assert_eq!(page.status, 200, "{}", page.body);
    tokio::time::sleep(AGED).await;
    let session_before = b.cookies_for(&s.origin);
    let (page, trail) = b.follow(&s.url_of("/admin/users")).await;
    assert!(
        trail.iter().any(|u| u.starts_with(&s.idp.issuer)),
        "sent to the provider: {trail:?}"
    );
    assert!(
        !page.body.contains("login-form"),
        "the provider asked nothing: {}",
        page.body
    );
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("A recent sign-in is needed here"),
        "{}",
        page.body
    );
    let failed = s.gate.events("login_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["reason"], reason);
    assert_eq!(
        s.gate.events("login_succeeded").len(),
        1,
        "no second session"
    );
    // The old session is what the browser still holds: still too old.
    let (status, body) = api_status(&b, &s.url_of("/admin/users")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "reauthentication_required");
    assert_eq!(
        b.cookies_for(&s.origin)
            .split("; ")
            .filter(|c| c.contains("portcullis_session"))
            .collect::<Vec<_>>(),
        session_before
            .split("; ")
            .filter(|c| c.contains("portcullis_session"))
            .collect::<Vec<_>>(),
        "the session cookie is unchanged"
    );
    // The upstream never saw the guarded page.
    let (page, _) = b.follow(&s.url_of("/whoami")).await;
    assert_eq!(page.status, 200);
}
