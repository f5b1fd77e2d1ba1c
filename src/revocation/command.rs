//! `portcullis revoke` and `portcullis revocations`: the operator's side of
//! the list. They change the file that running instances watch.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::entry::{Entry, Source, Target};
use super::store;

/// What `portcullis revoke` ends.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RevokeArgs {
    /// Every session of this user (the name sent in the user header) that
    /// signed in before now.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Every session of this IdP subject (OIDC `sub`, SAML NameID) that
    /// signed in before now.
    #[arg(long, value_name = "SUB")]
    pub subject: Option<String>,
    /// One session, by its id (the `sid` the audit log names).
    #[arg(long, value_name = "SID")]
    pub session: Option<String>,
    /// Every session that signed in before now: everybody signs in again,
    /// without a key change.
    #[arg(long)]
    pub all: bool,
}

impl RevokeArgs {
    fn target(self) -> anyhow::Result<Target> {
        let non_empty = |flag: &str, v: String| {
            anyhow::ensure!(!v.trim().is_empty(), "--{flag} needs a value");
            Ok(v)
        };
        Ok(match self {
            RevokeArgs { user: Some(u), .. } => Target::User(non_empty("user", u)?),
            RevokeArgs {
                subject: Some(s), ..
            } => Target::Subject(non_empty("subject", s)?),
            RevokeArgs {
                session: Some(s), ..
            } => Target::Session(non_empty("session", s)?),
            _ => Target::All,
        })
    }
}

/// The operator who ran the command, for the audit log.
fn operator() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .map_or_else(
            || format!("operator:uid {}", rustix::process::getuid().as_raw()),
            |u| format!("operator:{u}"),
        )
}

pub fn revoke(config: Option<&Path>, args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(config)?;
    let lifetime = config.session.lifetime.as_secs();
    let entry = Entry {
        target: args.target()?,
        at_ms: crate::clock::now_ms(),
        source: Source::Cli,
        by: operator(),
    };
    let file = &config.revocation.file;
    store::update(file, |list| {
        store::merge(list, std::slice::from_ref(&entry), lifetime);
    })
    .with_context(|| format!("revocation not stored in {}", file.display()))?;
    let what = match &entry.target {
        Target::All => "every session that signed in before now".to_string(),
        t => format!("{} {}", t.kind(), t.value()),
    };
    println!(
        "revoked {what}; running instances apply it within a few seconds (kept in {} until {})",
        file.display(),
        utc(entry.expires(lifetime))
    );
    Ok(ExitCode::SUCCESS)
}

pub fn list(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(config)?;
    let lifetime = config.session.lifetime.as_secs();
    let now = crate::clock::now_ms();
    let (entries, _) = store::load(&config.revocation.file)?;
    let live: Vec<&Entry> = entries
        .iter()
        .filter(|e| !e.expired(lifetime, now))
        .collect();
    if live.is_empty() {
        println!("no revocations in force");
        return Ok(ExitCode::SUCCESS);
    }
    println!("KIND\tVALUE\tREVOKED\tUNTIL\tSOURCE\tBY");
    for e in live {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            e.target.kind(),
            e.target.value(),
            utc(e.at_ms / 1000),
            utc(e.expires(lifetime)),
            e.source.metric_label(),
            e.by
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn utc(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || "-".into(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}
