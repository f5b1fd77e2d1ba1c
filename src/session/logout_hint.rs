//! The logout hint: the OpenID provider's ID token, kept in a cookie that
//! only the logout endpoint receives, so that RP-initiated logout can send
//! it as `id_token_hint` (Okta requires it; Keycloak and others skip their
//! "do you want to sign out?" page with it) while Portcullis stays
//! stateless.
//!
//! The cookie is scoped with `Path=` to the logout endpoint: browsers send
//! it with no other request, and the upstream never sees it (it is one of
//! Portcullis' own cookies, removed by [`super::cookies::strip_own_cookies`]
//! if a client sends it anyway). It never decides anything: a forged hint
//! can at most make the provider refuse the logout request, which the
//! provider checks against its own signature.

use super::INTERNAL_COOKIE_PREFIX;

/// The one path the cookie is sent to.
pub const PATH: &str = "/.portcullis/logout";
/// An ID token larger than this is not kept (a browser caps a cookie at
/// about 4096 bytes with its attributes); logout then goes without a hint.
pub const MAX_BYTES: usize = 3600;

/// Name and attributes of the hint cookie of one domain.
#[derive(Debug, Clone)]
pub struct LogoutHint {
    name: String,
    secure: bool,
}

impl LogoutHint {
    /// `secure`: the session cookie's `Secure` setting. With it, the name
    /// carries the `__Secure-` prefix (not `__Host-`, which requires
    /// `Path=/`).
    pub fn new(secure: bool) -> LogoutHint {
        let prefix = if secure { "__Secure-" } else { "" };
        LogoutHint {
            name: format!("{prefix}{INTERNAL_COOKIE_PREFIX}logout_hint"),
            secure,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn attributes(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("; Path={PATH}; HttpOnly{secure}; SameSite=Lax")
    }

    /// `Set-Cookie` value keeping `id_token` for `max_age_secs` (the
    /// session's lifetime); `None` when it does not fit or is not a
    /// compact JWS, so that nothing malformed is ever written.
    pub fn set_cookie(&self, id_token: &str, max_age_secs: u64) -> Option<String> {
        let compact = id_token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        (compact && !id_token.is_empty() && id_token.len() <= MAX_BYTES).then(|| {
            format!(
                "{}={id_token}; Max-Age={max_age_secs}{}",
                self.name,
                self.attributes()
            )
        })
    }

    /// `Set-Cookie` value deleting the hint (logout, or a login without one).
    pub fn clear_cookie(&self) -> String {
        format!("{}=; Max-Age=0{}", self.name, self.attributes())
    }

    /// The hint the request carries, if any.
    pub fn read<'a>(&self, request_cookies: &[(&str, &'a str)]) -> Option<&'a str> {
        request_cookies
            .iter()
            .find(|(n, v)| *n == self.name && !v.is_empty())
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";

    #[test]
    fn secure_cookie_is_prefixed_and_scoped_to_logout() {
        let h = LogoutHint::new(true);
        assert_eq!(
            h.set_cookie(TOKEN, 600).as_deref(),
            Some(
                "__Secure-portcullis_logout_hint=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln; \
                 Max-Age=600; Path=/.portcullis/logout; HttpOnly; Secure; SameSite=Lax"
            )
        );
        assert_eq!(
            h.clear_cookie(),
            "__Secure-portcullis_logout_hint=; Max-Age=0; Path=/.portcullis/logout; HttpOnly; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn plain_http_has_no_prefix_and_no_secure() {
        let h = LogoutHint::new(false);
        assert_eq!(h.name(), "portcullis_logout_hint");
        assert_eq!(
            h.set_cookie(TOKEN, 5).as_deref(),
            Some(
                "portcullis_logout_hint=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln; \
                 Max-Age=5; Path=/.portcullis/logout; HttpOnly; SameSite=Lax"
            )
        );
    }

    #[test]
    fn too_large_or_not_a_compact_token_is_not_kept() {
        let h = LogoutHint::new(true);
        let at_limit = "a".repeat(MAX_BYTES);
        assert!(h.set_cookie(&at_limit, 1).is_some());
        assert_eq!(h.set_cookie(&format!("{at_limit}a"), 1), None);
        for bad in ["", "a;b", "a b", "a\r\nSet-Cookie: x=y", "a,b", "a=b"] {
            assert_eq!(h.set_cookie(bad, 1), None, "{bad:?}");
        }
    }

    #[test]
    fn read_finds_only_its_own_name() {
        let h = LogoutHint::new(true);
        let jar = [
            ("portcullis_logout_hint", "unprefixed"),
            ("__Secure-portcullis_logout_hint", "t1"),
        ];
        assert_eq!(h.read(&jar), Some("t1"));
        assert_eq!(h.read(&[("__Secure-portcullis_logout_hint", "")]), None);
        assert_eq!(LogoutHint::new(false).read(&jar), Some("unprefixed"));
    }
}
