//! How big the session cookie of a user with many groups gets, against the
//! session's chunk limit, nginx's default header buffer, and the header
//! size many upstream servers accept.

use std::sync::Arc;

use super::Check;
use crate::config::Config;
use crate::identity::{Identity, IdpKind};
use crate::session::cookies::{CHUNK_BYTES, MAX_CHUNKS};
use crate::session::{KeyRing, Sessions};

/// The user doctor imagines: 150 groups with directory-style names, as an
/// Active Directory or LDAP-backed IdP sends them.
pub const GROUPS: usize = 150;
/// Many app servers refuse request headers above 8 KiB in total (Tomcat,
/// older Node.js, Apache's per-field limit).
const UPSTREAM_HEADER: usize = 8 * 1024;

fn heavy_user() -> Identity {
    Identity {
        subject: "0f8c2b4e-6a57-4c1e-9e0d-3b7a1f2c9d84".into(),
        user: "firstname.lastname@example.com".into(),
        email: Some("firstname.lastname@example.com".into()),
        name: Some("Firstname Lastname".into()),
        preferred_username: Some("firstname.lastname".into()),
        groups: (0..GROUPS)
            .map(|i| format!("cn=app-group-{i:03},ou=groups,dc=example,dc=com"))
            .collect(),
        extra: std::collections::BTreeMap::default(),
    }
}

/// The `Cookie` header a browser sends for that user's session.
pub fn cookie_header_bytes(config: &Config) -> usize {
    let sessions = Sessions::new(config, Arc::new(KeyRing::generate()));
    let claims = sessions.claims_for(&heavy_user(), IdpKind::Oidc, crate::session::now());
    sessions.encode(&claims).map_or(0, |token| {
        token.len() + token.len().div_ceil(CHUNK_BYTES) * (sessions.cookie_name().len() + 5)
    })
}

pub fn cookie(config: &Config) -> Check {
    let sessions = Sessions::new(config, Arc::new(KeyRing::generate()));
    let user = heavy_user();
    let claims = sessions.claims_for(&user, IdpKind::Oidc, crate::session::now());
    let token = match sessions.encode(&claims) {
        Ok(t) => t,
        Err(e) => return Check::warn("cookie_size", format!("cannot estimate: {e}"), "retry"),
    };
    let chunks = token.len().div_ceil(CHUNK_BYTES);
    // `name_N=value; ` per chunk, as the browser sends them.
    let cookie_header = token.len() + chunks * (sessions.cookie_name().len() + 5);
    let groups_header = user.groups.iter().map(String::len).sum::<usize>()
        + (GROUPS - 1) * config.headers.groups_separator.len();
    let what = format!(
        "a user with {GROUPS} groups: session {} bytes in {chunks} cookie(s) (at most {MAX_CHUNKS}), Cookie header about {cookie_header} bytes, {} header {groups_header} bytes",
        token.len(),
        config.headers.groups
    );
    if chunks > MAX_CHUNKS {
        Check::fail(
            "cookie_size",
            format!("{what}: such a login is refused"),
            "keep only the groups the access rules need (filter them at the IdP, e.g. a group mapper or claim filter)",
        )
    } else if groups_header > UPSTREAM_HEADER {
        Check::warn(
            "cookie_size",
            what,
            "make sure the app accepts request headers this big, or filter groups at the IdP",
        )
    } else {
        Check::ok("cookie_size", what)
    }
}
