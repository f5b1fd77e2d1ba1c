//! The signed identity assertion end to end: a real OIDC login through
//! `oidc-provider`, the test upstream records the header, and PyJWT (the
//! example app verifier in examples/verify-assertion) checks it against
//! `/.portcullis/jwks.json`, as an app would.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use common::cases::Cases;
use common::oidc::*;
use common::*;
use serde_json::Value;

const TOKEN: &str = "assertion-test-token";

/// Debian's python3, where python3-jwt is installed (scripts/test.sh).
const PYTHON: &str = "/usr/bin/python3";

struct Setup {
    _up: TestUpstream,
    _idp: OidcIdp,
    gate: Gate,
    origin: String,
    domain: String,
}

async fn setup() -> Setup {
    let up = TestUpstream::start().await;
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let domain = format!("127.0.0.1:{port}");
    let idp = OidcIdp::start(&origin, 0, &[]);
    let hash = hex::encode(portcullis::policy::tokens::sha256(TOKEN));
    let extra = format!(
        "assertion:\n  enabled: true\npassthrough:\n  paths:\n    - prefix: /public/\n  tokens:\n    - name: backup\n      sha256: {hash}\n{}",
        oidc_yaml(&idp.issuer, "")
    );
    let yaml = base_yaml(&up.url(), &extra)
        .replace("domain: app.test", &format!("domain: {domain}"))
        .replace("listen: 127.0.0.1:0", &format!("listen: {domain}"));
    let gate = Gate::start(&yaml);
    Setup {
        _up: up,
        _idp: idp,
        gate,
        origin,
        domain,
    }
}

