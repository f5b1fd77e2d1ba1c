//! How many ACS signature verifications may run, and for whom. Verifying
//! is the expensive step (and leaks memory in libxml: guard rail 2 in
//! docs/design.md), and anyone can get a transaction cookie with a
//! matching `InResponseTo` from `/.portcullis/login`. So a response is charged, in this order, to its
//! login transaction, to its client address and only then to the budget
//! all clients share: one client, or one transaction cookie copied to many
//! clients, runs out of its own budget long before it can spend what other
//! users need.
//!
//! Memory is bounded: clients and transactions are each tracked in a table
//! of [`TRACKED`] entries. A full table first forgets entries whose bucket
//! has refilled (they hold no state a fresh one would not), then the one
//! used longest ago. Forgetting only ever hands a bucket back full, and the
//! shared budget still caps the total, so the table size is a memory bound
//! and never a way round the limits. IPv6 clients are grouped by /64 (one
//! subscriber's network), IPv4 by address.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::saml::AcsVerifyLimit;

/// Client addresses and transactions remembered, each.
pub const TRACKED: usize = 4096;

/// Which budget refused a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// This login transaction already caused its share.
    Transaction,
    /// This client address (IPv6: its /64) is over its rate.
    Client,
    /// All clients together are over the instance's rate.
    Global,
}

impl Budget {
    /// The metric label and the word in the audit reason.
    pub fn label(self) -> &'static str {
        match self {
            Budget::Transaction => "transaction",
            Budget::Client => "client",
            Budget::Global => "global",
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Budget::Transaction => "this login transaction's budget",
            Budget::Client => "this client address's budget",
            Budget::Global => "the budget all clients share",
        })
    }
}

/// A token bucket: `burst` at most, refilled at `rate` a second.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Rate {
    per_second: f64,
    burst: f64,
}

impl Bucket {
    fn full(now: Instant, rate: Rate) -> Bucket {
        Bucket {
            tokens: rate.burst,
            last: now,
        }
    }

    fn level(&self, now: Instant, rate: Rate) -> f64 {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * rate.per_second;
        (self.tokens + refill).min(rate.burst)
    }

