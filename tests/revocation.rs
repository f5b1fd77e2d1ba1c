//! Revocations against the real binary: `portcullis revoke --all`, `--user`
//! and `--session` cut exactly what they name on a running instance (which
//! picks the file up by itself), without a key change; sessions that sign
//! in afterwards work; a restart forgets nothing; audit and metrics.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::revocation::{cli, login, metric, revoke, status};
use common::{alice, bin, bob, echo_behind_gate};
use portcullis::identity::Identity;

#[tokio::test]
async fn revoke_all_logs_everyone_out_without_a_key_change_and_new_sessions_work() {
    let (_up, gate) = echo_behind_gate("").await;
    let (a, _) = login(&gate, &alice());
    let (b, _) = login(&gate, &bob());
    assert_eq!(status(&gate, &a).await, 200);
    assert_eq!(status(&gate, &b).await, 200);
    let keys = std::fs::read(gate.key_file()).unwrap();

    revoke(&gate, &["--all"]);

    assert_eq!(status(&gate, &a).await, 401, "alice is signed out");
    assert_eq!(status(&gate, &b).await, 401, "bob is signed out");
    assert_eq!(
        std::fs::read(gate.key_file()).unwrap(),
        keys,
        "no key change"
    );

    let (a2, _) = login(&gate, &alice());
    let (c, _) = login(
        &gate,
        &Identity {
            subject: "carol-sub".into(),
            user: "carol".into(),
            ..Default::default()
        },
    );
    assert_eq!(status(&gate, &a2).await, 200, "alice signs in again");
    assert_eq!(status(&gate, &c).await, 200, "a new user signs in");

    let ev = &gate.events("revoked")[0];
    assert_eq!(ev["source"], "cli");
    assert_eq!(ev["kind"], "all");
    assert_eq!(ev["by"], "operator:ops-anna");
    let rejected = gate.events("session_rejected");
    assert!(
        rejected
            .iter()
            .filter(|e| e["reason"] == "the session was revoked; sign in again")
            .count()
            == 2,
        "{rejected:?}"
    );
    assert_eq!(
        metric(&gate, "portcullis_revocations_total{source=\"cli\"}").await,
        "1"
    );
    assert_eq!(
        metric(&gate, "portcullis_revoked_requests_total").await,
        "2"
    );
    assert_eq!(metric(&gate, "portcullis_revocation_list_size").await, "1");
}

#[tokio::test]
async fn revoke_user_and_session_cut_exactly_that_and_a_restart_keeps_them() {
    let (_up, mut gate) = echo_behind_gate("").await;
    let (laptop, laptop_sid) = login(&gate, &alice());
    let (phone, _) = login(&gate, &alice());
    let (b, _) = login(&gate, &bob());
    for c in [&laptop, &phone, &b] {
        assert_eq!(status(&gate, c).await, 200);
    }

    revoke(&gate, &["--session", &laptop_sid]);
    assert_eq!(status(&gate, &laptop).await, 401, "the named session");
    assert_eq!(status(&gate, &phone).await, 200, "alice's other session");
    assert_eq!(status(&gate, &b).await, 200, "somebody else");

    revoke(&gate, &["--user", "bob"]);
    assert_eq!(status(&gate, &b).await, 401, "bob's session");
    assert_eq!(status(&gate, &phone).await, 200, "alice is not bob");
    let (b2, _) = login(&gate, &bob());
    assert_eq!(status(&gate, &b2).await, 200, "bob signs in again");

    revoke(&gate, &["--subject", "alice-sub"]);
    assert_eq!(status(&gate, &phone).await, 401, "every alice session");
    assert_eq!(status(&gate, &b2).await, 200);

    let listed = cli(&gate, &["revocations"]);
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success());
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    let kinds: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        kinds,
        [
            ("session", laptop_sid.as_str()),
            ("user", "bob"),
            ("subject", "alice-sub")
        ],
        "{out}"
    );
    assert!(
        rows.iter()
            .all(|r| r[4] == "cli" && r[5] == "operator:ops-anna")
    );

    gate.restart();
    assert_eq!(status(&gate, &laptop).await, 401, "after a restart");
    assert_eq!(status(&gate, &phone).await, 401, "after a restart");
    assert_eq!(status(&gate, &b).await, 401, "after a restart");
    assert_eq!(status(&gate, &b2).await, 200, "after a restart");
    assert_eq!(metric(&gate, "portcullis_revocation_list_size").await, "3");
}

#[tokio::test]
async fn a_forged_or_broken_list_never_lets_a_revoked_session_back_in() {
    let (_up, mut gate) = echo_behind_gate("").await;
    let (a, _) = login(&gate, &alice());
    revoke(&gate, &["--user", "alice"]);
    assert_eq!(status(&gate, &a).await, 401);
    let file = gate.dir.path().join("revocations.json");
    let good = std::fs::read_to_string(&file).unwrap();

    // A broken file: the running instance keeps what it has and says so;
    // `revoke` refuses to overwrite it; a restart refuses to start.
    std::fs::write(&file, "{ broken").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gate.log().contains("cannot read the revocation list again") {
        assert!(Instant::now() < deadline, "{}", gate.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&gate, &a).await, 401, "still revoked from memory");
    let o = cli(&gate, &["revoke", "--user", "mallory"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is not valid") && err.contains("move it away"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{ broken");

    std::fs::write(&file, &good).unwrap();
    gate.restart();
    assert_eq!(status(&gate, &a).await, 401);
}

#[test]
fn revoke_needs_exactly_one_target() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        "domain: app.example.com\nupstream:\n  url: http://127.0.0.1:3000\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("STATE_DIRECTORY", dir.path())
            .output()
            .unwrap()
    };
    for args in [
        &["revoke"][..],
        &["revoke", "--all", "--user", "alice"],
        &["revoke", "--user", " "],
        &["revoke", "--session"],
    ] {
        let o = run(args);
        assert!(!o.status.success(), "{args:?}");
        assert!(!String::from_utf8_lossy(&o.stderr).is_empty(), "{args:?}");
    }
    assert!(
        !dir.path().join("revocations.json").exists(),
        "nothing stored"
    );
    let o = run(&["revocations"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "no revocations in force\n"
    );
}