/// Runs the shipped example's `verify` with PyJWT; `clock_ahead` seconds
/// pretend the app checks that much later. Ok(claims) or Err(refusal).
fn verify(s: &Setup, token: &str, audience: &str, clock_ahead: i64) -> Result<Value, String> {
    // The app's clock moved on: PyJWT reads `datetime.now` in api_jwt.
    let script = format!(
        "import sys, json, jwt, jwt.api_jwt, datetime as d\nsys.path.insert(0, 'examples/verify-assertion')\nimport verify\n\
         class Later(d.datetime):\n    @classmethod\n    def now(cls, tz=None):\n        return d.datetime.now(tz) + d.timedelta(seconds={clock_ahead})\n\
         jwt.api_jwt.datetime = Later\n\
         c = jwt.PyJWKClient(sys.argv[1])\n\
         try:\n    print(json.dumps(verify.verify(c, sys.stdin.read().strip(), sys.argv[2], sys.argv[3])))\n\
         except jwt.PyJWTError as e:\n    print('refused: ' + type(e).__name__); sys.exit(1)\n"
    );
    let mut child = Command::new(PYTHON)
        .args([
            "-c",
            &script,
            &format!("{}/.portcullis/jwks.json", s.origin),
            &s.origin,
            audience,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with python3-jwt (scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(serde_json::from_str(&stdout).unwrap()),
        Some(1) => Err(stdout),
        _ => panic!(
            "verifier crashed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn jwt_header(token: &str) -> Value {
    let head = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(head)
            .unwrap(),
    )
    .unwrap()
}

async fn upstream_headers(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["headers"].clone()
}

#[tokio::test]
async fn oidc_login_carries_an_assertion_an_app_library_verifies() {
    let s = setup().await;
    let b = Browser::new();
    let (form, _) = b.follow(&format!("{}/dash", s.origin)).await;
    let resp = b.submit_login(&form, "alice", "alice-pw").await;
    let (page, _) = b.follow_response(resp, &form.url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let v: Value = serde_json::from_str(&page.body).unwrap();
    let token = v["headers"]["x-portcullis-assertion"]
        .as_str()
        .expect("the upstream got an assertion")
        .to_string();

    let header = jwt_header(&token);
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().expect("kid in the header");
    let jwks: Value = client()
        .get(s.gate.url("/.portcullis/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid);
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");

    let claims = verify(&s, &token, &s.domain, 0).expect("PyJWT accepts it");
    assert_eq!(claims["iss"], s.origin);
    assert_eq!(claims["aud"], s.domain);
    assert_eq!(claims["user"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["groups"], serde_json::json!(["admins", "staff"]));
    assert_eq!(claims["idp"], "oidc");
    assert!(claims["sub"].as_str().is_some_and(|x| !x.is_empty()));
    assert!(claims["jti"].as_str().is_some_and(|x| x.len() >= 16));
    let iat = claims["iat"].as_u64().unwrap();
    let auth_time = claims["auth_time"].as_u64().expect("auth_time");
    assert!(auth_time <= iat);
    // The default lifetime is two minutes.
    assert_eq!(claims["exp"].as_u64().unwrap() - iat, 120);

    let mut cases = Cases::new();
    // Still good a minute later; expired once the lifetime (and the
    // example's 30s leeway) is over.
    cases.check(
        "one minute later",
        verify(&s, &token, &s.domain, 60).is_ok(),
        || "refused a minute in".into(),
    );
    let late = verify(&s, &token, &s.domain, 151);
    cases.check(
        "expired",
        matches!(&late, Err(e) if e.contains("ExpiredSignature")),
        || format!("{late:?}"),
    );
    for aud in ["other.example", "127.0.0.1", &s.origin] {
        let r = verify(&s, &token, aud, 0);
        cases.check(
            format!("audience {aud}"),
            matches!(&r, Err(e) if e.contains("InvalidAudience")),
            || format!("{r:?}"),
        );
    }
    // The same header, tampered with: a different user, the old signature.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let mut body: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[1])
            .unwrap(),
    )
    .unwrap();
    body["user"] = "admin".into();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string());
    let r = verify(&s, &parts.join("."), &s.domain, 0);
    cases.check("tampered", r.is_err(), || format!("{r:?}"));

    // A client's own assertion never reaches the upstream, in any
    // spelling, on a signed-in request or on a passthrough path.
    let cookie = b.cookies_for(&s.origin);
    let forged = parts.join(".");
    for name in [
        "X-Portcullis-Assertion",
        "x-portcullis-assertion",
        "X_Portcullis_Assertion",
        "HTTP_X_PORTCULLIS_ASSERTION",
    ] {
        let h = upstream_headers(
            get_with_headers(
                &client(),
                s.gate.url("/dash"),
                &[("cookie", &cookie), (name, &forged)],
            )
            .await,
        )
        .await;
        let got = h["x-portcullis-assertion"].as_str().unwrap_or_default();
        cases.check(
            format!("signed in, spoofed {name}"),
            got != forged && verify(&s, got, &s.domain, 0).is_ok(),
            || format!("upstream got {h}"),
        );
        let leaked: Vec<&String> = h
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| {
                k.to_ascii_lowercase()
                    .replace('_', "-")
                    .contains("portcullis-assertion")
                    && *k != "x-portcullis-assertion"
            })
            .collect();
        cases.check(
            format!("signed in, no variant of {name}"),
            leaked.is_empty(),
            || format!("{leaked:?}"),
        );

        let h = upstream_headers(
            get_with_headers(&client(), s.gate.url("/public/x"), &[(name, &forged)]).await,
        )
        .await;
        let any = h
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.to_ascii_lowercase().contains("assertion"));
        cases.check(format!("passthrough, spoofed {name}"), !any, || {
            format!("upstream got {h}")
        });
    }
    cases.finish();
}

/// The headers the app gets for a request made with the `backup` token.
async fn headers_for_the_backup_token(s: &Setup) -> Value {
    upstream_headers(
        get_with_headers(
            &client(),
            s.gate.url("/api/backup"),
            &[("authorization", &format!("Bearer {TOKEN}"))],
        )
        .await,
    )
    .await
}

#[tokio::test]
async fn passthrough_paths_get_none_and_tokens_get_one_naming_the_token() {
    let s = setup().await;
    let h = upstream_headers(client().get(s.gate.url("/public/a")).send().await.unwrap()).await;
    assert!(h.get("x-portcullis-assertion").is_none(), "{h}");

    let h = headers_for_the_backup_token(&s).await;
    let token = h["x-portcullis-assertion"]
        .as_str()
        .expect("assertion for the token");
    let claims = verify(&s, token, &s.domain, 0).expect("PyJWT accepts it");
    assert_eq!(claims["user"], "backup");
    assert_eq!(claims["idp"], "token");
    assert!(claims.get("auth_time").is_none());

    // The same token again within half the lifetime: the same assertion
    // (not signed per request).
    let again = headers_for_the_backup_token(&s).await;
    assert_eq!(again["x-portcullis-assertion"], token);
}

/// `assertion.enabled` and a key file the signing library cannot sign
/// with (an RSA key over 8192 bits, which OpenSSL loads): the app relies
/// on the assertion, so neither a session nor a token request is
/// forwarded without it; each gets the 503 page, an audit event and a log
/// line naming the key.
#[tokio::test]
async fn a_key_that_cannot_sign_refuses_the_request_instead_of_forwarding_it() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("assertion-keys.json");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/assertion-key-rsa-8200.json"
        ),
        &key_file,
    )
    .unwrap();
    let hash = hex::encode(portcullis::policy::tokens::sha256(TOKEN));
    let extra = format!(
        "assertion:\n  enabled: true\n  algorithm: RS256\n  key_file: {}\npassthrough:\n  paths:\n    - prefix: /public/\n  tokens:\n    - name: backup\n      sha256: {hash}\n",
        key_file.display()
    );
    let gate = Gate::start(&base_yaml(&up.url(), &extra));

    let cookie = gate.session_cookie(&alice());
    let by_session = get_with_headers(
        &client(),
        gate.url("/dash"),
        &[("cookie", &cookie), ("accept", "application/json")],
    )
    .await;
    let by_token = get_with_headers(
        &client(),
        gate.url("/api/backup"),
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("accept", "application/json"),
        ],
    )
    .await;
    for (what, resp) in [("session", by_session), ("token", by_token)] {
        assert_eq!(resp.status(), 503, "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["error"], "identity_assertion_unavailable",
            "{what}: {body}"
        );
        assert!(
            body.get("headers").is_none(),
            "{what} reached the upstream: {body}"
        );
    }
    // A passthrough path carries no assertion and still works.
    let h = upstream_headers(client().get(gate.url("/public/a")).send().await.unwrap()).await;
    assert!(h.get("x-portcullis-assertion").is_none(), "{h}");

    let events = gate.events("assertion_failed");
    let who: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["user"].as_str().unwrap(), e["kid"].as_str().unwrap()))
        .collect();
    assert_eq!(who, [("alice", "too-big-rsa"), ("backup", "too-big-rsa")]);
    let log = gate.log();
    assert!(
        log.contains("could not sign the identity assertion with key too-big-rsa"),
        "{log}"
    );
    assert!(!log.contains("PRIVATE KEY"), "no key material in the log");
}
