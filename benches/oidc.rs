//! OpenID Connect ID-token validation as the callback runs it: a locally
//! signed RS256 token (2048-bit key made at start) checked against an
//! in-memory JWKS, with the configured algorithms, iss, aud, exp, iat,
//! nonce and azp rules. No network: the provider endpoints point at a closed
//! loopback port and are never needed.
//!
//! `cargo bench --bench oidc`

use std::hint::black_box;

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::idp::oidc::OidcLogin;
use portcullis::idp::oidc::provider::Metadata;
use serde_json::json;

const ISSUER: &str = "http://127.0.0.1:9/realms/corp";
const CLIENT_ID: &str = "grafana";
const NONCE: &str = "n-0S6_WzA2Mj";

fn sign_rs256(key: &KeyPair, kid: &str, claims: &serde_json::Value) -> String {
    let header = B64.encode(json!({"alg": "RS256", "typ": "JWT", "kid": kid}).to_string());
    let payload = B64.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
        .expect("RSA signing works");
    format!("{input}.{}", B64.encode(sig))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let state = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "domain: app.example.com
upstream:
  url: http://127.0.0.1:9
state_dir: {}
oidc:
  issuer: {ISSUER}
  discovery: false
  authorization_endpoint: {ISSUER}/auth
  token_endpoint: {ISSUER}/token
  jwks_uri: {ISSUER}/jwks
  client_id: {CLIENT_ID}
  client_secret: bench-secret-0123456789
",
        state.path().display()
    );
    let config = portcullis::config::from_yaml_str(&yaml).expect("bench config is valid");
    let oidc_cfg = config.oidc.clone().expect("oidc section");
    // The provider is unreachable: setup logs it and goes on, as at a start
    // during an outage. The keys come from `metadata` below.
    let login = rt
        .block_on(OidcLogin::new(&config, oidc_cfg))
        .expect("OIDC login sets up");

    let key = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
    let public = key.public_key();
    let n = B64.encode(public.modulus().big_endian_without_leading_zero());
    let e = B64.encode(public.exponent().big_endian_without_leading_zero());
    let kid = "bench-key-1";
    let jwks = json!({"keys": [
        {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}
    ]});
    let discovery = json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/auth"),
        "token_endpoint": format!("{ISSUER}/token"),
        "jwks_uri": format!("{ISSUER}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let metadata: Metadata = serde_json::from_value(discovery).expect("discovery document");
    let metadata = metadata.set_jwks(serde_json::from_value(jwks).expect("JWKS"));

    let now = portcullis::session::now();
    let claims = json!({
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "azp": CLIENT_ID,
        "sub": "248289761001",
        "exp": now + 300,
        "iat": now,
        "auth_time": now,
        "nonce": NONCE,
        "email": "alice@example.com",
        "email_verified": true,
        "name": "Alice Example",
        "preferred_username": "alice",
        "groups": ["staff", "admins", "grafana-editors"],
    });
    let token = sign_rs256(&key, kid, &claims);
    // Sanity: the token is accepted, and a wrong nonce is not.
    login
        .verify_id_token(&metadata, &token, NONCE)
        .expect("bench ID token verifies");
    assert!(login.verify_id_token(&metadata, &token, "other").is_err());

    let _guard = rt.enter();
    c.bench_function("oidc/id_token_rs256", |b| {
        b.iter(|| login.verify_id_token(&metadata, black_box(&token), NONCE));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
