//! The gate: one reading of every request, and one decision on it, for the
//! proxy (the `server` module) and for forward-auth (`forward_auth`) alike. Both build an [`Asked`] (what is asked, as the app will receive
//! it), call [`decide`], and only render the [`Decision`].
//!
//! - [`request`]: the typed view of a request, from the proxy's own request
//!   or from a forward-auth question ([`original`] reads the front proxy's
//!   header family).
//! - [`decide`]: strict host, tunnels, the canonical path, own endpoints,
//!   passthrough, tokens, session, access rules; metrics and audit.
//! - [`host`]: the `strict_host` rule.
//! - [`respond`]: the answers both renderers share (login required,
//!   refusals, the sign-in URL).

pub mod decide;
pub mod host;
pub mod original;
pub mod request;
pub mod respond;

pub use decide::{Allow, Decision, NeedLogin, Refusal, Via, decide};
pub use request::{Asked, Mode, Target};
