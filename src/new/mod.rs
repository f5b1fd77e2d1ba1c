//! `portcullis new NAME`: everything one domain needs, and nothing else —
//! `NAME.yaml` (access rules as commented examples), the session key ring
//! and, for SAML, the SP key pair (owned by the service user, mode 0600),
//! an nginx site snippet next to the config (never enabled), and what to
//! register at the IdP. When the IdP is reachable its discovery document or
//! metadata is checked on the spot (the same checks as `doctor`).
//!
//! Flag values are checked before anything is written; each error names
//! its flag.

mod files;
mod render;

use std::path::{Path, PathBuf};

use anyhow::Context;
use url::Url;

/// `portcullis new NAME --domain … --upstream … (--oidc … --client-id … | --saml …)`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("idp").required(true).args(["oidc", "saml"])))]
pub struct Args {
    /// The instance name (`portcullis@NAME`, `NAME.yaml`).
    pub name: String,
    /// The public host name of the app, e.g. grafana.example.com.
    #[arg(long, value_name = "HOST")]
    pub domain: String,
    /// Where the app listens, e.g. http://127.0.0.1:3000.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// OpenID Connect: the provider's issuer URL.
    #[arg(long, value_name = "ISSUER", requires = "client_id")]
    pub oidc: Option<String>,
    /// OpenID Connect: the client id registered at the provider.
    #[arg(long, value_name = "ID", requires = "oidc")]
    pub client_id: Option<String>,
    /// OpenID Connect: a file holding the client secret (default:
    /// CONFIG_DIR/NAME.client-secret, which you then write).
    #[arg(long, value_name = "FILE", requires = "oidc")]
    pub client_secret_file: Option<PathBuf>,
    /// SAML 2.0: the IdP's metadata URL, or a metadata file.
    #[arg(long, value_name = "METADATA_URL|FILE")]
    pub saml: Option<String>,
    /// Write an nginx snippet for auth_request (forward-auth) instead of
    /// proxy mode.
    #[arg(long)]
    pub forward_auth: bool,
    /// Overwrite an existing NAME.yaml and snippet (keys are kept).
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_name = "DIR", default_value = crate::instance::CONFIG_DIR)]
    pub config_dir: PathBuf,
    /// Default: /var/lib/portcullis/NAME (the unit's StateDirectory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where Portcullis listens (default: the first port from 4180 up that
    /// no other file in CONFIG_DIR uses).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// The identity provider, checked.
pub enum Idp {
    Oidc {
        issuer: String,
        client_id: String,
        secret_file: PathBuf,
    },
    Saml(SamlMetadata),
}

pub enum SamlMetadata {
    Url(String),
    File(PathBuf),
}

/// Every flag, checked.
pub struct Plan {
    pub name: String,
    pub domain: String,
    pub upstream: Url,
    pub idp: Idp,
    pub forward_auth: bool,
    pub listen: String,
    pub config_file: PathBuf,
    pub nginx_file: PathBuf,
    pub state_dir: PathBuf,
}

/// `grafana.example.com:8443` → the host and the port browsers use; a
/// suffix that is not a port stays in the host (and fails [`valid_host`]).
pub fn host_and_port(domain: &str) -> (&str, Option<u16>) {
    match domain.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(p) => (host, Some(p)),
            Err(_) => (domain, None),
        },
        None => (domain, None),
    }
}

fn valid_host(d: &str) -> bool {
    let labels: Vec<&str> = d.split('.').collect();
    !d.is_empty()
        && d.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn http_url(flag: &str, v: &str) -> anyhow::Result<Url> {
    let u = Url::parse(v).map_err(|e| {
        anyhow::anyhow!(
            "{flag} `{v}` is not a URL ({e}); write it in full, e.g. http://127.0.0.1:3000"
        )
    })?;
    anyhow::ensure!(
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some(),
        "{flag} `{v}` must be an http:// or https:// URL with a host"
    );
    Ok(u)
}

/// The listen ports other instances' files in `dir` already use.
fn used_ports(dir: &Path, except: &Path) -> Vec<u16> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p != except)
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("listen:"))
                .and_then(|v| v.trim().rsplit(':').next()?.parse().ok())
        })
        .collect()
}