    fn take(&mut self, now: Instant, rate: Rate) -> bool {
        self.tokens = self.level(now, rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A bucket per key, at most `capacity` keys.
struct Keyed<K> {
    map: HashMap<K, Bucket>,
    capacity: usize,
    rate: Rate,
}

impl<K: Hash + Eq + Copy> Keyed<K> {
    fn new(capacity: usize, rate: Rate) -> Keyed<K> {
        Keyed {
            map: HashMap::with_capacity(capacity),
            capacity,
            rate,
        }
    }

    fn take(&mut self, key: K, now: Instant) -> bool {
        let rate = self.rate;
        if let Some(b) = self.map.get_mut(&key) {
            return b.take(now, rate);
        }
        if self.map.len() >= self.capacity {
            self.make_room(now);
        }
        let mut b = Bucket::full(now, rate);
        let granted = b.take(now, rate);
        self.map.insert(key, b);
        granted
    }

    fn make_room(&mut self, now: Instant) {
        let rate = self.rate;
        self.map.retain(|_, b| b.level(now, rate) < rate.burst);
        if self.map.len() >= self.capacity
            && let Some(oldest) = self.map.iter().min_by_key(|(_, b)| b.last).map(|(k, _)| *k)
        {
            self.map.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The key a client address is charged under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4([u8; 4]),
    /// The /64 network.
    V6([u8; 8]),
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V4(a) => ClientKey::V4(a.octets()),
            IpAddr::V6(a) => {
                let mut net = [0u8; 8];
                net.copy_from_slice(&a.octets()[..8]);
                ClientKey::V6(net)
            }
        }
    }
}

struct Tables {
    transactions: Keyed<[u8; 16]>,
    clients: Keyed<ClientKey>,
    global: Bucket,
    global_rate: Rate,
}

/// The three budgets of one instance.
pub struct VerifyBudget {
    tables: Mutex<Tables>,
}

impl VerifyBudget {
    pub fn new(limit: &AcsVerifyLimit, now: Instant) -> VerifyBudget {
        let global_rate = Rate {
            per_second: limit.rate,
            burst: f64::from(limit.burst),
        };
        VerifyBudget {
            tables: Mutex::new(Tables {
                // A transaction's share is a count over its lifetime: it
                // never refills.
                transactions: Keyed::new(
                    TRACKED,
                    Rate {
                        per_second: 0.0,
                        burst: f64::from(limit.per_transaction),
                    },
                ),
                clients: Keyed::new(
                    TRACKED,
                    Rate {
                        per_second: limit.per_client_rate,
                        burst: f64::from(limit.per_client_burst),
                    },
                ),
                global: Bucket::full(now, global_rate),
                global_rate,
            }),
        }
    }

    /// Charges one verification for `client` and, when the response
    /// answers one, the transaction `txn` (its 32-hex-digit id). A refusal
    /// names the first budget that was spent; budgets after it are not
    /// charged, so a refused client costs the shared budget nothing.
    pub fn take(&self, client: IpAddr, txn: Option<&str>, now: Instant) -> Result<(), Budget> {
        // A poisoned lock: fail closed.
        let Ok(mut t) = self.tables.lock() else {
            return Err(Budget::Global);
        };
        if let Some(txn) = txn {
            let mut key = [0u8; 16];
            // The caller passes only ids of verified transaction cookies;
            // anything else shares one key rather than getting its own.
            let _ = hex::decode_to_slice(txn, &mut key);
            if !t.transactions.take(key, now) {
                return Err(Budget::Transaction);
            }
        }
        if !t.clients.take(ClientKey::of(client), now) {
            return Err(Budget::Client);
        }
        let rate = t.global_rate;
        if !t.global.take(now, rate) {
            return Err(Budget::Global);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limit() -> AcsVerifyLimit {
        AcsVerifyLimit {
            rate: 20.0,
            burst: 40,
            per_client_rate: 1.0,
            per_client_burst: 10,
            per_transaction: 3,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const T1: &str = "00112233445566778899aabbccddeeff";
    const T2: &str = "ffeeddccbbaa99887766554433221100";

    #[test]
    fn one_transaction_gets_three_checks_in_its_life() {
        let t0 = Instant::now();
        let b = VerifyBudget::new(&limit(), t0);
        let got: Vec<_> = (0..5)
            .map(|_| b.take(ip("192.0.2.1"), Some(T1), t0))
            .collect();
        assert_eq!(
            got,
            [
                Ok(()),
                Ok(()),
                Ok(()),
                Err(Budget::Transaction),
                Err(Budget::Transaction)
            ]
        );
        // Never refills, even an hour later, and from another client.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(
            b.take(ip("198.51.100.7"), Some(T1), later),
            Err(Budget::Transaction)
        );
        // Another transaction of the same client is charged on its own.
        assert_eq!(b.take(ip("192.0.2.1"), Some(T2), later), Ok(()));
    }

    #[test]
    fn one_client_gets_its_burst_then_one_a_second() {
        let t0 = Instant::now();
        let b = VerifyBudget::new(&limit(), t0);
        let granted = (0..50)
            .filter(|_| b.take(ip("192.0.2.1"), None, t0).is_ok())
            .count();
        assert_eq!(granted, 10);
        assert_eq!(b.take(ip("192.0.2.1"), None, t0), Err(Budget::Client));
        // Another client is untouched.
        assert_eq!(b.take(ip("192.0.2.2"), None, t0), Ok(()));
        // Two seconds later, two more.
        let t2 = t0 + Duration::from_secs(2);
        let granted = (0..50)
            .filter(|_| b.take(ip("192.0.2.1"), None, t2).is_ok())
            .count();
        assert_eq!(granted, 2);
    }

    #[test]
    fn ipv6_clients_share_their_slash_64_and_mapped_v4_is_v4() {
        let t0 = Instant::now();
        let b = VerifyBudget::new(&limit(), t0);
        // Ten different addresses in one /64 spend one budget.
        for i in 0..10 {
            assert_eq!(
                b.take(ip(&format!("2001:db8:1:2::{i:x}")), None, t0),
                Ok(()),
                "{i}"
            );
        }
        assert_eq!(
            b.take(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), None, t0),
            Err(Budget::Client)
        );
        assert_eq!(b.take(ip("2001:db8:1:3::1"), None, t0), Ok(()));
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.9")),
            ClientKey::V4([192, 0, 2, 9])
        );
    }

    #[test]
    fn the_shared_budget_caps_all_clients_and_refused_clients_do_not_spend_it() {
        let t0 = Instant::now();
        let b = VerifyBudget::new(&limit(), t0);
        // One client far over its own budget leaves the shared one alone.
        for _ in 0..1000 {
            let _ = b.take(ip("192.0.2.1"), None, t0);
        }
        // So 30 more clients still get in (10 of the 40 went to the first).
        let ok = (0..30)
            .filter(|i| b.take(ip(&format!("198.51.100.{i}")), None, t0).is_ok())
            .count();
        assert_eq!(ok, 30);
        // Then the shared budget is spent: 40 in all.
        assert_eq!(b.take(ip("203.0.113.1"), None, t0), Err(Budget::Global));
        // A refused transaction costs its client nothing either.
        let t1 = t0 + Duration::from_secs(10);
        let b = VerifyBudget::new(&limit(), t1);
        for _ in 0..3 {
            b.take(ip("192.0.2.5"), Some(T1), t1).unwrap();
        }
        for _ in 0..100 {
            assert_eq!(
                b.take(ip("192.0.2.5"), Some(T1), t1),
                Err(Budget::Transaction)
            );
        }
        let ok = (0..20)
            .filter(|_| b.take(ip("192.0.2.5"), None, t1).is_ok())
            .count();
        assert_eq!(ok, 7, "the client's 10 less the transaction's 3");
    }

    #[test]
    fn tables_stay_bounded_and_forget_refilled_entries_first() {
        let t0 = Instant::now();
        let rate = Rate {
            per_second: 1.0,
            burst: 2.0,
        };
        let mut k: Keyed<u32> = Keyed::new(4, rate);
        for i in 0..4 {
            assert!(k.take(i, t0));
        }
        // Key 0 is used twice: empty. Keys 1..3 are half full.
        assert!(k.take(0, t0));
        assert!(!k.take(0, t0));
        // A flood of new keys never grows the table.
        for i in 100..10_000 {
            k.take(i, t0);
            assert!(k.len() <= 4);
        }
        // After a refill every old entry is full again and forgettable;
        // a new key does not push out a bucket still in debt.
        let mut k: Keyed<u32> = Keyed::new(2, rate);
        assert!(k.take(1, t0) && k.take(1, t0));
        let t5 = t0 + Duration::from_millis(500);
        assert!(k.take(2, t5));
        let t10 = t0 + Duration::from_secs(10);
        // Both refilled: both forgotten, 3 enters.
        assert!(k.take(3, t10));
        assert_eq!(k.len(), 1);
        // Now 3 is in debt, 4 enters beside it, 5 evicts the oldest (3).
        assert!(k.take(4, t10 + Duration::from_millis(1)));
        assert!(k.take(5, t10 + Duration::from_millis(2)));
        assert_eq!(k.len(), 2);
        assert!(!k.map.contains_key(&3));
    }
}
