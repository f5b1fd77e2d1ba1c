//! `oidc:` as read: one OpenID provider per instance. Checked in `config::oidc`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Oidc {
    /// The provider's issuer URL, exactly as in its ID tokens.
    pub issuer: String,
    /// Read the endpoints from `/.well-known/openid-configuration`. When
    /// off, give them below.
    #[serde(default = "yes")]
    pub discovery: bool,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub token_endpoint_auth: TokenEndpointAuth,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub claims: Claims,
    /// Also ask the userinfo endpoint and merge its claims (the ID token's
    /// win where both have one).
    #[serde(default)]
    pub userinfo: bool,
    /// Extra authorization request parameters: `prompt`, `domain_hint`,
    /// `acr_values`, …
    #[serde(default)]
    pub extra_auth_params: BTreeMap<String, String>,
    /// ID token signature algorithms accepted. HMAC only when listed; `none`
    /// never.
    #[serde(default = "default_algorithms")]
    pub allowed_algorithms: Vec<String>,
    #[serde(default = "yes")]
    pub pkce: bool,
    #[serde(default = "default_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// Refuse logins whose email is outside these domains.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Use an email the provider marks `email_verified: false` (as the
    /// email, the user name and for email rules). Off, as in oauth2-proxy:
    /// where users edit their own address, it proves nothing.
    #[serde(default)]
    pub allow_unverified_email: bool,
    /// Continue to the provider's end_session_endpoint on logout.
    #[serde(default = "yes")]
    pub logout_at_provider: bool,
    #[serde(default)]
    pub response_mode: ResponseMode,
    /// How often discovery and keys are fetched again.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Timeout for each request to the provider.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuth {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// The provider redirects back with a GET (a `SameSite=Lax` cookie works).
    #[default]
    Query,
    /// The provider POSTs the answer back (cross-site: the transaction cookie
    /// must be `SameSite=None; Secure`).
    FormPost,
}

/// Which claims become which identity fields. Paths may be dotted for nested
/// claims, e.g. Keycloak's `realm_access.roles`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The first present claim becomes the user name.
    #[serde(default = "default_user_claims")]
    pub user: Vec<String>,
    #[serde(default = "default_email_claim")]
    pub email: String,
    #[serde(default = "default_name_claim")]
    pub name: String,
    #[serde(default = "default_groups_claim")]
    pub groups: String,
    /// Identity attribute name -> claim path, for `headers.extra`.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

impl Default for Claims {
    fn default() -> Self {
        Claims {
            user: default_user_claims(),
            email: default_email_claim(),
            name: default_name_claim(),
            groups: default_groups_claim(),
            extra: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}
fn default_algorithms() -> Vec<String> {
    [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    ]
    .map(String::from)
    .to_vec()
}
fn default_skew() -> Duration {
    Duration::from_secs(60)
}
fn default_refresh() -> Duration {
    Duration::from_secs(3600)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_user_claims() -> Vec<String> {
    ["preferred_username", "email", "sub"]
        .map(String::from)
        .to_vec()
}
fn default_email_claim() -> String {
    "email".into()
}
fn default_name_claim() -> String {
    "name".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
