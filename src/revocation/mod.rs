//! Revocations: sessions ended before their cookie expires, without state
//! on the request path. The list lives in memory ([`index`], checked in
//! O(1) by `Sessions::verify_token` after the signature, cached
//! verifications included), is kept in a file in the state directory
//! ([`store`], written atomically, loaded at start), and a running
//! instance picks up what `portcullis revoke` ([`command`]) wrote by
//! watching that file ([`watch`]). With `revocation.redis_url`, the
//! instances of a domain share the list through Redis ([`shared`]): each
//! entry made here goes to Redis once, each entry Redis announces is added
//! here; the request path never waits for Redis. Long-lived connections
//! learn of new entries from [`notify`] and re-check their own session then.
//!
//! An entry ([`entry::Entry`]) names one session, every session of a user
//! or IdP subject that logged in before it, or every session that logged
//! in before it. It is forgotten once no session it could match can still
//! be alive: the maximum session lifetime after it was made.

pub mod command;
pub mod entry;
pub mod index;
pub mod notify;
pub mod shared;
pub mod store;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use tokio::sync::mpsc;

pub use entry::{Entry, Target};
pub use store::StoreError;

use index::Index;

/// What a revocation can match in a verified session.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// When the session signed in, in milliseconds since the epoch.
    pub at_ms: u64,
    /// Its session id (absent in cookies older than session ids).
    pub sid: Option<&'a str>,
    pub user: &'a str,
    /// The IdP's subject.
    pub subject: &'a str,
    /// The IdP's session id (`isid`), when the IdP gave one.
    pub idp_session: Option<&'a str>,
    /// The SAML NameID the session was issued for (SAML sessions only).
    pub name_id: Option<&'a str>,
    /// Its Format, when the IdP gave one.
    pub name_id_format: Option<&'a str>,
}

/// The instance's revocation list.
pub struct Revocations {
    index: RwLock<Index>,
    /// `None`: memory only (tests, benchmarks).
    file: Option<PathBuf>,
    /// `session.lifetime` in seconds (it may change on reload).
    lifetime_secs: AtomicU64,
    /// What the file looked like when last read.
    seen: Mutex<Option<store::Stamp>>,
    /// Bumped whenever entries came into force.
    added: notify::Notifier,
    /// Where entries that came into force here (not from the shared
    /// store) go to be shared; unset without a shared store.
    outbox: OnceLock<mpsc::UnboundedSender<Entry>>,
}

/// Where an entry came from, which decides whether it is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Made on this instance or written to its file by `portcullis revoke`.
    Local,
    /// Heard from the shared store: never sent back to it.
    Shared,
}

impl Revocations {
    /// An empty list kept only in memory.
    pub fn in_memory() -> Revocations {
        Revocations {
            index: RwLock::new(Index::default()),
            file: None,
            lifetime_secs: AtomicU64::new(u64::MAX / 4),
            seen: Mutex::new(None),
            added: notify::Notifier::default(),
            outbox: OnceLock::new(),
        }
    }

    /// The list stored in `file` (empty when it does not exist yet).
    pub fn open(file: &Path, lifetime_secs: u64) -> Result<Revocations, StoreError> {
        let r = Revocations {
            index: RwLock::new(Index::default()),
            file: Some(file.to_path_buf()),
            lifetime_secs: AtomicU64::new(lifetime_secs),
            seen: Mutex::new(None),
            added: notify::Notifier::default(),
            outbox: OnceLock::new(),
        };
        let (entries, stamp) = store::load(file)?;
        let now = crate::clock::now_ms();
        if let Ok(mut index) = r.index.write() {
            for e in entries.iter().filter(|e| !e.expired(lifetime_secs, now)) {
                index.insert(e);
            }
            crate::metrics::revocation_list_size(index.len());
        }
        if let Ok(mut seen) = r.seen.lock() {
            *seen = stamp;
        }
        Ok(r)
    }

