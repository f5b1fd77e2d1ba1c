//! The session key ring: a JSON file holding several HMAC-SHA256 keys, one of
//! them active for signing; all of them accepted for verification, so keys
//! can be rotated without logging everyone out.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// 256-bit keys: HS256's full strength.
pub const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("cannot read the session key file {path}: {source}; check its path and permissions")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot write the session key file {path}: {source}; check that the directory exists and is writable"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the session key file {path} is not valid: {reason}; restore it from backup or create a new one with `portcullis keygen` (this logs everyone out)"
    )]
    Invalid { path: PathBuf, reason: String },
    #[error("the session key file {0} already exists; use `--rotate` to add a key to it")]
    Exists(PathBuf),
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    kid: String,
    /// base64url, no padding.
    secret: String,
    /// Unix seconds.
    created: u64,
    #[serde(default)]
    active: bool,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    keys: Vec<KeyEntry>,
}

/// One decoded key.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    pub secret: [u8; KEY_BYTES],
    pub created: u64,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<Key>,
    active: usize,
}

impl KeyRing {
    /// Loads the key ring, or creates it with one fresh key (mode 0600).
    pub fn load_or_create(path: &Path) -> Result<KeyRing, KeyRingError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = KeyRing::generate();
                ring.write_new(path)?;
                Ok(ring)
            }
            Err(source) => Err(KeyRingError::Read {
                path: path.into(),
                source,
            }),
        }
    }

    pub fn load(path: &Path) -> Result<KeyRing, KeyRingError> {
        let bytes = std::fs::read(path).map_err(|source| KeyRingError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    /// A ring with a single new random key.
    pub fn generate() -> KeyRing {
        KeyRing {
            keys: vec![new_key()],
            active: 0,
        }
    }

    /// Adds a new key and makes it the active one; old keys still verify.
    pub fn rotate(&mut self) {
        self.keys.push(new_key());
        self.active = self.keys.len() - 1;
    }

    /// Drops inactive keys created before `cutoff` (unix seconds): sessions
    /// signed with them have expired anyway.
    pub fn prune(&mut self, cutoff: u64) -> usize {
        let active_kid = self.active().kid.clone();
        let before = self.keys.len();
        self.keys
            .retain(|k| k.kid == active_kid || k.created >= cutoff);
        self.active = self
            .keys
            .iter()
            .position(|k| k.kid == active_kid)
            .unwrap_or(0);
        before - self.keys.len()
    }

    /// Removes the inactive key `kid`; the active key is never removed.
    pub fn remove_inactive(&mut self, kid: &str) -> bool {
        let active_kid = self.active().kid.clone();
        if kid == active_kid {
            return false;
        }
        let before = self.keys.len();
        self.keys.retain(|k| k.kid != kid);
        self.active = self
            .keys
            .iter()
            .position(|k| k.kid == active_kid)
            .unwrap_or(0);
        before != self.keys.len()
    }

    pub fn active(&self) -> &Key {
        &self.keys[self.active]
    }

    pub fn get(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<KeyRing, KeyRingError> {
        let invalid = |reason: String| KeyRingError::Invalid {
            path: path.into(),
            reason,
        };
        let file: KeyFile = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let mut keys = Vec::with_capacity(file.keys.len());
        let mut active = None;
        for (i, e) in file.keys.iter().enumerate() {
            let raw = URL_SAFE_NO_PAD
                .decode(e.secret.as_bytes())
                .map_err(|_| invalid(format!("key `{}` is not base64url", e.kid)))?;
            let secret: [u8; KEY_BYTES] = raw
                .try_into()
                .map_err(|_| invalid(format!("key `{}` is not {KEY_BYTES} bytes", e.kid)))?;
            if e.kid.is_empty() || keys.iter().any(|k: &Key| k.kid == e.kid) {
                return Err(invalid(format!("key id `{}` is empty or repeated", e.kid)));
            }
            if e.active {
                if active.is_some() {
                    return Err(invalid("more than one key is marked active".into()));
                }
                active = Some(i);
            }
            keys.push(Key {
                kid: e.kid.clone(),
                secret,
                created: e.created,
            });
        }
        let active = active.ok_or_else(|| invalid("no key is marked active".into()))?;
        Ok(KeyRing { keys, active })
    }

    fn to_json(&self) -> Vec<u8> {
        let file = KeyFile {
            keys: self
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| KeyEntry {
                    kid: k.kid.clone(),
                    secret: URL_SAFE_NO_PAD.encode(k.secret),
                    created: k.created,
                    active: i == self.active,
                })
                .collect(),
        };
        let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Writes a new file; refuses to overwrite one.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyRingError> {
        if path.exists() {
            return Err(KeyRingError::Exists(path.into()));
        }
        self.write(path)
    }

    /// Writes atomically (temp file + rename) with mode 0600.
    pub fn write(&self, path: &Path) -> Result<(), KeyRingError> {
        let werr = |source| KeyRingError::Write {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(werr)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(werr)?;
            f.write_all(&self.to_json()).map_err(werr)?;
            f.sync_all().map_err(werr)?;
        }
        keep_owner(&tmp, path);
        std::fs::rename(&tmp, path).map_err(werr)
    }
}

/// Gives `tmp` the owner of the file it replaces, or of the directory for a
/// new file: an administrator running `keygen --rotate` or `keys prune` as
/// root must not leave a key file the service user cannot read. Only root
/// can change owners; for anyone else this is a no-op.
pub(crate) fn keep_owner(tmp: &Path, path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let like = std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(path.parent().unwrap_or(Path::new("."))));
    if let (Ok(like), Ok(now)) = (like, std::fs::metadata(tmp))
        && (like.uid(), like.gid()) != (now.uid(), now.gid())
    {
        let _ = std::os::unix::fs::chown(tmp, Some(like.uid()), Some(like.gid()));
    }
}

fn new_key() -> Key {
    let mut secret = [0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut secret);
    let mut id = [0u8; 6];
    rand::rng().fill_bytes(&mut id);
    Key {
        kid: hex::encode(id),
        secret,
        created: super::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewriting_keeps_the_owner_when_run_as_root() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        KeyRing::generate().write_new(&path).unwrap();
        if std::fs::metadata(&path).unwrap().uid() != 0 {
            return; // only root can change owners
        }
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let mut ring = KeyRing::load(&path).unwrap();
        ring.rotate();
        ring.write(&path).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 65534, 0o600));
        // A new file takes the directory's owner.
        let sub = dir.path().join("state");
        std::fs::create_dir(&sub).unwrap();
        std::os::unix::fs::chown(&sub, Some(65534), Some(65534)).unwrap();
        KeyRing::generate().write_new(&sub.join("k.json")).unwrap();
        assert_eq!(std::fs::metadata(sub.join("k.json")).unwrap().uid(), 65534);
    }

    #[test]
    fn created_with_mode_0600_and_reloads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/keys.json");
        let ring = KeyRing::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = KeyRing::load(&path).unwrap();
        assert_eq!(again.active().kid, ring.active().kid);
        assert_eq!(again.active().secret, ring.active().secret);
    }

    #[test]
    fn rotate_keeps_old_keys_and_prune_drops_them() {
        let mut ring = KeyRing::generate();
        let old = ring.active().kid.clone();
        ring.keys[0].created = 100;
        ring.rotate();
        assert_ne!(ring.active().kid, old);
        assert!(ring.get(&old).is_some());
        assert_eq!(ring.prune(200), 1);
        assert!(ring.get(&old).is_none());
        assert_eq!(ring.keys().len(), 1);
    }

    #[test]
    fn refuses_files_without_active_key_or_short_secret() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        std::fs::write(
            &p,
            r#"{"keys":[{"kid":"a","secret":"AAAA","created":1,"active":true}]}"#,
        )
        .unwrap();
        assert!(matches!(
            KeyRing::load(&p),
            Err(KeyRingError::Invalid { .. })
        ));
        let ring = KeyRing::generate();
        let mut json: serde_json::Value = serde_json::from_slice(&ring.to_json()).unwrap();
        json["keys"][0]["active"] = false.into();
        std::fs::write(&p, json.to_string()).unwrap();
        assert!(matches!(
            KeyRing::load(&p),
            Err(KeyRingError::Invalid { .. })
        ));
    }

    /// A ring of keys created at `created`, the active one at `active`.
    fn ring(created: &[u64], active: usize) -> KeyRing {
        let keys = created
            .iter()
            .map(|&c| Key {
                created: c,
                ..new_key()
            })
            .collect();
        KeyRing { keys, active }
    }

    fn kids(r: &KeyRing) -> Vec<String> {
        r.keys().iter().map(|k| k.kid.clone()).collect()
    }

    #[test]
    fn prune_keeps_the_active_key_and_keys_from_the_cutoff_on() {
        // The active key is the oldest: it stays, and stays active.
        let mut r = ring(&[100, 150, 200, 250], 0);
        let all = kids(&r);
        assert_eq!(r.prune(200), 1, "only the key from 150 goes");
        assert_eq!(kids(&r), [all[0].clone(), all[2].clone(), all[3].clone()]);
        assert_eq!(r.active().kid, all[0]);
        // The active key in the middle keeps its place after removals.
        let mut r = ring(&[100, 150, 200], 2);
        let all = kids(&r);
        assert_eq!(r.prune(1000), 2);
        assert_eq!(kids(&r), [all[2].clone()]);
        assert_eq!(r.active().kid, all[2]);
        assert_eq!(r.prune(0), 0, "nothing is older than 0");
    }

    #[test]
    fn remove_inactive_never_removes_the_active_key() {
        let mut r = ring(&[1, 2, 3], 1);
        let all = kids(&r);
        assert!(!r.remove_inactive(&all[1]), "the active key stays");
        assert_eq!(r.keys().len(), 3);
        assert!(r.remove_inactive(&all[0]));
        assert_eq!(kids(&r), [all[1].clone(), all[2].clone()]);
        assert_eq!(r.active().kid, all[1], "still the active one");
        assert!(!r.remove_inactive("no-such-kid"));
        assert_eq!(r.keys().len(), 2);
    }

    #[test]
    fn rotate_makes_the_new_key_active_and_keeps_every_old_one() {
        let mut r = KeyRing::generate();
        let first = r.active().clone();
        r.rotate();
        r.rotate();
        assert_eq!(r.keys().len(), 3);
        assert_eq!(r.active().kid, r.keys()[2].kid);
        let kept = r.get(&first.kid).expect("the first key still verifies");
        assert_eq!(kept.secret, first.secret);
        assert!(r.get("nope").is_none());
    }

    #[test]
    fn new_keys_are_random_and_well_formed() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.secret, [0u8; KEY_BYTES]);
        assert_ne!(a.kid, b.kid);
        assert!(
            a.kid.len() == 12 && a.kid.bytes().all(|c| c.is_ascii_hexdigit()),
            "{}",
            a.kid
        );
        assert!(a.created > 1_700_000_000, "created now: {}", a.created);
    }

    #[test]
    fn the_file_round_trips_with_its_active_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        let r = ring(&[10, 20, 30], 1);
        r.write(&p).unwrap();
        let back = KeyRing::load(&p).unwrap();
        assert_eq!(kids(&back), kids(&r));
        assert_eq!(back.active().kid, r.active().kid);
        let created: Vec<u64> = back.keys().iter().map(|k| k.created).collect();
        assert_eq!(created, [10, 20, 30]);
        assert!(
            back.keys()
                .iter()
                .zip(r.keys())
                .all(|(a, b)| a.secret == b.secret)
        );
        // load_or_create reads an existing file rather than replacing it.
        let again = KeyRing::load_or_create(&p).unwrap();
        assert_eq!(again.active().kid, r.active().kid);
        // write_new never overwrites.
        assert!(matches!(
            KeyRing::generate().write_new(&p),
            Err(KeyRingError::Exists(_))
        ));
        assert_eq!(KeyRing::load(&p).unwrap().active().kid, r.active().kid);
        assert!(matches!(
            KeyRing::load(&dir.path().join("missing.json")),
            Err(KeyRingError::Read { .. })
        ));
    }

    #[test]
    fn refuses_repeated_empty_or_doubly_active_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        let secret = URL_SAFE_NO_PAD.encode([7u8; KEY_BYTES]);
        let mut failures = Vec::new();
        for (name, keys, says) in [
            (
                "repeated kid",
                format!(
                    r#"[{{"kid":"a","secret":"{secret}","created":1,"active":true}},{{"kid":"a","secret":"{secret}","created":2}}]"#
                ),
                "empty or repeated",
            ),
            (
                "empty kid",
                format!(r#"[{{"kid":"","secret":"{secret}","created":1,"active":true}}]"#),
                "empty or repeated",
            ),
            (
                "two active",
                format!(
                    r#"[{{"kid":"a","secret":"{secret}","created":1,"active":true}},{{"kid":"b","secret":"{secret}","created":2,"active":true}}]"#
                ),
                "more than one key is marked active",
            ),
            (
                "not base64url",
                r#"[{"kid":"a","secret":"***","created":1,"active":true}]"#.to_string(),
                "is not base64url",
            ),
            (
                "unknown field",
                format!(r#"[{{"kid":"a","secret":"{secret}","created":1,"active":true,"x":1}}]"#),
                "unknown field",
            ),
        ] {
            std::fs::write(&p, format!(r#"{{"keys":{keys}}}"#)).unwrap();
            match KeyRing::load(&p) {
                Err(KeyRingError::Invalid { reason, .. }) if reason.contains(says) => {}
                other => failures.push(format!("{name}: {other:?}")),
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        // The control: the same shape with one active key loads.
        std::fs::write(
            &p,
            format!(r#"{{"keys":[{{"kid":"a","secret":"{secret}","created":1,"active":true}},{{"kid":"b","secret":"{secret}","created":2}}]}}"#),
        )
        .unwrap();
        assert_eq!(KeyRing::load(&p).unwrap().active().kid, "a");
    }

    #[test]
    fn a_key_is_debugged_without_its_secret() {
        let key = Key {
            kid: "k1".into(),
            secret: [0x41; KEY_BYTES],
            created: 5,
        };
        assert_eq!(format!("{key:?}"), r#"Key { kid: "k1", created: 5, .. }"#);
    }

    #[test]
    fn an_unreadable_key_file_is_an_error_never_a_new_key() {
        // Only a missing file is created; any other read error (here the
        // path is a directory) is reported, so a key is never replaced.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::create_dir(&path).unwrap();
        let err = KeyRing::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyRingError::Read { .. }), "{err}");
        assert!(path.is_dir(), "the path is left as it was");
    }
}
