//! OpenID Connect Back-Channel Logout 1.0 against the real binary and the
//! real provider (`oidc-provider` with its back-channel logout feature):
//! the user signs out at the provider, the provider (not the test) sends
//! the logout token, and the old cookie is refused on its next request,
//! wherever it is held; every malformed logout token gets 400 with the
//! exact reason and revokes nothing.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::oidc::*;
use common::*;
use serde_json::{Value, json};

const ENDPOINT: &str = "/.portcullis/oidc/backchannel-logout";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The client registered at the provider with its back-channel logout URI,
/// asking for `sid` in ID and logout tokens (as Okta, Entra ID and Keycloak
/// send it).
fn with_backchannel(origin: &str) -> Value {
    json!({
        "backchannel_logout_uri": format!("{origin}{ENDPOINT}"),
        "backchannel_logout_session_required": true,
    })
}

async fn setup_backchannel() -> Setup {
    setup_with_client("", "", &[], with_backchannel).await
}

/// The session cookie(s) of `b` at the gate, as another client would send them.
fn gate_cookie(b: &Browser, s: &Setup) -> String {
    b.cookies_for(&s.origin)
        .split("; ")
        .filter(|c| c.starts_with("portcullis_session"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Signs out at the provider as a browser does: its end-session endpoint,
/// then its confirmation form (the `xsrf` field, and `logout=yes`, which
/// the test provider's page adds for the whole IdP session).
async fn sign_out_at_provider(b: &Browser, s: &Setup) {
    let (resp, _) = b
        .confirm_logout_at_provider(&format!("{}/session/end", s.idp.issuer))
        .await;
    assert!(
        resp.status().is_success() || resp.status().is_redirection(),
        "the provider's logout confirmation: {}",
        resp.status()
    );
}

/// Polls until a request with `cookie` is refused; panics after a second.
async fn refused_within_a_second(s: &Setup, cookie: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let status = api_get(&client(), format!("{}/", s.origin), cookie)
            .await
            .status();
        if status == 401 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the old cookie still gets {status} a second after the provider's logout; log:\n{}",
            s.gate.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn signing_out_at_the_provider_ends_every_copy_of_that_session_only() {
    let s = setup_backchannel().await;
    let alice = Browser::new();
    assert_eq!(
        login(&alice, &s, "/", "alice", "alice-pw").await.status,
        200
    );
    let bob = Browser::new();
    assert_eq!(login(&bob, &s, "/", "bob", "bob-pw").await.status, 200);
    // The same cookie in another client: a second device, a copied cookie.
    let alice_copy = gate_cookie(&alice, &s);
    let bob_cookie = gate_cookie(&bob, &s);
    let c = client();
    assert_eq!(api_get(&c, s.url_of("/"), &alice_copy).await.status(), 200);

    sign_out_at_provider(&alice, &s).await;

    refused_within_a_second(&s, &alice_copy).await;
    assert_eq!(
        api_get(&c, s.url_of("/"), &bob_cookie).await.status(),
        200,
        "another user's session is untouched"
    );
    let revoked = s.gate.events("revoked");
    assert_eq!(revoked.len(), 1, "{revoked:#?}");
    assert_eq!(
        (
            revoked[0]["source"].as_str(),
            revoked[0]["kind"].as_str(),
            revoked[0]["by"].as_str()
        ),
        (
            Some("backchannel_logout"),
            Some("idp_session"),
            Some(format!("oidc:{}", s.idp.issuer).as_str())
        ),
        "the provider's logout token named its session (sid)"
    );
    let answered = s.gate.events("idp_logout");
    assert_eq!(
        (
            answered[0]["outcome"].as_str(),
            answered[0]["reason"].as_str()
        ),
        (Some("revoked"), Some("idp_session"))
    );
    // A new login after the logout works.
    let again = Browser::new();
    assert_eq!(
        login(&again, &s, "/", "alice", "alice-pw").await.status,
        200
    );
    // Never the token in the log.
    assert!(!s.gate.log().contains("logout_token"), "{}", s.gate.log());
}

async fn post_token(s: &Setup, token: &str) -> reqwest::Response {
    client()
        .post(s.url_of(ENDPOINT))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap()
}

fn kid_of(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let v: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    v["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn malformed_logout_tokens_get_400_with_the_reason_and_revoke_nothing() {
    let s = setup_backchannel().await;
    let alice = Browser::new();
    assert_eq!(
        login(&alice, &s, "/", "alice", "alice-pw").await.status,
        200
    );
    let cookie = gate_cookie(&alice, &s);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut n = 0;
    let mut good = || {
        n += 1;
        json!({
            "iss": s.idp.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120,
            "jti": format!("test-jti-{n}"), "sub": "alice", "events": { EVENT: {} },
        })
    };
    let without = |mut v: Value, k: &str| {
        v.as_object_mut().unwrap().remove(k);
        v
    };
    let with = |mut v: Value, k: &str, x: Value| {
        v[k] = x;
        v
    };
    let op_kid = kid_of(&s.idp.sign(json!({"claims": good()})).await);
    let foreign = s.idp.sign(json!({"claims": good(), "foreign": true})).await;
    let foreign_kid = kid_of(&foreign);
    let alg = |a: &str| {
        format!(
            "the logout token is signed with `{a}`, which is not allowed: the provider must sign logout tokens like ID tokens, with an algorithm in `oidc.allowed_algorithms` (never `none` or HMAC)"
        )
    };
    let cases: Vec<(&str, Value, String)> = vec![
        ("alg none", json!({"claims": good(), "alg": "none"}), alg("none")),
        (
            "HS256 with the client secret",
            json!({"claims": good(), "alg": "HS256", "secret": CLIENT_SECRET}),
            alg("HS256"),
        ),
        (
            "a key the provider never published",
            json!({"claims": good(), "foreign": true}),
            format!(
                "the logout token is signed with a key the provider does not publish (kid `{foreign_kid}`); check the provider's jwks_uri"
            ),
        ),
        (
            "another key under the provider's kid",
            json!({"claims": good(), "foreign": true, "kid": op_kid}),
            "the logout token's signature does not verify with the provider's key".into(),
        ),
        (
            "wrong iss",
            json!({"claims": with(good(), "iss", json!("http://127.0.0.1:1"))}),
            "the logout token's `iss` is not the configured `oidc.issuer`".into(),
        ),
        (
            "wrong aud",
            json!({"claims": with(good(), "aud", json!(["another-client"]))}),
            "the logout token's `aud` does not contain this client (`oidc.client_id`)".into(),
        ),
        (
            "missing events",
            json!({"claims": without(good(), "events")}),
            "the logout token's `events` has no `http://schemas.openid.net/event/backchannel-logout` object".into(),
        ),
        (
            "wrong event URI",
            json!({"claims": with(good(), "events", json!({"http://schemas.openid.net/event/backchannel-logout-x": {}}))}),
            "the logout token's `events` has no `http://schemas.openid.net/event/backchannel-logout` object".into(),
        ),
        (
            "nonce present",
            json!({"claims": with(good(), "nonce", json!("n-1"))}),
            "a logout token must not contain `nonce`".into(),
        ),
        (
            "neither sub nor sid",
            json!({"claims": without(good(), "sub")}),
            "the logout token has neither `sub` nor `sid`".into(),
        ),
        (
            "iat ten minutes old",
            json!({"claims": with(good(), "iat", json!(now - 600))}),
            "the logout token was issued more than 300 seconds ago".into(),
        ),
        (
            "no jti",
            json!({"claims": without(good(), "jti")}),
            "the logout token has no usable `jti`".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, sign, want) in cases {
        let token = s.idp.sign(sign).await;
        let resp = post_token(&s, &token).await;
        check_refusal(name, resp, &want, &mut failures).await;
    }
    // Not a JWT at all, and no token.
    let resp = post_token(&s, "not-a-jwt").await;
    check_refusal(
        "not a JWT",
        resp,
        "the logout token is not a signed JWT (header.payload.signature): no dots",
        &mut failures,
    )
    .await;
    let resp = client()
        .post(s.url_of(ENDPOINT))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    check_refusal(
        "no logout_token field",
        resp,
        "POST the logout token as the form field `logout_token`",
        &mut failures,
    )
    .await;
    if !s.gate.events("revoked").is_empty() {
        failures.push(format!("revoked: {:#?}", s.gate.events("revoked")));
    }
    if api_get(&client(), s.url_of("/"), &cookie).await.status() != 200 {
        failures.push("alice's session no longer works".into());
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // The same claims signed by the provider's key are accepted once (so
    // each refusal above was for its own reason), and a replay is refused.
    let token = s.idp.sign(json!({"claims": good()})).await;
    let resp = post_token(&s, &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.text().await.unwrap(), "");
    assert_eq!(
        api_get(&client(), s.url_of("/"), &cookie).await.status(),
        401,
        "sub alone revokes every session of that subject"
    );
    let revoked = s.gate.events("revoked");
    assert_eq!(
        (
            revoked.len(),
            revoked[0]["kind"].as_str(),
            revoked[0]["value"].as_str()
        ),
        (1, Some("subject"), Some("alice"))
    );
    let mut failures = Vec::new();
    let resp = post_token(&s, &token).await;
    check_refusal(
        "replayed jti",
        resp,
        "this logout token (its `jti`) was already used",
        &mut failures,
    )
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        s.gate.events("revoked").len(),
        1,
        "the replay revoked again"
    );
}

async fn check_refusal(
    name: &str,
    resp: reqwest::Response,
    want: &str,
    failures: &mut Vec<String>,
) {
    let status = resp.status().as_u16();
    let ctype = resp.headers().get("content-type").cloned();
    let cache = resp.headers().get("cache-control").cloned();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let expected = json!({"error": "invalid_request", "error_description": want});
    if status != 400 || body != expected {
        failures.push(format!("{name}: {status} {body}, want 400 {expected}"));
    }
    if ctype.as_ref().map(|v| v.to_str().unwrap()) != Some("application/json")
        || cache.as_ref().map(|v| v.to_str().unwrap()) != Some("no-store")
    {
        failures.push(format!("{name}: headers {ctype:?} {cache:?}"));
    }
}

#[tokio::test]
async fn the_endpoint_exists_only_with_oidc() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&base_yaml(&up.url(), ""));
    let resp = client()
        .post(gate.url(ENDPOINT))
        .header("accept", "application/json")
        .form(&[("logout_token", "x.y.z")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
