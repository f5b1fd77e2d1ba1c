//! Files in the state directory that more than one process may change
//! (the revocation list, the SCIM directory): changed only under an
//! exclusive lock on a sibling `.lock` file, and replaced atomically
//! (written beside the file, synced, renamed over it), so a reader never
//! sees half a file and two writers never lose each other's changes.
//! Owns no format: callers read and write their own bytes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The exclusive lock on `path`'s `.lock` sibling; released when dropped.
pub struct Locked {
    path: PathBuf,
    owner: Option<(u32, u32)>,
    _lock: File,
}

/// Who the file should belong to: its current owner, else the state
/// directory's.
fn owner_for(path: &Path) -> Option<(u32, u32)> {
    let m = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => std::fs::metadata(path.parent()?).ok()?,
    };
    Some((m.uid(), m.gid()))
}

pub fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Creates the parent directory if needed and waits for the lock.
pub fn lock(path: &Path) -> std::io::Result<Locked> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(lock_path(path))?;
    let owner = owner_for(path);
    if let Some((uid, gid)) = owner {
        let _ = std::os::unix::fs::fchown(&lock, Some(uid), Some(gid));
    }
    lock.lock()?;
    Ok(Locked {
        path: path.to_path_buf(),
        owner,
        _lock: lock,
    })
}

impl Locked {
    /// Replaces the locked file's content with `bytes` (mode 0600).
    pub fn replace(&self, bytes: &[u8]) -> std::io::Result<()> {
        let path = &self.path;
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp_name);
        let written = (|| {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)?;
            if let Some((uid, gid)) = self.owner {
                // Run as root (`sudo portcullis revoke`), the file still
                // belongs to the service; as anyone else this is a no-op.
                let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
            }
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}
