//! Operations, end to end against the real binary: systemd readiness,
//! configuration reload on SIGHUP, the Unix socket listener, forward-auth,
//! metrics, and key rotation with `keygen --rotate` / `keys prune`.

// Counters read from the metrics page are whole numbers: exact comparison
// is the assertion.
#![allow(clippy::float_cmp)]

mod common;
mod operations_support;

use std::time::Duration;

use common::{BROWSER_ACCEPT, TestUpstream, alice, assert_health_ok, bob, client, get_text};
use operations_support::*;
use serde_json::Value;

fn yaml(upstream: &str, extra: &str) -> String {
    common::base_yaml(upstream, extra)
}

async fn echo(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200, "expected the upstream's echo");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn ready_is_sent_after_bind_and_reload_reports_to_systemd() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let gate = Gate::start(
        &yaml(&up.url(), ""),
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    // Ready means bound: the port answers now.
    assert_health_ok(gate.url("/.portcullis/health")).await;

    gate.hup_and_wait(1);
    let n = sock.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "RELOADING=1"), "{msg}");
    let n = sock.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
}

#[tokio::test]
async fn sighup_applies_a_good_config_and_keeps_the_old_one_when_broken() {
    let up = TestUpstream::start().await;
    let first = yaml(
        &up.url(),
        "passthrough:\n  paths:\n    - prefix: /public/\n",
    );
    let gate = Gate::start(&first, &[]);
    let c = client();
    let api = |path: &str| {
        c.get(gate.url(path))
            .header("accept", "application/json")
            .send()
    };
    assert_eq!(api("/open/x").await.unwrap().status(), 401);
    assert_eq!(api("/public/x").await.unwrap().status(), 200);

    // A request in flight (held at the upstream) while the configuration
    // changes.
    let in_flight = {
        let c = client();
        let url = gate.url("/held");
        let cookie = gate.cookie(&alice());
        tokio::spawn(async move { c.get(url).header("cookie", cookie).send().await })
    };
    up.wait_held(1).await;

    // Good: /open/ becomes public, the user header is renamed.
    let second = yaml(
        &up.url(),
        "passthrough:\n  paths:\n    - prefix: /open/\nheaders:\n  user: X-Remote-User\n",
    );
    let ev = gate.reload_with(&second, 1);
    assert_eq!(ev["message"], "configuration reloaded");
    assert_eq!(api("/open/x").await.unwrap().status(), 200);
    assert_eq!(api("/public/x").await.unwrap().status(), 401);
    let v = echo(
        c.get(gate.url("/"))
            .header("cookie", gate.cookie(&alice()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["headers"]["x-remote-user"], "alice");
    assert!(v["headers"].get("x-forwarded-user").is_none());

    // The request that started before the reload finishes normally.
    up.release_held();
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "held done");

    // Broken: refused, logged with the field, the second config stays.
    let broken = second.replace(&up.url(), "not a url");
    let ev = gate.reload_with(&broken, 2);
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .starts_with("configuration reload refused"),
        "{ev}"
    );
    assert_eq!(ev["level"], "ERROR");
    assert!(
        ev["error"].as_str().unwrap().contains("upstream.url"),
        "names the field: {ev}"
    );
    assert_eq!(api("/open/x").await.unwrap().status(), 200);
    // YAML that does not parse at all is refused the same way.
    let ev = gate.reload_with("domain: [unclosed\n", 3);
    assert!(ev["message"].as_str().unwrap().contains("refused"), "{ev}");
    assert_eq!(api("/open/x").await.unwrap().status(), 200);

    // Fixed again: applied.
    let ev = gate.reload_with(&first, 4);
    assert_eq!(ev["message"], "configuration reloaded");
    assert_eq!(api("/public/x").await.unwrap().status(), 200);

    // Changing `listen` is reported as needing a restart.
    let moved = first.replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:1");
    gate.reload_with(&moved, 5);
    assert!(gate.log().contains("take effect only after a restart"));
    assert_eq!(api("/public/x").await.unwrap().status(), 200);

    // The metrics count both kinds of reload.
    let m = parse_metrics(&get_text(&c, gate.url("/.portcullis/metrics")).await);
    assert_eq!(m["portcullis_config_reloads_total{result=\"ok\"}"], 3.0);
    assert_eq!(m["portcullis_config_reloads_total{result=\"failed\"}"], 2.0);
}

