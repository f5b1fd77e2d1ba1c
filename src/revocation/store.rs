//! The list's file in the state directory: JSON, replaced atomically and
//! changed only under its lock (`crate::state_file`), so `portcullis
//! revoke` and a running instance never lose each other's entries.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entry::Entry;

const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read the revocation list {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the revocation list {path} is not valid ({message}); restore it from a backup, or move it away to start an empty list"
    )]
    Invalid { path: PathBuf, message: String },
    #[error(
        "cannot write the revocation list {path}: {source}; check that the state directory exists and is writable by Portcullis"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the revocation list is unusable after an internal error; restart Portcullis")]
    Poisoned,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileForm {
    version: u32,
    entries: Vec<Entry>,
}

/// What identifies one version of the file: a rename gives a new inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

pub fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// The entries in `path` (none when it does not exist) and its stamp.
pub fn load(path: &Path) -> Result<(Vec<Entry>, Option<Stamp>), StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(source) => {
            return Err(StoreError::Read {
                path: path.into(),
                source,
            });
        }
    };
    let form: FileForm = serde_json::from_slice(&bytes).map_err(|e| StoreError::Invalid {
        path: path.into(),
        message: e.to_string(),
    })?;
    if form.version != VERSION {
        return Err(StoreError::Invalid {
            path: path.into(),
            message: format!(
                "version {} is not {VERSION}, written by another Portcullis version",
                form.version
            ),
        });
    }
    Ok((form.entries, stamp(path)))
}

/// Adds `new` to `list` (no duplicates) and drops expired entries.
pub fn merge(list: &mut Vec<Entry>, new: &[Entry], lifetime_secs: u64) {
    let now = crate::clock::now_ms();
    let mut known: std::collections::HashSet<(&super::Target, u64)> =
        list.iter().map(|e| (&e.target, e.at_ms)).collect();
    let mut fresh = Vec::new();
    for e in new {
        if known.insert((&e.target, e.at_ms)) {
            fresh.push(e.clone());
        }
    }
    list.extend(fresh);
    list.retain(|e| !e.expired(lifetime_secs, now));
}

/// Reads the file, lets `change` edit the entries, writes it back
/// atomically, all under the lock. Returns the new file's stamp.
pub fn update(path: &Path, change: impl FnOnce(&mut Vec<Entry>)) -> Result<Stamp, StoreError> {
    let write_err = |source| StoreError::Write {
        path: path.into(),
        source,
    };
    let lock = crate::state_file::lock(path).map_err(write_err)?;
    let (mut entries, _) = load(path)?;
    change(&mut entries);
    let form = FileForm {
        version: VERSION,
        entries,
    };
    let json = serde_json::to_vec_pretty(&form).map_err(|e| StoreError::Invalid {
        path: path.into(),
        message: e.to_string(),
    })?;
    lock.replace(&json).map_err(write_err)?;
    let stamp = stamp(path).ok_or_else(|| StoreError::Write {
        path: path.into(),
        source: std::io::Error::other("the file is gone right after writing it"),
    })?;
    drop(lock);
    Ok(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::entry::{Source, Target};

    fn entry(v: &str) -> Entry {
        Entry {
            target: Target::User(v.into()),
            at_ms: crate::clock::now_ms(),
            source: Source::Cli,
            by: "t".into(),
        }
    }

    #[test]
    fn round_trip_keeps_every_entry_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/revocations.json");
        assert!(load(&path).unwrap().0.is_empty());
        let a = entry("alice");
        update(&path, |l| merge(l, std::slice::from_ref(&a), 3600)).unwrap();
        update(&path, |l| merge(l, &[a.clone(), entry("bob")], 3600)).unwrap();
        let (list, stamp) = load(&path).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], a);
        assert!(stamp.is_some());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn written_as_root_the_file_still_belongs_to_the_state_directorys_owner() {
        if rustix::process::getuid().as_raw() != 0 {
            return; // only root can give files away
        }
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        let path = dir.path().join("revocations.json");
        update(&path, |l| merge(l, &[entry("alice")], 3600)).unwrap();
        for p in [path.clone(), crate::state_file::lock_path(&path)] {
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", p.display());
            assert_eq!(m.mode() & 0o777, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn a_broken_file_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("move it away"), "{e}");
        // And it is never overwritten by an update.
        assert!(update(&path, |_| {}).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }
}
