//! Request headers that would let a client speak for the gate: client
//! addresses and the identity headers of well-known apps, through the real
//! binary to an upstream that echoes exactly what it received.
//!
//! Each case compares the upstream's headers for a request carrying the
//! spoofed header with those for the same request without it: they must be
//! equal, name for name and value for value (the request id aside).

mod common;

use std::collections::BTreeMap;

use common::cases::Cases;
use common::*;

const TOKEN: &str = "backup-token-5d4c3b2a1908";

fn yaml(upstream: &str, extra: &str) -> String {
    let hash = hex::encode(portcullis::policy::tokens::sha256(TOKEN));
    base_yaml(
        upstream,
        &format!(
            "passthrough:\n  paths:\n    - prefix: /public/\n  tokens:\n    - name: backup\n      sha256: {hash}\n{extra}"
        ),
    )
}

/// The headers the upstream received, without the per-request id.
async fn received(
    gate: &Gate,
    path: &str,
    auth: &Auth<'_>,
    headers: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut rb = client().get(gate.url(path)).header("x-marker", "keep-me");
    match auth {
        Auth::None => {}
        Auth::Cookie(c) => rb = rb.header("cookie", *c),
        Auth::Token => rb = rb.bearer_auth(TOKEN),
    }
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.expect("gate answers");
    assert_eq!(resp.status(), 200, "{path} {headers:?}");
    let v: serde_json::Value = resp.json().await.expect("upstream echo");
    v["headers"]
        .as_object()
        .expect("headers object")
        .iter()
        .filter(|(k, _)| k.as_str() != "x-request-id")
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

enum Auth<'a> {
    None,
    Cookie(&'a str),
    Token,
}

/// `name` as it is usually written, with `_` for `-`, in capitals with
/// `_`, and as the CGI variable name (`HTTP_…`) that Java and PHP helpers
/// look up as a header.
fn spellings(name: &str) -> Vec<String> {
    let under = name.replace('-', "_");
    vec![
        name.to_string(),
        under.clone(),
        under.to_ascii_uppercase(),
        format!("HTTP_{}", under.to_ascii_uppercase()),
    ]
}

/// Sends each name in each spelling on each route; a case fails when the
/// upstream's headers differ from those of the clean request.
async fn attack(gate: &Gate, names: &[&str], value: &str) -> Cases {
    let cookie = gate.session_cookie(&alice());
    let routes = [
        ("/public/x", Auth::None),
        ("/app/x", Auth::Cookie(&cookie)),
        ("/api/x", Auth::Token),
    ];
    let mut cases = Cases::new();
    for (path, auth) in &routes {
        let clean = received(gate, path, auth, &[]).await;
        assert_eq!(clean["x-marker"], "keep-me");
        for name in names {
            for spelling in spellings(name) {
                let got = received(gate, path, auth, &[(spelling.as_str(), value)]).await;
                cases.check(format!("{path} `{spelling}`"), got == clean, || {
                    let extra: Vec<_> = got
                        .iter()
                        .filter(|(k, v)| clean.get(*k) != Some(v))
                        .collect();
                    format!("upstream got {extra:?}")
                });
            }
        }
    }
    cases
}

/// Every client-address header a CDN, load balancer or framework uses.
const CLIENT_ADDRESS: &[&str] = &[
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Ssl",
    "X-Forwarded-Scheme",
    "X-Forwarded-Server",
    "X-Forwarded-Client-IP",
    "Forwarded",
    "X-Forwarded",
    "Forwarded-For",
    "X-Real-IP",
    "True-Client-IP",
    "CF-Connecting-IP",
    "CF-Connecting-IPv6",
    "CF-Pseudo-IPv4",
    "X-Client-IP",
    "X-Cluster-Client-IP",
    "Fastly-Client-IP",
    "X-Originating-IP",
    "X-Remote-IP",
    "X-Remote-Addr",
    "Remote-Addr",
    "Client-IP",
    "X-ProxyUser-IP",
    "Proxy-Client-IP",
    "WL-Proxy-Client-IP",
    "X-Original-Forwarded-For",
    "DO-Connecting-IP",
    "X-AppEngine-User-IP",
    "X-Azure-ClientIP",
    "X-Azure-SocketIP",
    "X-ARR-ClientIP",
    "X-Envoy-External-Address",
    "CloudFront-Viewer-Address",
    "Fly-Client-IP",
    "X-NF-Client-Connection-IP",
    "X-Vercel-Forwarded-For",
    "Incap-Client-IP",
    "X-Sucuri-ClientIP",
];

#[tokio::test]
async fn an_untrusted_peer_loses_every_client_address_header() {
    let up = TestUpstream::start().await;
    // Loopback, where the test connects from, is not a trusted proxy here.
    let gate = Gate::start(&yaml(
        &up.url(),
        "access:\n  trusted_proxies: [192.0.2.0/24]\n",
    ));
    attack(&gate, CLIENT_ADDRESS, "6.6.6.6").await.finish();

    // And what the upstream hears instead is Portcullis' own account.
    let clean = received(&gate, "/public/x", &Auth::None, &[]).await;
    let host = gate.addr.to_string();
    let expected: BTreeMap<String, String> = [
        ("accept", "*/*"),
        ("host", host.as_str()),
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-host", host.as_str()),
        ("x-forwarded-proto", "http"),
        ("x-marker", "keep-me"),
        ("x-real-ip", "127.0.0.1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(clean, expected);
}

#[tokio::test]
async fn a_trusted_proxy_keeps_its_forwarded_headers_and_nothing_else() {
    let up = TestUpstream::start().await;
    // Loopback is a trusted proxy (the default), like nginx in front.
    let gate = Gate::start(&yaml(&up.url(), ""));
    let got = received(
        &gate,
        "/public/x",
        &Auth::None,
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.com"),
            ("X-Real-IP", "6.6.6.6"),
            ("True-Client-IP", "6.6.6.6"),
            ("CF-Connecting-IP", "6.6.6.6"),
            ("X-Client-IP", "6.6.6.6"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("HTTP_X_FORWARDED_FOR", "6.6.6.6"),
        ],
    )
    .await;
    let expected: BTreeMap<String, String> = [
        ("accept", "*/*"),
        ("host", &gate.addr.to_string()),
        ("x-forwarded-for", "203.0.113.9, 127.0.0.1"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-marker", "keep-me"),
        ("x-real-ip", "203.0.113.9"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, expected);
}

/// Identity headers that apps are told to trust, and that other gates and
/// web-server modules set.
const WELL_KNOWN_IDENTITY: &[&str] = &[
    // Grafana auth.proxy, Gitea.
    "X-WEBAUTH-USER",
    "X-WEBAUTH-EMAIL",
    "X-WEBAUTH-NAME",
    "X-WEBAUTH-ROLE",
    "X-WEBAUTH-GROUPS",
    "X-WEBAUTH-FULLNAME",
    // Apache, Authelia, Kubernetes.
    "Remote-User",
    "Remote-Groups",
    "Remote-Email",
    "Remote-Name",
    "X-Remote-User",
    "X-Remote-Group",
    "X-Remote-Extra-Scopes",
    // oauth2-proxy.
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Preferred-Username",
    "X-Auth-Request-Access-Token",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Access-Token",
    "GAP-Auth",
    // Pomerium, Cloudflare Access, Google IAP, Azure, AWS ALB.
    "X-Pomerium-Jwt-Assertion",
    "X-Pomerium-Claim-Email",
    "Cf-Access-Authenticated-User-Email",
    "Cf-Access-Jwt-Assertion",
    "X-Goog-Authenticated-User-Email",
    "X-Goog-Authenticated-User-Id",
    "X-Goog-IAP-JWT-Assertion",
    "X-MS-CLIENT-PRINCIPAL",
    "X-MS-CLIENT-PRINCIPAL-NAME",
    "X-MS-CLIENT-PRINCIPAL-ID",
    "X-MS-TOKEN-AAD-ID-TOKEN",
    "X-Amzn-Oidc-Identity",
    "X-Amzn-Oidc-Data",
    // Generic and small gates.
    "X-Authenticated-User",
    "X-Authenticated-Userid",
    "X-User",
    "X-Email",
    "X-Auth-User",
    "X-Proxy-User",
    "X-Proxy-Roles",
    "X-Authentik-Username",
    "X-Vouch-User",
    "Tailscale-User-Login",
    "Tailscale-User-Name",
    // Shibboleth, mod_auth_mellon, mod_auth_openidc.
    "Shib-Session-ID",
    "Shib-Identity-Provider",
    "eppn",
    "MELLON-NAME-ID",
    "MELLON-groups",
    "OIDC-CLAIM-email",
    "OIDC-access-token",
    "OIDC-id-token-payload",
    // Routing overrides.
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-HTTP-Method-Override",
    // The operator's own (headers.strip below).
    "X-Grafana-User",
    "X-Corp-Auth-Role",
    "X-Corp-Auth-",
];

#[tokio::test]
async fn identity_headers_of_well_known_apps_never_reach_the_upstream() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&yaml(
        &up.url(),
        "headers:\n  strip: [X-Grafana-User, 'X-Corp-Auth-*']\n",
    ));
    attack(&gate, WELL_KNOWN_IDENTITY, "admin").await.finish();

    // The identity the upstream does get is the session's, and unrelated
    // headers (near misses of the rules included) pass.
    let cookie = gate.session_cookie(&alice());
    let keep = [
        ("X-Grafana-Org-Id", "2"),
        ("X-Grafana-Users", "a"),
        ("X-Corp-Authority", "b"),
        ("X-Auth-Token", "app-own"),
        ("X-Webauth", "c"),
        ("X-Users", "d"),
    ];
    let got = received(&gate, "/app/x", &Auth::Cookie(&cookie), &keep).await;
    for (k, v) in keep {
        assert_eq!(
            got.get(&k.to_ascii_lowercase()).map(String::as_str),
            Some(v),
            "{k} is kept"
        );
    }
    assert_eq!(got["x-forwarded-user"], "alice");
    assert_eq!(got["x-forwarded-email"], "alice@example.com");
}