// Multi-threaded: the blocking Unix client must not stall the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_listener_serves_with_loopback_trust() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(
        &yaml(
            &up.url(),
            "passthrough:\n  paths:\n    - prefix: /public/\n",
        )
        .replace(
            "listen: 127.0.0.1:0",
            "listen: unix:DIR/gate.sock\nlisten_socket_mode: \"0660\"",
        ),
        &[],
    );
    let Where::Unix(path) = gate.at.clone() else {
        panic!("expected a unix socket");
    };
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    // A Unix peer counts as 127.0.0.1: a trusted proxy by default, so the
    // forwarded client address is believed.
    let (status, _, body) = unix_get(&path, "/public/a", &[("X-Forwarded-For", "198.51.100.7")]);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["headers"]["x-real-ip"], "198.51.100.7");
    assert_eq!(v["headers"]["x-forwarded-for"], "198.51.100.7, 127.0.0.1");

    let cookie = gate.cookie(&alice());
    let (status, _, body) = unix_get(&path, "/private", &[("Cookie", &cookie)]);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["headers"]["x-forwarded-user"], "alice");
    let (status, _, _) = unix_get(&path, "/private", &[("Accept", "application/json")]);
    assert_eq!(status, 401);
}

#[tokio::test]
async fn unix_socket_is_removed_on_clean_stop() {
    let up = TestUpstream::start().await;
    let mut gate = Gate::start(
        &yaml(&up.url(), "").replace("listen: 127.0.0.1:0", "listen: unix:DIR/s.sock"),
        &[],
    );
    let Where::Unix(path) = gate.at.clone() else {
        panic!()
    };
    assert!(path.exists());
    gate.server.signal(rustix::process::Signal::TERM);
    let status = gate
        .server
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", gate.log());
    assert!(!path.exists(), "socket file removed on stop");
}