impl Plan {
    pub fn from_args(a: &Args) -> anyhow::Result<Plan> {
        crate::instance::check_name(&a.name)?;
        let domain = a.domain.trim().to_ascii_lowercase();
        let (host, port) = host_and_port(&domain);
        anyhow::ensure!(
            valid_host(host) && port != Some(0),
            "--domain `{}` is not a host name: give the name users type, without scheme or path, e.g. grafana.example.com (with :PORT only when browsers use one other than 443, e.g. grafana.example.com:8443)",
            a.domain
        );
        let upstream = http_url("--upstream", &a.upstream)?;
        let config_file = crate::instance::config_file(&a.config_dir, &a.name);
        let idp = match (&a.oidc, &a.saml) {
            (Some(issuer), None) => {
                let u = http_url("--oidc", issuer)?;
                anyhow::ensure!(
                    u.scheme() == "https"
                        || matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
                    "--oidc `{issuer}` must be https:// (plain http only for a provider on this machine)"
                );
                let client_id = a.client_id.clone().unwrap_or_default();
                anyhow::ensure!(
                    !client_id.trim().is_empty(),
                    "--client-id is empty: give the client id registered at the provider"
                );
                Idp::Oidc {
                    issuer: issuer.trim().to_string(),
                    client_id,
                    secret_file: a
                        .client_secret_file
                        .clone()
                        .unwrap_or_else(|| a.config_dir.join(format!("{}.client-secret", a.name))),
                }
            }
            (None, Some(m)) if m.starts_with("http://") || m.starts_with("https://") => {
                http_url("--saml", m)?;
                Idp::Saml(SamlMetadata::Url(m.clone()))
            }
            (None, Some(m)) => {
                let p = PathBuf::from(m);
                anyhow::ensure!(
                    p.is_file(),
                    "--saml `{m}` is neither an http(s):// metadata URL nor a readable file"
                );
                Idp::Saml(SamlMetadata::File(
                    std::path::absolute(&p).context("--saml: cannot resolve the file's path")?,
                ))
            }
            _ => anyhow::bail!("give exactly one of --oidc and --saml"),
        };
        let listen = if let Some(l) = &a.listen {
            crate::listen::ListenAddr::parse(l).map_err(|e| anyhow::anyhow!("--listen {e}"))?;
            l.clone()
        } else {
            let used = used_ports(&a.config_dir, &config_file);
            let port = (4180u16..5000).find(|p| !used.contains(p)).unwrap_or(4180);
            format!("127.0.0.1:{port}")
        };
        Ok(Plan {
            nginx_file: a.config_dir.join(format!("{}.nginx.conf", a.name)),
            state_dir: a
                .state_dir
                .clone()
                .unwrap_or_else(|| Path::new(crate::instance::STATE_ROOT).join(&a.name)),
            name: a.name.clone(),
            domain,
            upstream,
            idp,
            forward_auth: a.forward_auth,
            listen,
            config_file,
        })
    }
}

pub fn command(args: &Args) -> anyhow::Result<std::process::ExitCode> {
    let plan = Plan::from_args(args)?;
    for f in [&plan.config_file, &plan.nginx_file] {
        anyhow::ensure!(
            args.force || !f.exists(),
            "{} exists already; edit it, or pass --force to write it again (session keys are kept)",
            f.display()
        );
    }
    let written = files::write(&plan)?;
    let config = crate::config::load(Some(&plan.config_file));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!("{}", written.text());
    match &config {
        Ok(c) => {
            println!("{}", render::register(&plan, c));
            println!("Checking the identity provider now:");
            for c in rt.block_on(crate::doctor::idp_checks(c)) {
                println!("  {} {}: {}", c.status.label(), c.check, c.message);
                if let Some(fix) = c.fix {
                    println!("       fix: {fix}");
                }
            }
        }
        Err(e) => println!("Not ready to start yet: {e}"),
    }
    println!("{}", render::next_steps(&plan, config.is_ok()));
    Ok(std::process::ExitCode::SUCCESS)
}
