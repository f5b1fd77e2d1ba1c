//! The configuration builds as `run` builds it (`assemble::offline_parts`,
//! plus the key ring and SP key pair when present), and every file the
//! service reads (key ring, SP key pair, CA and metadata files) is readable
//! by the user the service runs as, and secret files by nobody else.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Check;
use crate::config::Config;
use crate::config::saml::MetadataSource;

/// The user whose access is checked.
pub enum ServiceUser {
    /// The user running doctor: opening the file answers the question.
    Current,
    Other {
        name: String,
        uid: u32,
        gids: Vec<u32>,
    },
    /// Named with `--service-user` but not in /etc/passwd.
    Unknown(String),
}

impl ServiceUser {
    pub fn resolve(named: Option<&str>) -> ServiceUser {
        let me = rustix::process::getuid().as_raw();
        let wanted = match named {
            Some(n) => n.to_string(),
            // The package's unit runs as `portcullis`; root can read
            // anything, so checking as root would prove nothing.
            None if me == 0 && lookup("portcullis").is_some() => "portcullis".into(),
            None => return ServiceUser::Current,
        };
        match lookup(&wanted) {
            Some((uid, _)) if uid == me => ServiceUser::Current,
            Some((uid, gid)) => ServiceUser::Other {
                gids: groups_of(&wanted, gid),
                name: wanted,
                uid,
            },
            None => ServiceUser::Unknown(wanted),
        }
    }

    fn label(&self) -> String {
        match self {
            ServiceUser::Current => "the current user".into(),
            ServiceUser::Other { name, .. } | ServiceUser::Unknown(name) => {
                format!("user `{name}`")
            }
        }
    }
}

/// `(uid, primary gid)` from /etc/passwd.
fn lookup(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn groups_of(name: &str, primary: u32) -> Vec<u32> {
    let mut gids = vec![primary];
    if let Ok(group) = std::fs::read_to_string("/etc/group") {
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() > 3
                && f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse()
            {
                gids.push(g);
            }
        }
    }
    gids
}

/// What `run` builds before it serves, minus the IdP (checked apart).
pub fn config_builds(config: &Config) -> Check {
    if let Err(e) = crate::assemble::offline_parts(config) {
        return Check::fail(
            "config",
            format!("the upstream client cannot be built: {e}"),
            "fix upstream.ca_file / upstream.url as the message says",
        );
    }
    if config.session.key_file.exists()
        && let Err(e) = crate::session::KeyRing::load(&config.session.key_file)
    {
        return Check::fail(
            "config",
            format!("the session key ring cannot be loaded: {e}"),
            format!(
                "restore the file from a backup, or write a new one with `portcullis keygen --out {}` (signs everyone out)",
                config.session.key_file.display()
            ),
        );
    }
    if let Some(saml) = &config.saml
        && saml.sp_key_file.exists()
        && saml.sp_cert_file.exists()
        && let Err(e) = crate::idp::saml::sp_keys::SpKeys::load_or_create(
            &saml.sp_key_file,
            &saml.sp_cert_file,
            &saml.sp_entity_id,
        )
    {
        return Check::fail(
            "config",
            format!("the SAML SP key pair cannot be loaded: {e}"),
            "restore both files, or remove both to have a new pair made (then register the new SP metadata at the IdP)",
        );
    }
    Check::ok(
        "config",
        format!(
            "valid: {} -> {}, login {}",
            config.public_origin(),
            config.upstream.url,
            if config.oidc.is_some() {
                "OpenID Connect"
            } else if config.saml.is_some() {
                "SAML"
            } else {
                "none (no IdP configured)"
            }
        ),
    )
}

struct Wanted {
    field: &'static str,
    path: PathBuf,
    secret: bool,
    /// Made by Portcullis at first start when missing.
    created: bool,
}

