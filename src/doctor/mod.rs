//! `portcullis doctor`: every check of a domain's setup that needs no user
//! (configuration and key files, the IdP, the clock, the upstream, the
//! running instance and its unit, cookie sizes, the nginx site), each with
//! ok / warn / fail and one line saying how to fix it. Exit code 1 when any
//! check fails; `--json` for monitoring.
//!
//! The checks live in one module per thing checked; this module runs them
//! in order and renders the report. Nothing here changes any file.

mod files;
mod idp;
pub mod nginx;
mod reach;
mod size;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;

/// `portcullis doctor NAME` or `portcullis --config FILE doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The instance name: reads CONFIG_DIR/NAME.yaml and checks the unit
    /// `portcullis@NAME`. Without it, `--config FILE` is checked.
    pub name: Option<String>,
    /// Where `NAME.yaml` lives.
    #[arg(long, value_name = "DIR", default_value = "/etc/portcullis")]
    pub config_dir: PathBuf,
    /// The user the service runs as, whose access to key files is checked
    /// (the unit's `User=`). Defaults to `portcullis` when doctor runs as
    /// root and that user exists, else the user running doctor.
    #[arg(long, value_name = "USER")]
    pub service_user: Option<String>,
    /// Check the nginx configuration rooted at this file (`nginx -T -c
    /// FILE`) instead of the system's (`nginx -T`).
    #[arg(long, value_name = "FILE")]
    pub nginx_conf: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's outcome: what was found and, unless ok, how to fix it.
#[derive(Debug, Clone, Serialize)]
#[allow(
    clippy::struct_field_names,
    reason = "`check` is the key of the `--json` report"
)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(check: &'static str, message: impl Into<String>) -> Check {
        Check {
            check,
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }
    pub fn warn(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            check,
            status: Status::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn fail(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            check,
            status: Status::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub config: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn text(&self) -> String {
        let mut out = format!("portcullis doctor: {}\n", self.config);
        for c in &self.checks {
            out.push_str(&format!(
                "{} {}: {}\n",
                c.status.label(),
                c.check,
                c.message
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("     fix: {fix}\n"));
            }
        }
        let (w, f) = (self.count(Status::Warn), self.count(Status::Fail));
        out.push_str(&match (w, f) {
            (0, 0) => "all checks passed\n".to_string(),
            (w, 0) => format!("no failures, {w} warning(s)\n"),
            (w, f) => format!("{f} check(s) failed, {w} warning(s)\n"),
        });
        out
    }

    fn count(&self, s: Status) -> usize {
        self.checks.iter().filter(|c| c.status == s).count()
    }
}

/// Which file `doctor` reads: `NAME` wins over `--config`.
fn config_path(args: &Args, global: Option<&Path>) -> anyhow::Result<PathBuf> {
    match (&args.name, global) {
        (Some(name), _) => {
            crate::instance::check_name(name)?;
            Ok(crate::instance::config_file(&args.config_dir, name))
        }
        (None, Some(p)) => Ok(p.to_path_buf()),
        (None, None) => anyhow::bail!(
            "say which domain to check: `portcullis doctor NAME` (reads /etc/portcullis/NAME.yaml) or `portcullis --config FILE doctor`"
        ),
    }
}

/// Runs every check and prints the report; exit 1 when one failed.
pub fn command(args: &Args, global: Option<&Path>) -> anyhow::Result<std::process::ExitCode> {
    let path = config_path(args, global)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run(args, &path));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

pub async fn run(args: &Args, path: &Path) -> Report {
    let mut checks = Vec::new();
    let config = match crate::config::load(Some(path)) {
        Ok(c) => Some(c),
        Err(e) => {
            checks.push(Check::fail(
                "config",
                format!("{} is not valid: {e}", path.display()),
                format!(
                    "fix the fields named above, then run `portcullis --config {} check-config`",
                    path.display()
                ),
            ));
            None
        }
    };
    if let Some(config) = &config {
        checks.extend(checks_for(args, config).await);
    }
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    Report {
        config: path.display().to_string(),
        ok,
        checks,
    }
}

async fn checks_for(args: &Args, config: &Config) -> Vec<Check> {
    let mut checks = vec![files::config_builds(config)];
    let user = files::ServiceUser::resolve(args.service_user.as_deref());
    checks.extend(files::readable(config, &user));
    checks.extend(idp::checks(config).await);
    checks.push(reach::upstream(config).await);
    checks.push(reach::instance(config, args.name.as_deref()).await);
    if let Some(name) = &args.name
        && let Some(c) = reach::unit(name)
    {
        checks.push(c);
    }
    checks.push(size::cookie(config));
    checks.extend(nginx::checks(config, args.nginx_conf.as_deref()));
    checks
}

/// The checks `check-config` runs besides parsing: the key ring and SP key
/// pair load, and every file the service reads is readable by the service
/// user (issue: "the same checks as start ... `check-config` runs these
/// too"). Prints failures and warnings to stderr; `false` when one failed.
pub fn check_config_files(config: &Config, service_user: Option<&str>) -> bool {
    let user = files::ServiceUser::resolve(service_user);
    let mut checks = vec![files::config_builds(config)];
    checks.extend(files::readable(config, &user));
    let mut ok = true;
    for c in checks.iter().filter(|c| c.status != Status::Ok) {
        ok &= c.status != Status::Fail;
        eprintln!("portcullis: {}: {}", c.status.label(), c.message);
        if let Some(fix) = &c.fix {
            eprintln!("    fix: {fix}");
        }
    }
    ok
}

/// The IdP checks alone, for `portcullis new`.
pub async fn idp_checks(config: &Config) -> Vec<Check> {
    idp::checks(config).await
}
