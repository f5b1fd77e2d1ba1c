//! Several instances sharing revocations through a real Redis (Debian's
//! `redis-server`, with a password, started here on a loopback port): a
//! revocation made on one instance is refused on the other; Redis stopped
//! and started again (empty: it keeps nothing on disk) loses nothing and
//! carries what was made meanwhile; an instance restarted while Redis is
//! down refuses from its file; a wrong password leaves the instance
//! working alone and saying so; TLS with a CA of the test's own.

mod common;

use std::time::{Duration, Instant};

use common::redis::{PASSWORD, Redis};
use common::revocation::{cli, login, metric, revoke, status, wait_for_revoked_events};
use common::{Gate, TestUpstream, alice, base_yaml, bob};

/// The `revocation` section for `redis` with `password` in a file.
fn shared(redis: &Redis, password: &str) -> String {
    let mut s = format!(
        "revocation:\n  redis_url: {}\n  redis_password_file: {}\n",
        redis.url(),
        redis.password_file(password).display()
    );
    if let Some(ca) = redis.ca_file() {
        s.push_str(&format!("  redis_ca_file: {}\n", ca.display()));
    }
    s
}

/// Instance A, and B with A's key file (a session minted for A is valid on
/// both), each with its own state directory.
fn pair(up: &TestUpstream, redis: &Redis) -> (Gate, Gate) {
    let a = Gate::start(&base_yaml(&up.url(), &shared(redis, PASSWORD)));
    let b = Gate::start(&a.config_yaml);
    (a, b)
}

const DEADLINE: Duration = Duration::from_secs(15);

/// Polls until `gate` answers `want` for `cookie`.
async fn until_status(gate: &Gate, cookie: &str, want: u16, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = status(gate, cookie).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got}, not {want}; log:\n{}",
            gate.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until the gate's `portcullis_revocation_store_up` is `want`.
