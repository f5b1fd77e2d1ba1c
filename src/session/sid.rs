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

    #[test]
    fn a_login_now_is_dated_by_the_clock_to_the_millisecond() {
        // Retried when the second turns during the call, or when the clock
        // stands on a whole second (where the two readings agree).
        for _ in 0..100 {
            let before = now_ms();
            let second = before / 1000;
            let ms = ms_within(second);
            let after = now_ms();
            if after / 1000 != second || before.is_multiple_of(1000) {
                continue;
            }
            assert!(
                (before..=after).contains(&ms),
                "{before} <= {ms} <= {after}"
            );
            return;
        }
        panic!("the clock never stood still within a second");
    }

    #[test]
    fn a_login_at_another_second_starts_at_that_second() {
        assert_eq!(ms_within(1_700_000_000), 1_700_000_000_000);
    }
}