#[tokio::test]
async fn forward_auth_answers_for_sessions_passthrough_and_tokens() {
    let up = TestUpstream::start().await;
    let token = "fa-token-0123456789abcdef";
    let hash = hex::encode(portcullis::policy::tokens::sha256(token));
    let gate = Gate::start(
        &yaml(
            &up.url(),
            &format!(
                "passthrough:\n  paths:\n    - prefix: /public/\n  tokens:\n    - name: backup\n      sha256: {hash}\naccess:\n  allowed_groups: [admins]\n"
            ),
        ),
        &[],
    );
    let c = client();
    let auth = |uri: &str| {
        c.get(gate.url("/.portcullis/auth"))
            .header("x-original-uri", uri)
            .header("x-original-method", "GET")
    };

    // Valid session: 200 with identity headers, no body needed.
    let r = auth("/dashboard")
        .header("cookie", gate.cookie(&alice()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-forwarded-user"], "alice");
    assert_eq!(r.headers()["x-forwarded-email"], "alice@example.com");
    assert_eq!(r.headers()["x-forwarded-groups"], "admins,staff");

    // Signed in but not allowed: 403.
    let r = auth("/dashboard")
        .header("cookie", gate.cookie(&bob()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Passthrough path of the original request: 200 without identity, and
    // path tricks in the original URI do not make it public.
    // Every identity header is present and empty, so a web server copying
    // them replaces whatever the client sent.
    let r = auth("/public/logo.png").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut cases = common::cases::Cases::new();
    for h in [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-name",
    ] {
        cases.eq(
            h,
            r.headers().get(h).map(http::HeaderValue::as_bytes),
            Some(&b""[..]),
        );
    }
    cases.finish();
    // The other family is not believed (forward_auth.headers is nginx).
    let r = c
        .get(gate.url("/.portcullis/auth"))
        .header("x-forwarded-uri", "/public/x")
        .header("x-forwarded-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "Traefik/Caddy header under the nginx family"
    );
    let r = auth("/public/../admin")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Token: 200 with the token's identity.
    let r = auth("/api/backup").bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-forwarded-user"], "backup");

    // No session, script: 401 naming the login URL with the original URI.
    let r = auth("/reports?id=7")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("x-portcullis-login-url").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["login_url"], "/.portcullis/login?rd=%2Freports%3Fid%3D7");

    // No session, browser: the 401 carries the sign-in URL for nginx; with
    // ?redirect=1 (Traefik, Caddy) it is a 302 straight there.
    let r = auth("/reports?id=7")
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["x-portcullis-login-url"],
        "/.portcullis/login?rd=%2Freports%3Fid%3D7"
    );
    let r = c
        .get(gate.url("/.portcullis/auth?redirect=1"))
        .header("x-original-uri", "https://app.test/x")
        .header("x-original-method", "GET")
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/.portcullis/login?rd=%2Fx");

    // An original URI pointing elsewhere never becomes the return URL.
    let r = auth("//evil.example/")
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-portcullis-login-url"],
        "/.portcullis/login?rd=%2F"
    );

    // A forged identity header from the client is not echoed back.
    let r = auth("/public/x")
        .header("x-forwarded-user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-forwarded-user"], "");
}

