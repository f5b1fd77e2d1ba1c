//! Message IDs already used on this instance, each kept until its message
//! expires: a captured response cannot log in a second time, a captured
//! LogoutRequest cannot end a session a second time. Only verified
//! messages get here, so the size follows what the IdP really sent; a
//! cache with a capacity refuses new IDs rather than forget live ones
//! (forgetting one would let it be replayed).

use std::collections::HashMap;
use std::sync::Mutex;

/// Why an ID was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Seen before and not yet expired.
    Replay,
    /// Full of live IDs (fail closed).
    Full,
}

pub struct ReplayCache {
    seen: Mutex<HashMap<String, i64>>,
    capacity: usize,
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::with_capacity(usize::MAX)
    }
}

impl ReplayCache {
    pub fn with_capacity(capacity: usize) -> ReplayCache {
        ReplayCache {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Records `id` until `expires` (unix seconds).
    pub fn record(&self, id: &str, expires: i64, now: i64) -> Result<(), Refused> {
        let Ok(mut seen) = self.seen.lock() else {
            // A poisoned lock: fail closed.
            return Err(Refused::Full);
        };
        if seen.len() > 1024 || seen.len() >= self.capacity {
            seen.retain(|_, exp| *exp > now);
        }
        match seen.get(id) {
            Some(exp) if *exp > now => Err(Refused::Replay),
            // An expired entry is replaced, so it never counts as full.
            None if seen.len() >= self.capacity => Err(Refused::Full),
            Some(_) | None => {
                seen.insert(id.to_string(), expires);
                Ok(())
            }
        }
    }

    /// Records `id` until `expires` (unix seconds); false when already used.
    pub fn first_use(&self, id: &str, expires: i64, now: i64) -> bool {
        self.record(id, expires, now).is_ok()
    }

    /// Cheap look-up before any signature work.
    pub fn seen(&self, id: &str, now: i64) -> bool {
        self.seen
            .lock()
            .map_or(true, |s| s.get(id).is_some_and(|exp| *exp > now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_until_expiry() {
        let c = ReplayCache::default();
        assert!(c.first_use("a", 100, 10));
        assert!(!c.first_use("a", 100, 50));
        assert!(c.seen("a", 99));
        assert!(!c.seen("a", 100));
        assert!(c.first_use("b", 100, 10));
        // Expired entries do not block (the assertion itself is refused as
        // expired anyway).
        assert!(c.first_use("a", 300, 101));
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let c = ReplayCache::with_capacity(2);
        assert_eq!(c.record("a", 100, 10), Ok(()));
        assert_eq!(c.record("b", 200, 10), Ok(()));
        assert_eq!(c.record("c", 200, 10), Err(Refused::Full));
        // Both live IDs are still refused as replays.
        assert_eq!(c.record("a", 100, 20), Err(Refused::Replay));
        assert_eq!(c.record("b", 200, 20), Err(Refused::Replay));
        // Once `a` expires there is room again.
        assert_eq!(c.record("c", 300, 100), Ok(()));
        assert_eq!(c.record("b", 200, 150), Err(Refused::Replay));
    }
}
