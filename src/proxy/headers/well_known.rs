//! Identity headers that well-known apps trust, and that other gates and
//! web-server modules set. Portcullis removes them from every request,
//! whatever it is configured to send itself: an app switched to "trust the
//! proxy's header" (Grafana's `auth.proxy`, Gitea's reverse-proxy login,
//! Kubernetes' front proxy, Jenkins, SonarQube, OpenSearch) must never get
//! one from a client, on a passthrough path least of all.
//!
//! Where a product sets a family of names, the family's prefix is listed.
//! An app pointed at a header of its own choosing is covered by the
//! operator's `headers.strip`.

/// Removed from every request, in any letter case and with `_` for `-`.
pub const EXACT: &[&str] = &[
    // oauth2-proxy (and Portcullis' own defaults: an app may read them
    // after the operator renamed ours), Jenkins, SonarQube.
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-name",
    "x-forwarded-login",
    "x-forwarded-access-token",
    "gap-auth",
    // Generic names that app guides and small gates use.
    "x-authenticated-user",
    "x-user",
    "x-user-id",
    "x-user-name",
    "x-user-email",
    "x-user-groups",
    "x-user-roles",
    "x-username",
    "x-userid",
    "x-email",
    "x-groups",
    "x-roles",
    // Keycloak Gatekeeper / Louketo, nginx auth examples.
    "x-auth-user",
    "x-auth-userid",
    "x-auth-username",
    "x-auth-email",
    "x-auth-groups",
    "x-auth-roles",
    "x-auth-subject",
    // OpenSearch proxy authentication; Elasticsearch run-as.
    "x-proxy-user",
    "x-proxy-roles",
    "es-security-runas-user",
    // Google IAP's signed assertion (its user headers are a family below).
    "x-goog-iap-jwt-assertion",
    // Kong.
    "x-credential-identifier",
    "x-anonymous-consumer",
    // The members of the prefix families below that apps read by default,
    // listed by name too so a forward-auth answer can send them empty.
    "x-webauth-user",
    "x-webauth-email",
    "x-webauth-name",
    "x-webauth-fullname",
    "x-webauth-role",
    "x-webauth-groups",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-access-token",
    "remote-user",
    "remote-groups",
    "remote-name",
    "remote-email",
    "x-remote-user",
    "x-remote-group",
    // Shibboleth's default attribute-map names, set as headers with
    // `ShibUseHeaders On`.
    "eppn",
    "affiliation",
    "unscoped-affiliation",
    "entitlement",
    "persistent-id",
    "targeted-id",
    "subject-id",
    "pairwise-id",
];

/// Every name starting with one of these is removed (same spellings).
pub const PREFIXES: &[&str] = &[
    // Grafana `auth.proxy` (X-WEBAUTH-USER, -EMAIL, -NAME, -ROLE, -GROUPS),
    // Gitea and Forgejo (X-WEBAUTH-USER, -EMAIL, -FULLNAME).
    "x-webauth-",
    // oauth2-proxy's forward-auth answer.
    "x-auth-request-",
    // Apache `REMOTE_USER` read as a header, Authelia (Remote-User,
    // -Groups, -Name, -Email), Graylog, Paperless, Guacamole.
    "remote-",
    // Kubernetes front proxy (X-Remote-User, -Group, -Extra-*).
    "x-remote-",
    // Kong (X-Authenticated-Userid, -Scope, -Groups), others.
    "x-authenticated-",
    "x-consumer-",
    // Pomerium, authentik, Vouch Proxy.
    "x-pomerium-",
    "x-authentik-",
    "x-vouch-",
    // Cloudflare Access.
    "cf-access-",
    // Google Cloud IAP.
    "x-goog-authenticated-",
    // Azure App Service / Container Apps authentication ("Easy Auth").
    "x-ms-client-principal",
    "x-ms-token-",
    // AWS Application Load Balancer OIDC.
    "x-amzn-oidc-",
    // Tailscale Serve (Tailscale-User-Login, -Name, -Profile-Pic,
    // Tailscale-App-Capabilities).
    "tailscale-",
    // mod_auth_openidc (OIDC_CLAIM_*, OIDC_access_token,
    // OIDC_id_token_payload, ...), mod_auth_mellon (MELLON_*), Shibboleth
    // (Shib-Session-ID, Shib-Identity-Provider, ...), mod_auth_cas (CAS_*).
    "oidc-",
    "mellon-",
    "shib-",
    "cas-",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_canonical() {
        for n in EXACT.iter().chain(PREFIXES) {
            assert_eq!(*n, n.to_ascii_lowercase().replace('_', "-"), "{n}");
            assert!(http::HeaderName::from_bytes(n.as_bytes()).is_ok(), "{n}");
        }
    }
}
