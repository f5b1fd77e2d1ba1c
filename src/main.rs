//! Entry point: the command line lives in `cli`, serving in `run` and
//! `server`.
//!
//! Where each behaviour lives, one hop from here (docs/design.md tells the
//! whole request flow):
//!
//! | behaviour                                   | where                                              |
//! |---------------------------------------------|----------------------------------------------------|
//! | commands and their flags                    | `src/cli.rs`                                        |
//! | start, reload, stop; config → running app   | `src/run.rs`, `src/assemble.rs`, `src/lifecycle.rs` |
//! | accepting connections, timeouts, the cap, one thread per core | `src/connections/mod.rs` (`serve`)     |
//! | one request, first to last                  | `src/server.rs` (`App::handle`)                     |
//! | spoofed headers stripped                    | `src/proxy/headers/mod.rs` (`StripRules::strip_spoofed`) |
//! | client address, trusted proxies             | `src/policy/client_ip.rs`                           |
//! | the one decision (allow, login, 401, deny)  | `src/gate/decide.rs` (`decide`)                     |
//! | canonical path (passthrough, rules)         | `src/path.rs` (`normalise`)                         |
//! | access rules per path and who they allow    | `src/policy/rules.rs`, `src/policy/access.rs`       |
//! | a login completed: role, rules, session     | `src/server.rs` (`App::complete_login`), `src/policy/roles.rs` |
//! | a form POST kept across a login             | `src/server.rs` (`App::keep_form`), `src/resubmit.rs` |
//! | session verified, renewed, revocation applied | `src/session/mod.rs` (`Sessions::verify`)         |
//! | the revocation list and its sources         | `src/revocation/mod.rs`                             |
//! | forward-auth answer (nginx, Caddy, Traefik) | `src/forward_auth.rs` (`answer`)                    |
//! | OIDC login, callback, back-channel logout   | `src/idp/oidc/mod.rs`                               |
//! | SAML ACS (`InResponseTo` checked)           | `src/idp/saml/acs_endpoint.rs` (`acs`)              |
//! | SAML logout (redirect and SOAP)             | `src/idp/saml/slo.rs`                               |
//! | login transaction cookie                    | `src/session/transaction.rs`                        |
//! | to the upstream, identity headers added     | `src/proxy/mod.rs` (`UpstreamClient::forward`)      |
//! | signed identity assertion for the app       | `src/assertion/mod.rs`                              |
//! | SCIM provisioning                           | `src/scim/mod.rs`                                   |
//! | pages, audit log, metrics                   | `src/pages/mod.rs`, `src/audit.rs`, `src/metrics/mod.rs` |
//! | `new`, `doctor`; `check-config`'s builder   | `src/new/mod.rs`, `src/doctor/mod.rs`; `src/assemble.rs` (`offline_parts`) |

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