async fn until_store_up(gate: &Gate, want: &str) {
    let deadline = Instant::now() + DEADLINE;
    while metric(gate, "portcullis_revocation_store_up").await != want {
        assert!(
            Instant::now() < deadline,
            "portcullis_revocation_store_up never became {want}; log:\n{}",
            gate.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `gate` has logged `message` `n` times.
fn until_logged(gate: &Gate, message: &str, n: usize) {
    let deadline = Instant::now() + DEADLINE;
    while logged(gate, message).len() < n {
        assert!(
            Instant::now() < deadline,
            "never logged {message:?} {n} times; log:\n{}",
            gate.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log lines of `gate` whose message is `message`.
fn logged(gate: &Gate, message: &str) -> Vec<serde_json::Value> {
    gate.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}

const UP: &str =
    "shared revocation store (Redis) is up: revocations made on any instance apply on this one";
const DOWN: &str = "shared revocation store (Redis) is down: revocations already known keep applying; new ones apply on this instance and are shared when Redis is back";

/// The members of the shared set, as `(kind, value)`.
fn in_redis(redis: &Redis) -> Vec<(String, String)> {
    let out = redis.cli(&["ZRANGE", "portcullis:app.test:revocations", "0", "-1"]);
    let mut v: Vec<(String, String)> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                e["target"]["kind"].as_str().unwrap().to_string(),
                e["target"]["value"].as_str().unwrap_or("*").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn pair_of(kind: &str, value: &str) -> (String, String) {
    (kind.to_string(), value.to_string())
}

#[tokio::test]
async fn a_revocation_made_on_one_instance_is_refused_on_the_other() {
    let redis = Redis::start();
    let up = TestUpstream::start().await;
    let (a, b) = pair(&up, &redis);
    until_store_up(&a, "1").await;
    until_store_up(&b, "1").await;
    let (alice_cookie, _) = login(&a, &alice());
    let (bob_cookie, _) = login(&a, &bob());
    for g in [&a, &b] {
        assert_eq!(status(g, &alice_cookie).await, 200);
        assert_eq!(status(g, &bob_cookie).await, 200);
    }

    revoke(&a, &["--user", "alice"]);
    until_status(
        &b,
        &alice_cookie,
        401,
        "alice on B after `revoke --config A`",
    )
    .await;
    assert_eq!(status(&a, &alice_cookie).await, 401);
    assert_eq!(status(&b, &bob_cookie).await, 200, "bob is not alice");

    // B audits it as the operator's revocation made on A.
    wait_for_revoked_events(&b, 1);
    let ev = &b.events("revoked")[0];
    assert_eq!(
        (&ev["source"], &ev["kind"], &ev["value"], &ev["by"]),
        (
            &"cli".into(),
            &"user".into(),
            &"alice".into(),
            &"operator:ops-anna".into()
        )
    );
    // Redis holds it once; B kept it in its own file too.
    assert_eq!(in_redis(&redis), [pair_of("user", "alice")]);
    let listed = cli(&b, &["revocations"]);
    let out = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(
        out.lines()
            .skip(1)
            .map(|l| l.split('\t').take(2).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        ["user alice"],
        "{out}"
    );

    // A revocation made on B travels the other way, and neither instance
    // takes in its own entry a second time (no echo).
    revoke(&b, &["--user", "bob"]);
    until_status(&a, &bob_cookie, 401, "bob on A after `revoke --config B`").await;
    assert_eq!(
        in_redis(&redis),
        [pair_of("user", "alice"), pair_of("user", "bob")]
    );
    wait_for_revoked_events(&a, 2);
    assert_eq!(a.events("revoked").len(), 2, "{:?}", a.events("revoked"));
    assert_eq!(b.events("revoked").len(), 2, "{:?}", b.events("revoked"));
    for g in [&a, &b] {
        assert_eq!(metric(g, "portcullis_revocation_list_size").await, "2");
        assert_eq!(logged(g, UP).len(), 1, "{}", g.log());
        assert!(logged(g, DOWN).is_empty(), "{}", g.log());
        assert!(!g.log().contains(PASSWORD), "the password is never logged");
    }
}

#[tokio::test]
async fn a_revocation_made_while_redis_is_down_reaches_the_others_when_it_is_back() {
    let mut redis = Redis::start();
    let up = TestUpstream::start().await;
    let (a, b) = pair(&up, &redis);
    let (alice_cookie, _) = login(&a, &alice());
    let (bob_cookie, _) = login(&a, &bob());
    revoke(&a, &["--user", "bob"]);
    until_status(&b, &bob_cookie, 401, "bob on B").await;

    redis.stop();
    for g in [&a, &b] {
        until_logged(g, DOWN, 1);
        assert_eq!(metric(g, "portcullis_revocation_store_up").await, "0");
    }
    revoke(&a, &["--user", "alice"]);
    assert_eq!(status(&a, &alice_cookie).await, 401, "A applies it at once");
    assert_eq!(status(&b, &bob_cookie).await, 401, "B keeps what it knew");
    // The documented risk: until Redis is back, B cannot know.
    assert_eq!(status(&b, &alice_cookie).await, 200);

    // Back, and empty: what each instance knows is put in again.
    redis.start_again();
    until_status(&b, &alice_cookie, 401, "alice on B once Redis is back").await;
    until_store_up(&a, "1").await;
    until_store_up(&b, "1").await;
    for g in [&a, &b] {
        assert_eq!(
            status(g, &bob_cookie).await,
            401,
            "nothing revoked before is lost"
        );
        assert_eq!(logged(g, UP).len(), 2, "up, down, up: {}", g.log());
        assert_eq!(logged(g, DOWN).len(), 1, "{}", g.log());
    }
    assert_eq!(
        in_redis(&redis),
        [pair_of("user", "alice"), pair_of("user", "bob")]
    );
    // B learnt alice's entry once, from Redis.
    let on_b: Vec<_> = b
        .events("revoked")
        .iter()
        .map(|e| e["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(on_b, ["bob", "alice"]);
}

#[tokio::test]
async fn an_instance_restarted_while_redis_is_down_refuses_from_its_file() {
    let mut redis = Redis::start();
    let up = TestUpstream::start().await;
    let (a, mut b) = pair(&up, &redis);
    let (alice_cookie, alice_sid) = login(&a, &alice());
    let (bob_cookie, _) = login(&a, &bob());
    revoke(&a, &["--session", &alice_sid]);
    until_status(&b, &alice_cookie, 401, "alice's session on B").await;

    redis.stop();
    until_logged(&b, DOWN, 1);
    b.restart();
    until_logged(&b, DOWN, 1);
    assert_eq!(metric(&b, "portcullis_revocation_store_up").await, "0");
    assert_eq!(
        status(&b, &alice_cookie).await,
        401,
        "refused from B's own file"
    );
    assert_eq!(status(&b, &bob_cookie).await, 200);
    assert_eq!(metric(&b, "portcullis_revocation_list_size").await, "1");
}

#[tokio::test]
async fn with_a_wrong_password_the_instance_works_alone_and_says_so() {
    let redis = Redis::start();
    let up = TestUpstream::start().await;
    let gate = Gate::start(&base_yaml(&up.url(), &shared(&redis, "not-the-password")));
    until_logged(&gate, DOWN, 1);
    assert_eq!(metric(&gate, "portcullis_revocation_store_up").await, "0");
    let down = logged(&gate, DOWN);
    assert_eq!(
        down[0]["error"], "Password authentication failed - AuthenticationFailed",
        "{}",
        down[0]
    );
    assert!(!gate.log().contains("not-the-password"), "{}", gate.log());

    let (alice_cookie, _) = login(&gate, &alice());
    assert_eq!(status(&gate, &alice_cookie).await, 200);
    revoke(&gate, &["--user", "alice"]);
    assert_eq!(
        status(&gate, &alice_cookie).await,
        401,
        "local revocations work"
    );
    assert!(in_redis(&redis).is_empty(), "nothing reached Redis");
    assert_eq!(
        logged(&gate, DOWN).len(),
        1,
        "still one line: {}",
        gate.log()
    );
}

#[tokio::test]
async fn over_tls_with_the_operators_ca() {
    let redis = Redis::start_tls();
    let up = TestUpstream::start().await;
    let (a, b) = pair(&up, &redis);
    until_store_up(&a, "1").await;
    until_store_up(&b, "1").await;
    let (alice_cookie, _) = login(&a, &alice());
    assert_eq!(status(&b, &alice_cookie).await, 200);
    revoke(&a, &["--all"]);
    until_status(
        &b,
        &alice_cookie,
        401,
        "alice on B after `revoke --all` on A",
    )
    .await;
    assert_eq!(in_redis(&redis), [pair_of("all", "*")]);
}

#[tokio::test]
async fn a_tls_redis_whose_ca_is_not_trusted_is_down() {
    let redis = Redis::start_tls();
    let up = TestUpstream::start().await;
    // The same server, without the CA: its certificate is refused.
    let section = format!(
        "revocation:\n  redis_url: {}\n  redis_password_file: {}\n",
        redis.url(),
        redis.password_file(PASSWORD).display()
    );
    let gate = Gate::start(&base_yaml(&up.url(), &section));
    until_logged(&gate, DOWN, 1);
    assert_eq!(metric(&gate, "portcullis_revocation_store_up").await, "0");
    let down = logged(&gate, DOWN);
    assert!(
        down[0]["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{}",
        down[0]
    );
}

#[test]
fn check_config_names_a_bad_redis_setting_and_never_prints_the_password() {
    let mut cases = common::cases::Cases::new();
    for (extra, field, hint) in [
        (
            "revocation:\n  redis_url: http://:hunter2@r.example.com\n",
            "revocation.redis_url",
            "use `redis://` or, for TLS, `rediss://`",
        ),
        (
            "revocation:\n  redis_url: redis://:hunter2@r.example.com/x\n",
            "revocation.redis_url",
            "is not a Redis URL the client accepts",
        ),
        (
            "revocation:\n  redis_url: redis://r.example.com\n  redis_password_file: /nonexistent/redis-pw\n",
            "revocation.redis_password_file",
            "cannot read `/nonexistent/redis-pw`",
        ),
        (
            "revocation:\n  redis_url: redis://r.example.com\n  redis_ca_file: /etc/hostname\n",
            "revocation.redis_ca_file",
            "applies only to TLS",
        ),
    ] {
        let out = common::check_config_with(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        cases.check(
            extra.trim_end(),
            out.status.code() == Some(1)
                && err.contains(&format!("{field}: "))
                && err.contains(hint)
                && !err.contains("hunter2"),
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
