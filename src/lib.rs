//! Portcullis: a stateless single sign-on gate in front of a web app.
//!
//! Reading order, following a request: [`connections`] (accepting and
//! serving connections), [`server`] (proxy mode) or [`forward_auth`] (the
//! forward-auth answer) → [`gate`] (the one decision, built from the rules
//! in [`policy`] and the [`session`]) → [`proxy`] (to the upstream); [`idp`]
//! runs logins. [`config`] is read by all of them; [`pages`] and [`audit`]
//! are how decisions are shown and recorded.
//!
//! The public modules are what the binary, the integration tests and the
//! benchmarks use; the others are the crate's own.

#![forbid(unsafe_code)]

pub(crate) mod assemble;
pub mod assertion;
pub mod audit;
pub mod cli;
pub(crate) mod clock;
pub mod config;
pub(crate) mod connections;
pub(crate) mod doctor;
pub(crate) mod forward_auth;
pub mod gate;
pub mod identity;
pub mod idp;
pub(crate) mod instance;
pub(crate) mod keys_command;
pub(crate) mod lifecycle;
pub(crate) mod listen;
pub(crate) mod logging;
pub(crate) mod login_loop;
pub(crate) mod metrics;
pub(crate) mod new;
pub(crate) mod pages;
pub mod path;
pub mod policy;
pub mod proxy;
pub mod request_ctx;
pub(crate) mod resubmit;
pub mod revocation;
pub(crate) mod run;
pub(crate) mod scim;
pub(crate) mod server;
pub mod session;
pub(crate) mod state_file;
pub(crate) mod worker;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};

/// Paths under this prefix are Portcullis' own endpoints.
pub const RESERVED_PREFIX: &str = "/.portcullis/";
/// The page that sends a kept form again after a login (`resubmit`): the
/// one reserved path a login may return to.
pub const RESUBMIT_PATH: &str = "/.portcullis/resubmit";

/// Names of Portcullis' internal cookies start with this (after `__Host-`
/// and the operator's cookie prefix). The configuration refuses operator
/// cookie names that start with it; only `session` builds such names.
pub const INTERNAL_COOKIE_PREFIX: &str = "portcullis_";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response Portcullis sends: upstream bodies are
/// streamed through it, pages are small in-memory bodies.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub fn full_body(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty_body() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A random hex id of `bytes` bytes (request ids, key ids).
pub fn random_id(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}
