//! What Portcullis remembers of the IdP's provisioning, and nothing more:
//! for users the SCIM id, `userName`, `externalId`, `active` and
//! `displayName`; for groups the id, `displayName`, `externalId` and the
//! member ids. One JSON file in the state directory, read on every call
//! and changed under its lock, replaced atomically (`crate::state_file`),
//! so the file is the only state and concurrent calls never lose a change.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const VERSION: u32 = 1;

// `user_name` is SCIM's `userName`.
#[allow(clippy::struct_field_names)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// `None`: never set, which counts as active (RFC 7643 §4.1.1 gives
    /// no default; an IdP that deprovisions sets `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub created_ms: u64,
    pub modified_ms: u64,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.active != Some(false)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// SCIM ids of the member users, each once, in the order added.
    #[serde(default)]
    pub members: Vec<String>,
    pub created_ms: u64,
    pub modified_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<Group>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileForm {
    version: u32,
    #[serde(flatten)]
    directory: Directory,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot read the SCIM file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the SCIM file {path} is not valid ({message}); restore it from a backup, or move it away and let the IdP provision again"
    )]
    Invalid { path: PathBuf, message: String },
    #[error(
        "cannot write the SCIM file {path}: {source}; check that the state directory exists and is writable by Portcullis"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Directory {
    /// The directory in `path` (empty when the file does not exist yet).
    pub fn load(path: &Path) -> Result<Directory, DirectoryError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Directory::default()),
            Err(source) => {
                return Err(DirectoryError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        let invalid = |message: String| DirectoryError::Invalid {
            path: path.into(),
            message,
        };
        let form: FileForm = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if form.version != VERSION {
            return Err(invalid(format!(
                "version {} is not {VERSION}, written by another Portcullis version",
                form.version
            )));
        }
        Ok(form.directory)
    }

    /// Reads the file under its lock, lets `change` edit the directory and
    /// writes it back when `change` succeeded and changed something.
    pub fn update<T, E: From<DirectoryError>>(
        path: &Path,
        change: impl FnOnce(&mut Directory) -> Result<T, E>,
    ) -> Result<T, E> {
        let write_err = |source| DirectoryError::Write {
            path: path.into(),
            source,
        };
        let lock = crate::state_file::lock(path).map_err(write_err)?;
        let mut dir = Directory::load(path)?;
        let before = dir.clone();
        let out = change(&mut dir)?;
        if dir != before {
            let form = FileForm {
                version: VERSION,
                directory: dir,
            };
            let json = serde_json::to_vec_pretty(&form).map_err(|e| DirectoryError::Invalid {
                path: path.into(),
                message: e.to_string(),
            })?;
            lock.replace(&json).map_err(write_err)?;
        }
        Ok(out)
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.id == id)
    }

    /// The user with this `userName`, which SCIM compares without regard
    /// to case (RFC 7643 §4.1.1).
    pub fn user_named(&self, user_name: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.user_name.eq_ignore_ascii_case(user_name))
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    pub fn group_mut(&mut self, id: &str) -> Option<&mut Group> {
        self.groups.iter_mut().find(|g| g.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(#[allow(dead_code)] DirectoryError);
    impl From<DirectoryError> for E {
        fn from(e: DirectoryError) -> E {
            E(e)
        }
    }

    fn user(id: &str, name: &str) -> User {
        User {
            id: id.into(),
            user_name: name.into(),
            external_id: None,
            active: Some(true),
            display_name: None,
            created_ms: 1,
            modified_ms: 1,
        }
    }

    #[test]
    fn changes_survive_a_reload_and_a_failed_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scim.json");
        assert_eq!(Directory::load(&path).unwrap(), Directory::default());
        Directory::update(&path, |d| {
            d.users.push(user("1", "Alice@Example.com"));
            Ok::<_, E>(())
        })
        .unwrap();
        let r: Result<(), E> = Directory::update(&path, |d| {
            d.users.clear();
            Err(E(DirectoryError::Invalid {
                path: "x".into(),
                message: "refused".into(),
            }))
        });
        assert!(r.is_err());
        let d = Directory::load(&path).unwrap();
        assert_eq!(d.users, [user("1", "Alice@Example.com")]);
        assert_eq!(d.user_named("alice@example.com").unwrap().id, "1");
        let m = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(m.mode() & 0o777, 0o600);
    }

    #[test]
    fn a_broken_file_says_what_to_do_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scim.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = Directory::load(&path).unwrap_err().to_string();
        assert!(e.contains("move it away"), "{e}");
        assert!(Directory::update(&path, |_| Ok::<_, E>(())).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }
}
