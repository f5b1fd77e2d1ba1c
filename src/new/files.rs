//! Writing what `portcullis new` makes: the config (root:portcullis 0640),
//! the state directory (portcullis 0700) with the session key ring and the
//! SAML SP key pair (portcullis 0600), the SP metadata file and the nginx
//! snippet (0644). Ownership is given to the service user only when run as
//! root and that user exists (the package creates it).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Idp, Plan, render};
use crate::session::KeyRing;

pub const SERVICE_USER: &str = "portcullis";

pub fn sp_metadata_file(p: &Plan) -> PathBuf {
    p.config_file
        .with_file_name(format!("{}.sp-metadata.xml", p.name))
}

/// What was written, for the report.
pub struct Written {
    lines: Vec<String>,
}

impl Written {
    pub fn text(&self) -> String {
        format!("Wrote:\n{}", self.lines.join("\n"))
    }
}

/// `(uid, gid)` of the service user when we are root and it exists.
fn service_ids() -> Option<(u32, u32)> {
    if rustix::process::getuid().as_raw() != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 3 && f[0] == SERVICE_USER {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

fn set(path: &Path, mode: u32, owner: Option<u32>, group: Option<u32>) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    if owner.is_some() || group.is_some() {
        std::os::unix::fs::chown(path, owner, group)
            .with_context(|| format!("cannot give {} to {SERVICE_USER}", path.display()))?;
    }
    Ok(())
}

fn write_text(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

pub fn write(p: &Plan) -> anyhow::Result<Written> {
    let ids = service_ids();
    let uid = ids.map(|i| i.0);
    let gid = ids.map(|i| i.1);
    let mut lines = Vec::new();
    let dir = p.config_file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::create_dir_all(&p.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            p.state_dir.display()
        )
    })?;
    set(&p.state_dir, 0o700, uid, gid)?;

    // Keys are never replaced, not even with --force: that would sign
    // everyone out (session keys) or break the IdP trust (SP pair).
    let ring = p.state_dir.join("session-keys.json");
    if ring.exists() {
        lines.push(format!("  {} (kept)", ring.display()));
    } else {
        KeyRing::generate().write_new(&ring)?;
        set(&ring, 0o600, uid, gid)?;
        lines.push(format!("  {} (session key ring, 0600)", ring.display()));
    }

    write_text(&p.config_file, &render::yaml(p))?;
    // Root owns it so the service cannot change its own rules.
    set(&p.config_file, 0o640, None, gid)?;
    lines.push(format!("  {} (configuration)", p.config_file.display()));

    if let Idp::Saml(_) = &p.idp {
        let config = crate::config::load(Some(&p.config_file))?;
        let saml = config
            .saml
            .as_ref()
            .context("the written configuration has no saml section")?;
        let existed = saml.sp_key_file.exists();
        let keys = crate::idp::saml::sp_keys::SpKeys::load_or_create(
            &saml.sp_key_file,
            &saml.sp_cert_file,
            &saml.sp_entity_id,
        )?;
        set(&saml.sp_key_file, 0o600, uid, gid)?;
        set(&saml.sp_cert_file, 0o644, uid, gid)?;
        lines.push(format!(
            "  {} and {} (SAML SP key pair{})",
            saml.sp_key_file.display(),
            saml.sp_cert_file.display(),
            if existed { ", kept" } else { "" }
        ));
        let md = sp_metadata_file(p);
        write_text(&md, &crate::idp::saml::sp_metadata::render(saml, &keys)?)?;
        set(&md, 0o644, None, None)?;
        lines.push(format!("  {} (SP metadata for the IdP)", md.display()));
    }

    write_text(&p.nginx_file, &render::nginx(p))?;
    set(&p.nginx_file, 0o644, None, None)?;
    lines.push(format!(
        "  {} (nginx site, not enabled)",
        p.nginx_file.display()
    ));
    Ok(Written { lines })
}
