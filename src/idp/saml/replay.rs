//! Assertion IDs already used on this instance, each kept until its
//! assertion expires: a captured response cannot log in a second time.
//! Only verified assertions get here, so the size follows real logins.

use std::collections::HashMap;
use std::sync::Mutex;

pub struct ReplayCache {
    seen: Mutex<HashMap<String, i64>>,
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache {
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl ReplayCache {
    /// Records `id` until `expires` (unix seconds); false when already used.
    pub fn first_use(&self, id: &str, expires: i64, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            // A poisoned lock: fail closed.
            return false;
        };
        if seen.len() > 1024 {
            seen.retain(|_, exp| *exp > now);
        }
        match seen.get(id) {
            Some(exp) if *exp > now => false,
            _ => {
                seen.insert(id.to_string(), expires);
                true
            }
        }
    }

    /// Cheap look-up before any signature work.
    pub fn seen(&self, id: &str, now: i64) -> bool {
        self.seen
            .lock()
            .map(|s| s.get(id).is_some_and(|exp| *exp > now))
            .unwrap_or(true)
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
}