    pub fn set_lifetime(&self, lifetime_secs: u64) {
        self.lifetime_secs.store(lifetime_secs, Ordering::Relaxed);
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Whether a verified session is revoked. Fails closed: a poisoned
    /// lock (a panic while writing) refuses the session.
    pub fn revokes(&self, login: &Login<'_>) -> bool {
        match self.index.read() {
            Ok(index) => index.revokes(login),
            Err(_) => true,
        }
    }

    pub fn len(&self) -> usize {
        self.index.read().map_or(0, |i| i.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes at every batch of new entries: for connections that hold a
    /// session open and re-check it then ([`notify`]).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.added.subscribe()
    }

    /// Every entry in force, oldest first.
    pub fn entries(&self) -> Vec<Entry> {
        self.index.read().map(|i| i.entries()).unwrap_or_default()
    }

    /// Adds an entry in memory (and in the file, when there is one), and
    /// shares it when there is a shared store; audited and counted. Returns
    /// whether it was new. The one entry point for a revocation made at run
    /// time (logout, SCIM). On a file error the entry still applies in
    /// memory (and is shared); the error says it would not survive a
    /// restart.
    pub fn add(&self, entry: Entry) -> Result<bool, StoreError> {
        self.add_many(&[entry]).map(|n| n > 0)
    }

    /// [`Self::add`] for several entries at once; returns how many were new.
    pub fn add_many(&self, entries: &[Entry]) -> Result<usize, StoreError> {
        let added = self.apply(entries, Origin::Local);
        self.keep(entries)?;
        Ok(added)
    }

    /// Entries heard from the shared store: applied and kept in the file
    /// like [`Self::add_many`]'s, never shared again. Returns how many were
    /// new.
    pub fn learn(&self, entries: &[Entry]) -> Result<usize, StoreError> {
        let added = self.apply(entries, Origin::Shared);
        self.keep(entries)?;
        Ok(added)
    }

    /// Writes entries already in memory to the file.
    fn keep(&self, entries: &[Entry]) -> Result<(), StoreError> {
        if let Some(file) = &self.file {
            let lifetime = self.lifetime_secs.load(Ordering::Relaxed);
            let stamp = store::update(file, |list| store::merge(list, entries, lifetime))?;
            // Our own write needs no second look from the watcher; entries
            // another process wrote meanwhile are taken in now.
            self.reload_from(file, Some(stamp))?;
        }
        Ok(())
    }

    /// From now on, entries that come into force here, not from the shared
    /// store, are sent to the returned receiver. Call once.
    pub fn share(&self) -> mpsc::UnboundedReceiver<Entry> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.outbox.set(tx);
        rx
    }

    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs.load(Ordering::Relaxed)
    }

    /// Puts entries into the index; audits, counts and (when `Local`)
    /// shares the new ones.
    fn apply(&self, entries: &[Entry], origin: Origin) -> usize {
        let lifetime = self.lifetime_secs.load(Ordering::Relaxed);
        let now = crate::clock::now_ms();
        let Ok(mut index) = self.index.write() else {
            return 0;
        };
        let mut added = 0;
        for e in entries.iter().filter(|e| !e.expired(lifetime, now)) {
            if index.insert(e) {
                added += 1;
                crate::audit::revoked(
                    e.source.metric_label(),
                    e.target.kind(),
                    e.target.value(),
                    &e.by,
                    e.at_ms,
                );
                crate::metrics::revocation_added(e.source.metric_label());
                if origin == Origin::Local
                    && let Some(outbox) = self.outbox.get()
                {
                    // Fails only once the sharing task is gone (shutdown).
                    let _ = outbox.send(e.clone());
                }
            }
        }
        let dropped = index.prune(lifetime, now);
        if added > 0 || dropped > 0 {
            crate::metrics::revocation_list_size(index.len());
        }
        // After the lock is released: the woken connections read the index.
        drop(index);
        if added > 0 {
            self.added.bump();
        }
        added
    }

    /// Reads the file again if it changed since it was last read (e.g.
    /// `portcullis revoke` wrote it) and applies its new entries. Returns
    /// how many were new.
    pub fn reload_if_changed(&self) -> Result<usize, StoreError> {
        match &self.file {
            Some(file) => self.reload_from(file, None),
            None => Ok(0),
        }
    }

    fn reload_from(&self, file: &Path, known: Option<store::Stamp>) -> Result<usize, StoreError> {
        let current = known.or_else(|| store::stamp(file));
        {
            let seen = self.seen.lock().map_err(|_| StoreError::Poisoned)?;
            if current.is_none() || *seen == current {
                return Ok(0);
            }
        }
        let (entries, stamp) = store::load(file)?;
        let added = self.apply(&entries, Origin::Local);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = stamp;
        }
        Ok(added)
    }
}