pub fn readable(config: &Config, user: &ServiceUser) -> Vec<Check> {
    let mut wanted = vec![Wanted {
        field: "session.key_file",
        path: config.session.key_file.clone(),
        secret: true,
        created: true,
    }];
    if let Some(ca) = &config.upstream.ca_file {
        wanted.push(Wanted {
            field: "upstream.ca_file",
            path: ca.clone(),
            secret: false,
            created: false,
        });
    }
    if let Some(s) = &config.saml {
        wanted.push(Wanted {
            field: "saml.sp_key_file",
            path: s.sp_key_file.clone(),
            secret: true,
            created: true,
        });
        wanted.push(Wanted {
            field: "saml.sp_cert_file",
            path: s.sp_cert_file.clone(),
            secret: false,
            created: true,
        });
        if let MetadataSource::File(f) = &s.metadata {
            wanted.push(Wanted {
                field: "saml.idp_metadata_file",
                path: f.clone(),
                secret: false,
                created: false,
            });
        }
        if let Some(f) = &s.metadata_signing_cert_file {
            wanted.push(Wanted {
                field: "saml.metadata_signing_cert_file",
                path: f.clone(),
                secret: false,
                created: false,
            });
        }
    }
    wanted.iter().map(|w| one(w, user)).collect()
}

fn one(w: &Wanted, user: &ServiceUser) -> Check {
    let p = w.path.display();
    let meta = match std::fs::metadata(&w.path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && w.created => {
            return Check::ok(
                "files",
                format!(
                    "{}: {p} does not exist yet; Portcullis creates it at first start",
                    w.field
                ),
            );
        }
        Err(e) => {
            return Check::fail(
                "files",
                format!("{}: cannot read {p}: {e}", w.field),
                format!("check the path in `{}`", w.field),
            );
        }
    };
    if let Err(why) = may_read(&w.path, &meta, user) {
        return Check::fail(
            "files",
            format!("{}: {} cannot read {p}: {why}", w.field, user.label()),
            match user {
                ServiceUser::Other { name, .. } | ServiceUser::Unknown(name) => format!(
                    "chown {name}: {p} && chmod {} {p} (and let {name} enter its directories)",
                    if w.secret { "0600" } else { "0644" }
                ),
                ServiceUser::Current => format!("give the service user read access to {p}"),
            },
        );
    }
    if w.secret && meta.mode() & 0o077 != 0 {
        return Check::warn(
            "files",
            format!(
                "{}: {p} is readable by others (mode {:04o}); it holds secret keys",
                w.field,
                meta.mode() & 0o7777
            ),
            format!("chmod 0600 {p}"),
        );
    }
    Check::ok(
        "files",
        format!("{}: {p} is readable by {}", w.field, user.label()),
    )
}

fn may_read(path: &Path, meta: &std::fs::Metadata, user: &ServiceUser) -> Result<(), String> {
    match user {
        ServiceUser::Current => std::fs::File::open(path)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        ServiceUser::Unknown(name) => Err(format!(
            "there is no user `{name}` on this machine (install the package, or pass --service-user)"
        )),
        ServiceUser::Other { uid, gids, .. } => {
            let allowed = |m: &std::fs::Metadata, bit: u32| {
                let mode = m.mode();
                if m.uid() == *uid {
                    mode & (bit << 6) != 0
                } else if gids.contains(&m.gid()) {
                    mode & (bit << 3) != 0
                } else {
                    mode & bit != 0
                }
            };
            let abs = std::path::absolute(path).map_err(|e| e.to_string())?;
            for dir in abs.ancestors().skip(1) {
                let m = std::fs::metadata(dir).map_err(|e| e.to_string())?;
                if !allowed(&m, 0o1) {
                    return Err(format!(
                        "it may not enter {} (owner uid {}, mode {:04o})",
                        dir.display(),
                        m.uid(),
                        m.mode() & 0o7777
                    ));
                }
            }
            if allowed(meta, 0o4) {
                Ok(())
            } else {
                Err(format!(
                    "owner uid {}, group gid {}, mode {:04o}",
                    meta.uid(),
                    meta.gid(),
                    meta.mode() & 0o7777
                ))
            }
        }
    }
}
