//! A bounded cache of session cookies whose signature was already checked,
//! so the HMAC check and the JSON decoding run once per cookie, not once per
//! request.
//!
//! What it may and may not do, for security:
//!
//! - The key is the SHA-256 of the whole token. A cookie that differs in any
//!   byte (a tampered payload or signature with the same prefix, an appended
//!   byte) has another key and goes through the full verification.
//! - Only successful verifications are stored; a failure is never cached, so
//!   nothing a client sends can make a later forged cookie pass, and a
//!   refused cookie cannot evict or shadow a good one.
//! - An entry lives no longer than its token: a hit is only served while
//!   `now <= exp + leeway`, the same rule as the full check, and the caller
//!   still applies the absolute-lifetime rule and the inactivity renewal to
//!   the returned claims exactly as for a freshly decoded token.
//! - Each entry remembers the `kid` that signed it; the caller serves a hit
//!   only while that key is still in the ring. A key removed from the key
//!   file stops validating cookies at the latest when the ring is reloaded:
//!   a reload (or restart) builds new [`super::Sessions`] with an empty cache.
//! - Bounded: at most `capacity` entries, spread over shards; a full shard
//!   drops expired entries it comes across, else an arbitrary one. Eviction
//!   only costs a re-verification, never correctness.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::SessionClaims;

/// SHA-256 of a token: the cache key.
pub type TokenHash = [u8; 32];

const SHARDS: usize = 16;

pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A verified token's claims, shared between hits.
#[derive(Debug, Clone)]
pub struct Entry {
    pub claims: Arc<SessionClaims>,
    /// Key id that signed the token.
    pub kid: Arc<str>,
}

/// The key is already a uniform SHA-256: its first 8 bytes are the hash.
#[derive(Default)]
struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its bytes (no length prefix for arrays).
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

type Shard = HashMap<TokenHash, Entry, BuildHasherDefault<PrehashedHasher>>;

pub struct VerifiedCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    leeway: u64,
}

impl VerifiedCache {
    /// `capacity` 0 turns the cache off.
    pub fn new(capacity: usize, leeway_secs: u64) -> VerifiedCache {
        let per_shard = capacity.div_ceil(SHARDS);
        VerifiedCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
            leeway: leeway_secs,
        }
    }

    fn shard(&self, key: &TokenHash) -> Option<&Mutex<Shard>> {
        // Byte 8 is independent of the bytes the map hashes on.
        self.shards.get(usize::from(key[8]) % SHARDS)
    }

    /// The entry for `key` if it is there and its token not expired at `now`.
    pub fn get(&self, key: &TokenHash, now: u64) -> Option<Entry> {
        if self.per_shard == 0 {
            return None;
        }
        let mut shard = self.shard(key)?.lock().ok()?;
        let entry = shard.get(key)?;
        if entry.claims.exp.saturating_add(self.leeway) < now {
            shard.remove(key);
            return None;
        }
        Some(entry.clone())
    }

    /// Stores a token that has just passed the full verification.
    pub fn insert(&self, key: TokenHash, entry: Entry, now: u64) {
        if self.per_shard == 0 {
            return;
        }
        let Some(Ok(mut shard)) = self.shard(&key).map(|s| s.lock()) else {
            return;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            // Constant work per insert: among a few entries, drop the expired
            // ones, else the first (any victim will do: eviction only costs a
            // re-verification).
            let leeway = self.leeway;
            let mut victims: Vec<TokenHash> = shard
                .iter()
                .take(8)
                .filter(|(_, e)| e.claims.exp.saturating_add(leeway) < now)
                .map(|(k, _)| *k)
                .collect();
            if victims.is_empty() {
                victims.extend(shard.keys().next().copied());
            }
            for v in &victims {
                shard.remove(v);
            }
        }
        shard.insert(key, entry);
    }

    /// Forgets everything (e.g. after the key ring changed).
    pub fn clear(&self) {
        for s in &self.shards {
            if let Ok(mut s) = s.lock() {
                s.clear();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }
}
