//! `portcullis keys …`: looking after the session key ring beside
//! `keygen --rotate`.
//!
//! A key signs new sessions (and renewals) while it is active. Once a newer
//! key takes over, the old one only verifies sessions it signed earlier,
//! and those end at most one session lifetime later. So a key may go when
//! the key that replaced it is older than the longest session lifetime of
//! every instance sharing the file: that is what `keys prune` checks.
//! `keys prune --max-age 0s` right after `keygen --rotate` drops every old
//! key at once, which logs everybody out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use crate::session::{KeyRing, KeyRingError};

/// One key that prune would drop, or kept, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}

/// When `kid` stopped signing: the creation of the next newer key. `None`
/// for the newest key (it is, or may again be, the active one).
fn retired_at(ring: &KeyRing, kid: &str) -> Option<u64> {
    let key = ring.get(kid)?;
    ring.keys()
        .iter()
        .filter(|k| k.kid != kid && k.created >= key.created)
        .map(|k| k.created)
        .min()
}

/// Drops inactive keys retired more than `max_age` (plus a minute of clock
/// skew between instances) before `now`.
pub fn prune(ring: &mut KeyRing, max_age: Duration, now: u64) -> PruneReport {
    let active = ring.active().kid.clone();
    let limit = max_age.as_secs().saturating_add(60);
    // With `--max-age 0s` the caller asks for everything old to go now.
    let limit = if max_age.is_zero() { 0 } else { limit };
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let kids: Vec<String> = ring.keys().iter().map(|k| k.kid.clone()).collect();
    for kid in kids {
        let expired =
            kid != active && retired_at(ring, &kid).is_some_and(|t| t.saturating_add(limit) <= now);
        if expired {
            removed.push(kid);
        } else {
            kept.push(kid);
        }
    }
    for kid in &removed {
        ring.remove_inactive(kid);
    }
    PruneReport { removed, kept }
}

/// `keys prune` on a file: writes it back only when something changed.
pub fn prune_file(
    path: &Path,
    max_age: Duration,
    dry_run: bool,
) -> Result<PruneReport, KeyRingError> {
    let mut ring = KeyRing::load(path)?;
    let report = prune(&mut ring, max_age, crate::clock::now());
    if !dry_run && !report.removed.is_empty() {
        ring.write(path)?;
    }
    Ok(report)
}

