//! The wall clock, in whole seconds since the Unix epoch: the one time
//! source for session and transaction expiry, login-loop windows, key ages
//! and metadata ages. It depends on nothing else in Portcullis, so every
//! layer may read it without an import circle.

/// Seconds since the Unix epoch (0 if the system clock is before 1970).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
