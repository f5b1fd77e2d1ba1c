//! The `revocation:` section as read; checked in `config/revocation.rs`.

use std::path::PathBuf;

use serde::Deserialize;

/// Where revoked sessions are remembered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The list's file; default `revocations.json` in the state directory.
    pub file: Option<PathBuf>,
    /// `redis://` or `rediss://` (TLS): the Redis that the instances of
    /// this domain share their revocations through.
    pub redis_url: Option<String>,
    /// A file holding the Redis password (instead of one in the URL).
    pub redis_password_file: Option<PathBuf>,
    /// PEM CA certificates for a `rediss://` server not signed by a CA of
    /// the system store.
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of the Redis key and channel; default `portcullis:DOMAIN`, so
    /// several protected domains can share one Redis.
    pub redis_key_prefix: Option<String>,
}