/// One line per key: id, created (unix seconds, and age), active or not.
pub fn list(path: &Path) -> Result<String, KeyRingError> {
    let ring = KeyRing::load(path)?;
    let now = crate::clock::now();
    let active = ring.active().kid.clone();
    let mut out = String::new();
    for k in ring.keys() {
        let age = humantime::format_duration(Duration::from_secs(now.saturating_sub(k.created)));
        out.push_str(&format!(
            "{}  created {} ({age} ago){}\n",
            k.kid,
            k.created,
            if k.kid == active { "  active" } else { "" }
        ));
    }
    Ok(out)
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Show the keys: id, creation time, which one is active.
    List {
        /// Key ring file; defaults to the configured `session.key_file`.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Drop keys that no unexpired session can still be signed with: those
    /// replaced longer ago than the session lifetime. Reload every instance
    /// sharing the file afterwards.
    Prune {
        /// Key ring file; defaults to the configured `session.key_file`.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The longest session lifetime of all instances sharing the key
        /// file (e.g. `24h`); defaults to this configuration's
        /// `session.lifetime`. `0s` drops every inactive key: everyone
        /// signed in with them is logged out.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        max_age: Option<std::time::Duration>,
        /// Only say what would be dropped.
        #[arg(long)]
        dry_run: bool,
    },
    /// The identity-assertion signing keys (`assertion.key_file`): list
    /// them, add one (published at once, signing after
    /// `assertion.publish_ahead`), or drop those no unexpired assertion can
    /// have been signed with.
    Assertion {
        #[command(subcommand)]
        action: AssertionKeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AssertionKeysCommand {
    /// Show the keys: id, algorithm, creation time, which one signs now.
    List {
        /// Key file; defaults to the configured `assertion.key_file`.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Add a new key; reload every instance sharing the file.
    Rotate {
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// ES256, EdDSA or RS256; defaults to `assertion.algorithm`.
        #[arg(long, value_name = "ALG")]
        algorithm: Option<String>,
    },
    /// Drop keys replaced longer ago than the assertion lifetime.
    Prune {
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// `portcullis keys assertion …`.
fn assertion_command(
    config: Option<&std::path::Path>,
    action: AssertionKeysCommand,
) -> anyhow::Result<()> {
    use crate::assertion::AssertionKeys;
    use crate::config::AssertionAlg;
    let raw_file = match &action {
        AssertionKeysCommand::List { file }
        | AssertionKeysCommand::Rotate { file, .. }
        | AssertionKeysCommand::Prune { file } => file.clone(),
    };
    // Without a configuration (only --file), the defaults of the
    // `assertion:` section apply.
    let c = match (&raw_file, config) {
        (Some(_), None) => None,
        _ => Some(
            crate::config::load(config)
                .context("keys assertion needs the configuration for the key file, or --file")?,
        ),
    };
    let settings = c.as_ref().and_then(|c| c.assertion.clone());
    let path = raw_file
        .or_else(|| settings.as_ref().map(|s| s.key_file.clone()))
        .or_else(|| c.as_ref().map(|c| c.state_dir.join("assertion-keys.json")))
        .context("give --file")?;
    let publish_ahead = settings
        .as_ref()
        .map_or(Duration::from_secs(600), |s| s.publish_ahead);
    let lifetime = settings
        .as_ref()
        .map_or(Duration::from_secs(300), |s| s.lifetime);
    let now = crate::clock::now();
    match action {
        AssertionKeysCommand::List { .. } => {
            let keys = AssertionKeys::load(&path)?;
            let signer = keys.signer(now, publish_ahead).kid.clone();
            for k in keys.keys() {
                let age =
                    humantime::format_duration(Duration::from_secs(now.saturating_sub(k.created)));
                println!(
                    "{}  {}  created {} ({age} ago){}",
                    k.kid,
                    k.alg.as_str(),
                    k.created,
                    if k.kid == signer { "  signing" } else { "" }
                );
            }
        }
        AssertionKeysCommand::Rotate { algorithm, .. } => {
            let alg = match algorithm.as_deref() {
                None => settings
                    .as_ref()
                    .map_or(AssertionAlg::ES256, |s| s.algorithm),
                Some("ES256") => AssertionAlg::ES256,
                Some("EdDSA") => AssertionAlg::EdDSA,
                Some("RS256") => AssertionAlg::RS256,
                Some(other) => {
                    anyhow::bail!("--algorithm {other} is not one of ES256, EdDSA, RS256")
                }
            };
            let mut keys = AssertionKeys::load_or_create(&path, alg)?;
            let kid = keys.add(alg, now)?.kid.clone();
            keys.write(&path)?;
            println!(
                "added {} key {kid} to {}; it is published on reload and signs {} later. Reload every instance that shares this file: systemctl reload 'portcullis@*'",
                alg.as_str(),
                path.display(),
                humantime::format_duration(publish_ahead)
            );
        }
        AssertionKeysCommand::Prune { .. } => {
            let mut keys = AssertionKeys::load(&path)?;
            let dropped = keys.prune(now, publish_ahead, lifetime);
            if dropped.is_empty() {
                println!("nothing to drop in {}", path.display());
            } else {
                keys.write(&path)?;
                println!(
                    "dropped {} key(s) from {}: {}; reload every instance that shares this file",
                    dropped.len(),
                    path.display(),
                    dropped.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Runs `portcullis keys …`.
pub fn command(
    config: Option<&std::path::Path>,
    action: KeysCommand,
) -> anyhow::Result<std::process::ExitCode> {
    match action {
        KeysCommand::Assertion { action } => assertion_command(config, action)?,
        KeysCommand::List { file } => {
            let path = match file {
                Some(p) => p,
                None => crate::config::load(config)?.session.key_file,
            };
            print!("{}", list(&path)?);
        }
        KeysCommand::Prune {
            file,
            max_age,
            dry_run,
        } => {
            let (path, max_age) = match (file, max_age) {
                (Some(p), Some(m)) => (p, m),
                (file, max_age) => {
                    let c = crate::config::load(config).context(
                        "keys prune needs the configuration for the key file and session lifetime, or both --file and --max-age",
                    )?;
                    (
                        file.unwrap_or(c.session.key_file),
                        max_age.unwrap_or(c.session.lifetime),
                    )
                }
            };
            let report = prune_file(&path, max_age, dry_run)?;
            let verb = if dry_run { "would drop" } else { "dropped" };
            if report.removed.is_empty() {
                println!(
                    "nothing to drop in {}: every key may still verify a session (max age {})",
                    path.display(),
                    humantime::format_duration(max_age)
                );
            } else {
                println!(
                    "{verb} {} key(s) from {}: {}; kept {}",
                    report.removed.len(),
                    path.display(),
                    report.removed.join(", "),
                    report.kept.join(", ")
                );
                if !dry_run {
                    println!(
                        "reload every instance that shares this file: systemctl reload 'portcullis@*'"
                    );
                }
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring whose keys were created at the given times; the last active.
    fn ring_at(times: &[u64]) -> KeyRing {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let mut ring = KeyRing::generate();
        for _ in 1..times.len() {
            ring.rotate();
        }
        ring.write(&path).unwrap();
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for (i, t) in times.iter().enumerate() {
            v["keys"][i]["created"] = (*t).into();
        }
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        KeyRing::load(&path).unwrap()
    }

    const H: u64 = 3600;

    #[test]
    fn a_key_stays_one_lifetime_after_it_was_replaced() {
        let now = 1_000_000;
        // Old key from long ago, replaced one hour ago: still needed for
        // 12h sessions, even though it is itself very old.
        let mut ring = ring_at(&[now - 100 * H, now - H]);
        let r = prune(&mut ring, Duration::from_secs(12 * H), now);
        assert!(r.removed.is_empty(), "{r:?}");
        // Replaced 13 hours ago: sessions it signed are over.
        let mut ring = ring_at(&[now - 100 * H, now - 13 * H]);
        let old = ring.keys()[0].kid.clone();
        let r = prune(&mut ring, Duration::from_secs(12 * H), now);
        assert_eq!(r.removed, vec![old]);
        assert_eq!(ring.keys().len(), 1);
    }

    #[test]
    fn middle_keys_use_their_successor_and_active_always_stays() {
        let now = 1_000_000;
        let mut ring = ring_at(&[now - 50 * H, now - 30 * H, now - 2 * H]);
        let kids: Vec<String> = ring.keys().iter().map(|k| k.kid.clone()).collect();
        let r = prune(&mut ring, Duration::from_secs(12 * H), now);
        // k0 retired 30h ago: goes; k1 retired 2h ago: stays.
        assert_eq!(r.removed, vec![kids[0].clone()]);
        assert_eq!(r.kept, vec![kids[1].clone(), kids[2].clone()]);
        // Zero: everything but the active key goes (log everyone out).
        let r = prune(&mut ring, Duration::ZERO, now);
        assert_eq!(r.removed, vec![kids[1].clone()]);
        assert_eq!(ring.active().kid, kids[2]);
    }
}
