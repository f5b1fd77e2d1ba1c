//! Helpers of the revocation tests: sessions minted like logins, the
//! operator's `portcullis revoke`, the answers and metrics of a gate.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use portcullis::identity::Identity;

use super::{Gate, bin, client, get_text, mint_cookie};

/// A session cookie for `id` and its session id, minted like a login.
pub fn login(gate: &Gate, id: &Identity) -> (String, String) {
    let mut sid = None;
    let cookie = mint_cookie(&gate.config_yaml, &gate.key_file(), id, |c| {
        sid.clone_from(&c.sid);
    });
    (cookie, sid.expect("every new session has an id"))
}

pub fn cli(gate: &Gate, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(gate.dir.path().join("gate.yaml"))
        .env("STATE_DIRECTORY", gate.dir.path())
        .env("USER", "ops-anna")
        .output()
        .unwrap()
}

pub fn revoke(gate: &Gate, args: &[&str]) {
    let before = gate.events("revoked").len();
    let mut all = vec!["revoke"];
    all.extend_from_slice(args);
    let o = cli(gate, &all);
    assert!(
        o.status.success(),
        "revoke {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    wait_for_revoked_events(gate, before + 1);
}

/// The instance audits each revocation when it applies it: wait for that
/// event, the moment from which it refuses the sessions.
pub fn wait_for_revoked_events(gate: &Gate, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gate.events("revoked").len() < n {
        assert!(
            Instant::now() < deadline,
            "the running instance did not pick up the revocation; log:\n{}",
            gate.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub async fn status(gate: &Gate, cookie: &str) -> u16 {
    client()
        .get(gate.url("/app/page"))
        .header("cookie", cookie)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub async fn metric(gate: &Gate, name: &str) -> String {
    let text = get_text(&client(), gate.url("/.portcullis/metrics")).await;
    text.lines().find(|l| l.starts_with(name)).map_or_else(
        || panic!("no metric {name} in:\n{text}"),
        |l| l.rsplit(' ').next().unwrap().to_string(),
    )
}
