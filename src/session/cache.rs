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
        // `[u8; 32]` hashes as a length prefix, then its bytes: the last
        // write is the key.
        let mut first = [0u8; 8];
        for (d, s) in first.iter_mut().zip(bytes) {
            *d = *s;
        }
        self.0 = u64::from_le_bytes(first);
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
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdpKind;

    fn entry(user: &str, exp: u64) -> Entry {
        Entry {
            claims: Arc::new(SessionClaims {
                iss: "a.example.com".into(),
                aud: "a.example.com".into(),
                sub: user.into(),
                user: user.into(),
                email: None,
                name: None,
                preferred_username: None,
                groups: vec![],
                extra: std::collections::BTreeMap::default(),
                idp: IdpKind::Oidc,
                idp_auth_time: None,
                role: None,
                sub_fmt: None,
                sid: None,
                idp_sid: None,
                name_id: None,
                name_qualifier: None,
                sp_name_qualifier: None,
                auth_time: exp.saturating_sub(600),
                iat: exp.saturating_sub(600),
                exp,
            }),
            kid: Arc::from("k1"),
        }
    }

    /// A key in shard `shard`, told apart from others by `n`.
    fn key(shard: u8, n: u8) -> TokenHash {
        let mut k = [0u8; 32];
        k[0] = n;
        k[8] = shard;
        k[31] = n;
        k
    }

    #[test]
    fn a_stored_verification_is_served_as_is() {
        let c = VerifiedCache::new(64, 60);
        let e = entry("alice", 1000);
        c.insert(token_hash("token-a"), e.clone(), 500);
        let hit = c.get(&token_hash("token-a"), 500).expect("a hit");
        assert!(
            Arc::ptr_eq(&hit.claims, &e.claims),
            "the same claims, not a copy"
        );
        assert_eq!(&*hit.kid, "k1");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_token_that_differs_in_one_byte_misses() {
        let c = VerifiedCache::new(64, 60);
        c.insert(token_hash("header.payload.sig"), entry("alice", 1000), 500);
        for other in [
            "header.payload.siG",
            "header.payload.sig ",
            "eader.payload.sig",
        ] {
            assert!(c.get(&token_hash(other), 500).is_none(), "{other}");
        }
        let mut k = token_hash("header.payload.sig");
        k[31] ^= 1;
        assert!(c.get(&k, 500).is_none(), "same prefix, last byte differs");
    }

    #[test]
    fn a_hit_lives_exactly_as_long_as_its_token_plus_leeway() {
        let c = VerifiedCache::new(64, 60);
        let k = token_hash("t");
        c.insert(k, entry("alice", 1000), 900);
        assert!(c.get(&k, 1060).is_some(), "exp + leeway is still valid");
        assert!(c.get(&k, 1061).is_none(), "one second later it is not");
        assert_eq!(c.len(), 0, "and the expired entry is dropped");
        c.insert(k, entry("alice", 1000), 900);
        assert!(c.get(&k, 1061).is_none(), "never served once expired");
    }

    #[test]
    fn capacity_zero_stores_nothing() {
        let c = VerifiedCache::new(0, 60);
        c.insert(token_hash("t"), entry("alice", 1000), 500);
        assert!(c.get(&token_hash("t"), 500).is_none());
        assert!(c.is_empty());
        assert_eq!(c.capacity(), 0);
    }

    #[test]
    fn bounded_and_the_newest_entry_is_kept() {
        let c = VerifiedCache::new(32, 60);
        assert_eq!(c.capacity(), 32);
        for i in 0..1000u32 {
            let k = token_hash(&format!("token-{i}"));
            c.insert(k, entry("u", 5000), 500);
            assert!(c.get(&k, 500).is_some(), "the entry just stored is there");
            assert!(c.len() <= 32, "{} entries after {i}", c.len());
        }
        assert_eq!(c.len(), 32, "every shard full");
    }

    #[test]
    fn a_full_shard_drops_an_expired_entry_first() {
        // Two entries per shard; both keys below land in shard 3.
        let c = VerifiedCache::new(2 * SHARDS, 0);
        let (old, fresh, new) = (key(3, 1), key(3, 2), key(3, 3));
        c.insert(old, entry("old", 100), 50);
        c.insert(fresh, entry("fresh", 1000), 50);
        c.insert(new, entry("new", 1000), 500);
        assert!(c.get(&fresh, 500).is_some(), "the live entry stays");
        assert!(c.get(&new, 500).is_some());
        assert_eq!(c.len(), 2, "the expired one made room");
        // Replacing an entry in a full shard evicts nothing.
        c.insert(new, entry("new", 2000), 500);
        assert_eq!(c.len(), 2);
        assert!(c.get(&fresh, 500).is_some());
        assert_eq!(c.get(&new, 500).unwrap().claims.exp, 2000);
        // Shards are independent: another shard still has room.
        c.insert(key(4, 1), entry("other", 1000), 500);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn whichever_entry_comes_first_the_expired_one_goes() {
        // Four entries per shard, one expired among three live ones, in
        // every position of the shard's order: only the expired one goes.
        let mut failures = Vec::new();
        for expired_at in 0..4u8 {
            let c = VerifiedCache::new(4 * SHARDS, 0);
            let keys: Vec<TokenHash> = (0..4).map(|n| key(5, 10 + n)).collect();
            for (i, k) in keys.iter().enumerate() {
                let exp = if i == usize::from(expired_at) {
                    100
                } else {
                    1000
                };
                c.insert(*k, entry("u", exp), 50);
            }
            c.insert(key(5, 99), entry("new", 1000), 500);
            for (i, k) in keys.iter().enumerate() {
                let kept = c.get(k, 500).is_some();
                if kept == (i == usize::from(expired_at)) {
                    failures.push(format!("expired at {expired_at}: entry {i} kept {kept}"));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn clear_forgets_everything() {
        let c = VerifiedCache::new(64, 60);
        assert!(c.is_empty());
        for i in 0..10 {
            c.insert(token_hash(&format!("t{i}")), entry("u", 1000), 500);
        }
        assert!(!c.is_empty());
        assert_eq!(c.len(), 10);
        c.clear();
        assert!(c.is_empty());
        assert!(c.get(&token_hash("t1"), 500).is_none());
    }

    #[test]
    fn the_map_hashes_a_key_on_its_first_eight_bytes() {
        use std::hash::BuildHasher;
        let hasher = BuildHasherDefault::<PrehashedHasher>::default();
        for t in ["token-a", "token-b", ""] {
            let k = token_hash(t);
            let mut first = [0u8; 8];
            first.copy_from_slice(&k[..8]);
            assert_eq!(hasher.hash_one(k), u64::from_le_bytes(first), "{t:?}");
        }
    }

    #[test]
    fn a_full_shard_keeps_an_entry_that_is_valid_to_the_second() {
        // exp + leeway == now is still valid (as in `get`): only the entry
        // one second past it makes room.
        let c = VerifiedCache::new(4 * SHARDS, 0);
        let (expired, last_second) = (key(6, 1), key(6, 2));
        c.insert(expired, entry("expired", 499), 50);
        c.insert(last_second, entry("last", 500), 50);
        c.insert(key(6, 3), entry("live", 1000), 50);
        c.insert(key(6, 4), entry("live", 1000), 50);
        c.insert(key(6, 5), entry("new", 1000), 500);
        assert!(c.get(&last_second, 500).is_some(), "valid this second");
        assert_eq!(c.len(), 4, "one entry made room");
    }
}
