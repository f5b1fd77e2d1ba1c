//! How big the session cookie of a user with many groups gets, against the
//! session's chunk limit, nginx's default header buffer, and the header
//! size many upstream servers accept.

use std::sync::Arc;

use super::Check;
use crate::config::Config;
use crate::identity::{Identity, IdpKind};
use crate::session::cookies::CHUNK_BYTES;
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
        role: None,
    }
}

/// What that user's session weighs on the wire, as far as Portcullis
/// lets it: a session over `session.max_cookie_bytes` is refused with a
/// page, so nothing bigger ever reaches the proxy in front.
pub struct Estimate {
    /// The `Cookie` header a browser sends for it.
    pub cookie_header: usize,
    /// The login answer's response headers: the `Set-Cookie` headers with
    /// their attributes, the redirect and about 700 bytes of others.
    pub login_answer: usize,
}

pub fn estimate(config: &Config) -> Estimate {
    let sessions = Sessions::new(config, Arc::new(KeyRing::generate()));
    let claims = sessions.claims_for(
        &kept(config, heavy_user()),
        IdpKind::Oidc,
        crate::session::now(),
    );
    let token = sessions.encode(&claims).map_or(0, |t| t.len());
    let session = token.min(config.session.max_cookie_bytes);
    let chunks = session.div_ceil(CHUNK_BYTES);
    let name = sessions.cookie_name().len() + 2;
    Estimate {
        // `name_N=value; ` per chunk.
        cookie_header: session + chunks * (name + 3),
        // `Set-Cookie: name_N=value; Path=/; Max-Age=43200; HttpOnly;
        // Secure; SameSite=Lax` per chunk.
        login_answer: session + chunks * (name + 75) + 700,
    }
}

/// That user's groups as the session keeps them (`session.groups`).
fn kept(config: &Config, mut user: Identity) -> Identity {
    if let Some(f) = &config.session.groups {
        f.retain(&mut user.groups, |g| {
            config.access.named_groups().any(|n| n == g)
        });
    }
    user
}

pub fn cookie(config: &Config) -> Check {
    let sessions = Sessions::new(config, Arc::new(KeyRing::generate()));
    let user = kept(config, heavy_user());
    let claims = sessions.claims_for(&user, IdpKind::Oidc, crate::session::now());
    let token = match sessions.encode(&claims) {
        Ok(t) => t,
        Err(e) => return Check::warn("cookie_size", format!("cannot estimate: {e}"), "retry"),
    };
    let chunks = token.len().div_ceil(CHUNK_BYTES);
    // `name_N=value; ` per chunk, as the browser sends them.
    let cookie_header = token.len() + chunks * (sessions.cookie_name().len() + 5);
    let groups_header = user.groups.iter().map(String::len).sum::<usize>()
        + user.groups.len().saturating_sub(1) * config.headers.groups_separator.len();
    let filtered = if config.session.groups.is_some() {
        format!(" ({} kept by session.groups)", user.groups.len())
    } else {
        String::new()
    };
    let what = format!(
        "a user with {GROUPS} groups{filtered}: session {} bytes in {chunks} cookie(s) (session.max_cookie_bytes {}), Cookie header about {cookie_header} bytes, {} header {groups_header} bytes",
        token.len(),
        config.session.max_cookie_bytes,
        config.headers.groups
    );
    // A warning, not a failure: this user is imagined, and the refusal is
    // Portcullis' own clear page, not a broken login.
    if token.len() > config.session.max_cookie_bytes {
        Check::warn(
            "cookie_size",
            format!("{what}: such a login gets the \"too large for a cookie\" page"),
            "keep only the groups the app needs with session.groups (or filter them at the IdP, e.g. a group mapper or claim filter); behind the shipped nginx examples' buffers session.max_cookie_bytes may be raised to 30400",
        )
    } else if groups_header > UPSTREAM_HEADER {
        Check::warn(
            "cookie_size",
            what,
            "make sure the app accepts request headers this big, or keep fewer groups with session.groups",
        )
    } else {
        Check::ok("cookie_size", what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        crate::config::from_yaml_str(&format!(
            "domain: app.example.com\nupstream:\n  url: http://127.0.0.1:1\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn session_groups_shrink_the_estimate_and_keep_rule_groups() {
        let all = estimate(&config("session:\n  max_cookie_bytes: 30400\n")).cookie_header;
        let filtered = config(
            "session:\n  max_cookie_bytes: 30400\n  groups: ['cn=app-group-00*']\naccess:\n  allowed_groups: ['cn=app-group-149,ou=groups,dc=example,dc=com']\n",
        );
        assert!(estimate(&filtered).cookie_header * 5 < all, "{all}");
        let check = cookie(&filtered);
        assert!(
            check
                .message
                .contains("a user with 150 groups (11 kept by session.groups)"),
            "{}",
            check.message
        );
    }

    #[test]
    fn the_estimate_stops_at_the_limit_a_login_enforces() {
        let capped = estimate(&config(""));
        assert!(capped.cookie_header < 3100, "{}", capped.cookie_header);
        // Stock nginx keeps the login answer in 4 KiB.
        assert!(capped.login_answer < 4096, "{}", capped.login_answer);
        assert_eq!(cookie(&config("")).status, crate::doctor::Status::Warn);
    }
}
