//! The command line: `run` (default), `check-config`, `keygen`, `keys`,
//! `hash-token`, `new`, `doctor`, `revoke`, `revocations`, `version`.

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
    /// Validate the configuration, the key ring and SP key pair, and that
    /// the service user can read every file the service reads; exit 0 when
    /// valid, 1 otherwise.
    CheckConfig {
        /// The user the service runs as (the unit's `User=`). Defaults to
        /// `portcullis` when run as root and that user exists, else the
        /// current user.
        #[arg(long, value_name = "USER")]
        service_user: Option<String>,
    },
    /// Write a new session key ring, or add a key to it with --rotate.
    Keygen {
        /// Key ring file; defaults to the configured `session.key_file`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Add a new active key and keep the old ones for verification.
        #[arg(long)]
        rotate: bool,
    },
    /// Print the SAML SP metadata to register at the IdP (creates the SP
    /// key pair in the state directory if it does not exist yet).
    SpMetadata,
    /// Look after the session key ring: list keys, prune retired ones.
    Keys {
        #[command(subcommand)]
        action: crate::keys_command::KeysCommand,
    },
    /// Print the SHA-256 of a token read from standard input, for
    /// `passthrough.tokens[].sha256` and `scim.tokens[].sha256`.
    HashToken {
        /// Make a new random token and print it with its hash.
        #[arg(long)]
        generate: bool,
    },
    /// End sessions now: one (--session), a user's (--user, --subject) or
    /// everybody's (--all). Running instances pick it up within seconds.
    Revoke {
        #[command(flatten)]
        what: crate::revocation::command::RevokeArgs,
    },
    /// List the revocations in force.
    Revocations,
    /// Check everything about a domain that needs no user (config, key
    /// files, IdP, clock, upstream, instance, cookie size, nginx site);
    /// exit 0 when nothing fails, 1 otherwise.
    Doctor(crate::doctor::Args),
    /// Write a new domain: NAME.yaml, its keys, an nginx snippet, and print
    /// what to register at the IdP.
    New(crate::new::Args),
    /// Print the version.
    Version,
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
            // Requests are served on threads of their own, one per core
            // (`connections::serve`); this runtime runs start-up, reloads,
            // the background refreshes and the metrics listener.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crate::run::run(config, cli.config.clone()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { service_user } => match crate::config::load(cli.config.as_deref()) {
            Ok(c) => {
                if let Err(e) = crate::assemble::offline_parts(&c) {
                    eprintln!("portcullis: {e}");
                    return Ok(ExitCode::FAILURE);
                }
                if !crate::doctor::check_config_files(&c, service_user.as_deref()) {
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
        Command::SpMetadata => {
            let config = crate::config::load(cli.config.as_deref())?;
            let saml = config.saml.as_ref().context(
                "the configuration has no `saml:` section; add one (see config-examples/) to print SAML SP metadata",
            )?;
            let keys = crate::idp::saml::sp_keys::SpKeys::load_or_create(
                &saml.sp_key_file,
                &saml.sp_cert_file,
                &saml.sp_entity_id,
            )?;
            println!("{}", crate::idp::saml::sp_metadata::render(saml, &keys)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke { what } => crate::revocation::command::revoke(cli.config.as_deref(), what),
        Command::Revocations => crate::revocation::command::list(cli.config.as_deref()),
        Command::Keys { action } => crate::keys_command::command(cli.config.as_deref(), action),
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
        Command::New(args) => crate::new::command(&args),
        Command::Doctor(args) => crate::doctor::command(&args, cli.config.as_deref()),
        Command::Version => {
            println!("portcullis {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}