#[tokio::test]
async fn metrics_parse_and_move_with_traffic() {
    let up = TestUpstream::start().await;
    let token = "metrics-token-abcdef0123456789";
    let hash = hex::encode(portcullis::policy::tokens::sha256(token));
    let gate = Gate::start(
        &yaml(
            &up.url(),
            &format!(
                "passthrough:\n  paths:\n    - prefix: /public/\n  tokens:\n    - name: mon\n      sha256: {hash}\n"
            ),
        ),
        &[],
    );
    let c = client();
    let scrape = || async {
        let r = c
            .get(gate.url("/.portcullis/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        parse_metrics(&r.text().await.unwrap())
    };
    let get =
        |m: &std::collections::BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    let before = scrape().await;
    assert_eq!(get(&before, "portcullis_idp_metadata_age_seconds"), -1.0);
    assert!(before.contains_key(&format!(
        "portcullis_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    )));

    let cookie = gate.cookie(&alice());
    for _ in 0..3 {
        c.get(gate.url("/app"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
    }
    c.get(gate.url("/public/x")).send().await.unwrap();
    c.get(gate.url("/api"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    c.get(gate.url("/api"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    common::api_get(&c, gate.url("/api"), &format!("{cookie}x")).await;

    let after = scrape().await;
    let delta = |k: &str| get(&after, k) - get(&before, k);
    assert_eq!(
        delta("portcullis_requests_total{outcome=\"forwarded\"}"),
        3.0
    );
    assert_eq!(
        delta("portcullis_requests_total{outcome=\"passthrough\"}"),
        1.0
    );
    assert_eq!(delta("portcullis_requests_total{outcome=\"token\"}"), 1.0);
    assert_eq!(
        delta("portcullis_requests_total{outcome=\"unauthorized\"}"),
        2.0
    );
    assert_eq!(
        delta("portcullis_session_verifications_total{result=\"valid\"}"),
        3.0
    );
    let refused: f64 = after
        .keys()
        .filter(|k| {
            k.starts_with("portcullis_session_verifications_total") && !k.contains("valid\"")
        })
        .map(|k| delta(k))
        .sum();
    assert_eq!(refused, 1.0, "the tampered cookie");
    assert_eq!(delta("portcullis_upstream_response_seconds_count"), 5.0);
    assert!(get(&after, "portcullis_upstream_response_seconds_sum") > 0.0);
    assert_eq!(
        get(
            &after,
            "portcullis_upstream_response_seconds_bucket{le=\"+Inf\"}"
        ),
        get(&after, "portcullis_upstream_response_seconds_count")
    );
    // The scrape itself is counted as one of Portcullis' own requests.
    assert!(delta("portcullis_requests_total{outcome=\"own\"}") >= 1.0);

    // Through the public host the client is a visitor: no metrics.
    let r = c
        .get(gate.url("/.portcullis/metrics"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        !r.text()
            .await
            .unwrap()
            .contains("portcullis_requests_total")
    );
    // A visitor claiming to be local is still the visitor: nginx appends
    // the real address, and the right-most untrusted entry counts.
    let r = c
        .get(gate.url("/.portcullis/metrics"))
        .header("x-forwarded-for", "127.0.0.1, 203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn forward_auth_renews_an_aging_session() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(
        &yaml(&up.url(), "").replace(
            "session:\n",
            "session:\n  inactivity_timeout: 10m\n  lifetime: 8h\n",
        ),
        &[],
    );
    let now = portcullis::session::now();
    let aging = common::mint_cookie(&gate.yaml, &gate.key_file(), &alice(), |cl| {
        cl.iat = now - 360;
        cl.exp = now + 240;
    });
    let r = client()
        .get(gate.url("/.portcullis/auth"))
        .header("x-original-uri", "/x")
        .header("x-original-method", "GET")
        .header("cookie", aging)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-forwarded-user"], "alice");
    let set = r.headers()["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("portcullis_session="), "{set}");
    let max_age: u64 = set
        .split("Max-Age=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        (590..=600).contains(&max_age),
        "renewed for the window: {set}"
    );
}

#[tokio::test]
async fn metrics_on_their_own_address() {
    let up = TestUpstream::start().await;
    let port = free_port();
    let gate = Gate::start(
        &yaml(
            &up.url(),
            &format!("metrics:\n  listen: 127.0.0.1:{port}\n"),
        ),
        &[],
    );
    let c = client();
    let r = c
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = parse_metrics(&r.text().await.unwrap());
    assert!(m.contains_key("portcullis_idp_metadata_last_refresh_success"));
    // Not on the main listener, even from loopback.
    let r = c
        .get(gate.url("/.portcullis/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn rotated_out_key_verifies_until_pruned() {
    let up = TestUpstream::start().await;
    let gate = Gate::start(&yaml(&up.url(), ""), &[]);
    let c = client();
    let status = |cookie: String| {
        let c = c.clone();
        let url = gate.url("/");
        async move { common::api_get(&c, url, &cookie).await.status().as_u16() }
    };
    let old_cookie = gate.cookie(&alice());
    assert_eq!(status(old_cookie.clone()).await, 200);

    let key_file = gate.key_file();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::bin())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let kf = key_file.to_str().unwrap();
    let said = run(&["keygen", "--rotate", "--out", kf]);
    assert!(said.contains("now active"), "{said}");
    gate.hup_and_wait(1);

    // The old key is listed but no longer active: its cookies still pass,
    // new cookies are signed with the new key.
    assert_eq!(status(old_cookie.clone()).await, 200);
    let new_cookie = gate.cookie(&alice());
    assert_ne!(new_cookie, old_cookie);
    assert_eq!(status(new_cookie.clone()).await, 200);

    // Replaced only now: prune keeps it (sessions it signed may live 12h).
    let said = run(&["keys", "prune", "--file", kf, "--max-age", "12h"]);
    assert!(said.contains("nothing to drop"), "{said}");
    let listed = run(&["keys", "list", "--file", kf]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert_eq!(listed.lines().filter(|l| l.ends_with("active")).count(), 1);

    // As if the rotation happened two days ago.
    let mut ring: Value = serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    let now = portcullis::session::now();
    ring["keys"][0]["created"] = (now - 3 * 86400).into();
    ring["keys"][1]["created"] = (now - 2 * 86400).into();
    std::fs::write(&key_file, serde_json::to_vec_pretty(&ring).unwrap()).unwrap();
    let said = run(&[
        "keys",
        "prune",
        "--file",
        kf,
        "--max-age",
        "12h",
        "--dry-run",
    ]);
    assert!(said.contains("would drop 1 key"), "{said}");
    assert_eq!(run(&["keys", "list", "--file", kf]).lines().count(), 2);
    // Default max age: the configuration's session lifetime.
    let said = run(&[
        "--config",
        gate.config_path().to_str().unwrap(),
        "keys",
        "prune",
    ]);
    assert!(said.contains("dropped 1 key"), "{said}");
    gate.hup_and_wait(2);

    assert_eq!(
        status(old_cookie).await,
        401,
        "pruned key no longer verifies"
    );
    assert_eq!(status(new_cookie).await, 200);
    let refused = gate.log_lines().into_iter().any(|v| {
        v["event"] == "session_rejected"
            && v["reason"]
                .as_str()
                .unwrap()
                .contains("not in the key ring")
    });
    assert!(refused, "the refusal is audited");
}

#[test]
fn reference_yaml_spells_out_the_defaults() {
    let root = env!("CARGO_MANIFEST_DIR");
    let reference =
        std::fs::read_to_string(format!("{root}/config-examples/reference.yaml")).unwrap();
    let full = portcullis::config::from_yaml_str(&reference).expect("reference.yaml is valid");
    let minimal = std::fs::read_to_string(format!("{root}/config-examples/minimal.yaml")).unwrap();
    let min = portcullis::config::from_yaml_str(&minimal).expect("minimal.yaml is valid");
    assert_eq!(
        format!("{full:?}"),
        format!("{min:?}"),
        "reference.yaml must state exactly the defaults"
    );
    // Every top-level key of the configuration appears in the reference.
    for key in [
        "domain:",
        "strict_host:",
        "# domain_aliases:",
        "scheme:",
        "listen:",
        "listen_socket_mode:",
        "# state_dir:",
        "shutdown_timeout:",
        "connections:",
        "upstream:",
        "session:",
        "revocation:",
        "passthrough:",
        "headers:",
        "access:",
        "pages:",
        "log:",
        "login:",
        "metrics:",
        "forward_auth:",
    ] {
        assert!(
            reference.lines().any(|l| l.starts_with(key)),
            "reference.yaml lacks `{key}`"
        );
    }
}

#[test]
fn check_config_names_listen_socket_and_metrics_errors() {
    let mut cases = common::cases::Cases::new();
    for (extra, field, hint) in [
        (
            "listen: unix:relative.sock\n",
            "listen:",
            "absolute socket path",
        ),
        (
            "listen: localhost\n",
            "listen:",
            "unix:/run/portcullis/NAME.sock",
        ),
        (
            "listen_socket_mode: \"999\"\n",
            "listen_socket_mode:",
            "octal",
        ),
        (
            "metrics:\n  listen: nowhere\n",
            "metrics.listen:",
            "IP:PORT",
        ),
        (
            "metrics:\n  allowed_ip_ranges: [everyone]\n",
            "metrics.allowed_ip_ranges[0]:",
            "CIDR",
        ),
        (
            "metrics:\n  enabeld: true\n",
            "metrics.enabeld:",
            "unknown key",
        ),
    ] {
        let out = common::check_config_with(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        cases.check(
            extra.trim_end(),
            out.status.code() == Some(1) && err.contains(field) && err.contains(hint),
            || {
                format!(
                    "exit {:?}, expected 1 naming `{field}` with `{hint}`: {err}",
                    out.status.code()
                )
            },
        );
    }
    cases.finish();
}
