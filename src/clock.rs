//! The wall clock, in whole seconds since the Unix epoch: the one time
//! source for session and transaction expiry, login-loop windows, key ages
//! and metadata ages. It depends on nothing else in Portcullis, so every
//! layer may read it without an import circle.

/// Milliseconds since the Unix epoch: for session ids and revocations,
/// which must tell a login from a revocation made in the same second.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Seconds since the Unix epoch (0 if the system clock is before 1970).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
