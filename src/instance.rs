//! Instance names: `portcullis@NAME` serves the domain configured in
//! `/etc/portcullis/NAME.yaml` and keeps its state in
//! `/var/lib/portcullis/NAME` (see systemd/portcullis@.service).

use std::path::{Path, PathBuf};

/// Where the package keeps the configuration files.
pub const CONFIG_DIR: &str = "/etc/portcullis";
/// The state directory systemd creates for each instance.
pub const STATE_ROOT: &str = "/var/lib/portcullis";

/// A name that makes a safe file name and systemd instance name.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with(['.', '-']);
    anyhow::ensure!(
        ok,
        "`{name}` is not a usable instance name: use letters, digits, `-`, `_` or `.` (at most 64, not starting with `.` or `-`), e.g. `grafana`"
    );
    Ok(())
}

pub fn config_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.yaml"))
}

pub fn unit(name: &str) -> String {
    format!("portcullis@{name}")
}
