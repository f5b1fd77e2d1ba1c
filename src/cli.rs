//! The command line: `run` (default), `check-config`, `keygen`, `keys`,
//! `hash-token`, `version`.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::session::KeyRing;

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A single sign-on gate (OpenID Connect, SAML 2.0) in front of any web app"
)]
pub struct Cli {
    /// The domain's configuration file (e.g. /etc/portcullis/grafana.yaml);
    /// `PORTCULLIS_*` environment variables override its keys.
    #[arg(long, short, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve (the default).
    Run,
    /// Validate the configuration; exit 0 when valid, 1 otherwise.
    CheckConfig,
    /// Write a new session key ring, or add a key to it with --rotate.
    Keygen {
        /// Key ring file; defaults to the configured `session.key_file`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Add a new active key and keep the old ones for verification.
        #[arg(long)]
        rotate: bool,
    },
    /// Look after the session key ring: list keys, prune retired ones.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Print the SHA-256 of a passthrough token read from standard input,
    /// for `passthrough.tokens[].sha256`.
    HashToken {
        /// Make a new random token and print it with its hash.
        #[arg(long)]
        generate: bool,
    },
    /// Print the version.
    Version,
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
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let config = crate::config::load(cli.config.as_deref())?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crate::run::run(config, cli.config.clone()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => match crate::config::load(cli.config.as_deref()) {
            Ok(c) => {
                if let Err(e) = crate::proxy::Upstream::new(&c) {
                    eprintln!("portcullis: {e}");
                    return Ok(ExitCode::FAILURE);
                }
                println!(
                    "configuration OK: {} -> {} ({} passthrough paths, {} tokens)",
                    c.public_origin(),
                    c.upstream.url,
                    c.passthrough.paths.len(),
                    c.passthrough.tokens.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("portcullis: {e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Keygen { out, rotate } => {
            let path = match out {
                Some(p) => p,
                None => crate::config::load(cli.config.as_deref())?.session.key_file,
            };
            if rotate {
                let mut ring = KeyRing::load(&path)?;
                ring.rotate();
                ring.write(&path)?;
                println!(
                    "added key {} to {} (now active)",
                    ring.active().kid,
                    path.display()
                );
            } else {
                let ring = KeyRing::generate();
                ring.write_new(&path)?;
                println!("wrote {} with key {}", path.display(), ring.active().kid);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { action } => keys(cli.config.as_deref(), action),
        Command::HashToken { generate } => {
            let token = if generate {
                let t = crate::random_id(32);
                println!("token:  {t}");
                t
            } else {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("cannot read the token from standard input")?;
                let t = line.trim().to_string();
                anyhow::ensure!(
                    !t.is_empty(),
                    "no token on standard input: run `echo -n TOKEN | portcullis hash-token`"
                );
                t
            };
            let hash = hex::encode(crate::policy::tokens::sha256(&token));
            if generate {
                println!("sha256: {hash}");
            } else {
                println!("{hash}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("portcullis {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn keys(
    config: Option<&std::path::Path>,
    action: KeysCommand,
) -> anyhow::Result<std::process::ExitCode> {
    match action {
        KeysCommand::List { file } => {
            let path = match file {
                Some(p) => p,
                None => crate::config::load(config)?.session.key_file,
            };
            print!("{}", crate::keys::list(&path)?);
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
            let report = crate::keys::prune_file(&path, max_age, dry_run)?;
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
