//! Session ids: what a revocation names one login by. 16 bytes, base64url
//! (22 characters): the login time in milliseconds (6 bytes, big-endian)
//! and 10 random bytes. Unique without coordination between instances, and
//! it carries the login time finer than the second the JWT claims have.
//! It is not a secret: it only names a session whose cookie is signed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

const TIME_BYTES: usize = 6;
const RANDOM_BYTES: usize = 10;

pub use crate::clock::now_ms;

/// The clock in milliseconds when it is within second `now`, else the
/// start of that second (a login minted for another time, in tests).
pub fn ms_within(now: u64) -> u64 {
    let ms = now_ms();
    if ms / 1000 == now {
        ms
    } else {
        now.saturating_mul(1000)
    }
}

/// A new session id for a login at `ms`.
pub fn new(ms: u64) -> String {
    let mut raw = [0u8; TIME_BYTES + RANDOM_BYTES];
    raw[..TIME_BYTES].copy_from_slice(&ms.to_be_bytes()[8 - TIME_BYTES..]);
    rand::rng().fill_bytes(&mut raw[TIME_BYTES..]);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The login time a session id carries; `None` when it is not one of ours.
pub fn minted_ms(sid: &str) -> Option<u64> {
    let raw = URL_SAFE_NO_PAD.decode(sid).ok()?;
    if raw.len() != TIME_BYTES + RANDOM_BYTES {
        return None;
    }
    let mut be = [0u8; 8];
    be[8 - TIME_BYTES..].copy_from_slice(&raw[..TIME_BYTES]);
    Some(u64::from_be_bytes(be))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_its_time_and_is_unique() {
        let a = new(1_764_640_000_123);
        let b = new(1_764_640_000_123);
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert_eq!(minted_ms(&a), Some(1_764_640_000_123));
    }

    #[test]
    fn foreign_ids_carry_no_time() {
        for s in ["", "abc", "not base64 !", &"A".repeat(23)] {
            assert_eq!(minted_ms(s), None, "{s}");
        }
    }
}
