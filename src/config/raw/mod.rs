//! The configuration exactly as read from YAML and `PORTCULLIS_*`
//! variables: one serde type per YAML section, named after the section
//! (`raw::Upstream` is `upstream:`; [`Config`] is the whole file). Every
//! struct denies unknown keys: a typo must never silently weaken security.
//! The checked forms carry the same names one level up (`config::Upstream`,
//! in `super::checked`); `super::validate` turns one into the other.
//! Sections with a file of their own (`oidc`, `saml`, `metrics`,
//! `assertion`, `revocation`, `scim`) have their raw types in the file of
//! that name here and their
//! checked types and checks in `config/` beside this directory.

pub mod assertion;
pub mod metrics;
pub mod oidc;
pub mod revocation;
pub mod saml;
pub mod scim;

pub use assertion::Assertion;
pub use metrics::Metrics;
pub use oidc::Oidc;
pub use revocation::Revocation;
pub use saml::Saml;
pub use scim::Scim;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Public host name of the protected app, e.g. `grafana.example.com`.
    pub domain: Option<String>,
    /// Answer 421 to any request whose `Host` (or absolute-form authority)
    /// is neither `domain` nor one of `domain_aliases`.
    #[serde(default)]
    pub strict_host: bool,
    /// Further host names accepted when `strict_host` is on.
    #[serde(default)]
    pub domain_aliases: Vec<String>,
    #[serde(default)]
    pub scheme: Scheme,
    /// `HOST:PORT` to listen on, or `unix:/run/portcullis/NAME.sock`.
    #[serde(default = "defaults::listen")]
    pub listen: String,
    /// Octal mode of the Unix socket when `listen` is `unix:…`.
    #[serde(default = "defaults::listen_socket_mode")]
    pub listen_socket_mode: String,
    /// Where Portcullis keeps keys and IdP caches. Defaults to systemd's
    /// `$STATE_DIRECTORY`, else `./portcullis-state`.
    pub state_dir: Option<PathBuf>,
    /// How long in-flight requests may take to finish on shutdown.
    #[serde(default = "defaults::shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    pub upstream: Option<Upstream>,
    #[serde(default)]
    pub session: Session,
    /// `None` also for a section with only comments in it.
    #[serde(default)]
    pub revocation: Option<Revocation>,
    #[serde(default)]
    pub passthrough: Passthrough,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default)]
    pub connections: Connections,
    #[serde(default)]
    pub access: Access,
    #[serde(default)]
    pub pages: Pages,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub login: Login,
    /// OpenID Connect provider (one IdP per instance).
    pub oidc: Option<Oidc>,
    pub saml: Option<Saml>,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default)]
    pub forward_auth: ForwardAuth,
    #[serde(default)]
    pub assertion: Assertion,
    pub scim: Option<Scim>,
    /// The app's roles, highest first: the first that matches is the
    /// user's role.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The role of everyone no entry of `roles` matches; unset refuses them.
    pub default_role: Option<String>,
}

/// One entry of `roles:`: it matches a user in any of its groups, with
/// one of its addresses or domains, or signed in through one of its IdPs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// `oidc` or `saml`.
    #[serde(default)]
    pub idps: Vec<String>,
}

/// Forward-auth mode (`/.portcullis/auth`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuth {
    /// Which header family carries the original method, URI and host.
    #[serde(default)]
    pub headers: HeaderFamily,
}

/// The headers a front proxy uses to describe the request it asks about.
/// Only the configured family is believed: the other one is the client's
/// to send, because the front proxy copies client headers into its
/// question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderFamily {
    /// `X-Original-URI`, `X-Original-Method` and `Host`, as the shipped
    /// nginx `auth_request` example sets them.
    #[default]
    Nginx,
    /// `X-Forwarded-Uri`, `X-Forwarded-Method` and `X-Forwarded-Host`, which
    /// Caddy's `forward_auth` and Traefik's `forwardAuth` always set.
    Forwarded,
}

impl HeaderFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderFamily::Nginx => "nginx",
            HeaderFamily::Forwarded => "forwarded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Https,
    Http,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub url: String,
    /// Verify the upstream's TLS certificate. Turn off only for a
    /// self-signed upstream on the same host; prefer `ca_file`.
    #[serde(default = "defaults::yes")]
    pub tls_verify: bool,
    /// Extra PEM CA bundle trusted for the upstream, besides the system store.
    pub ca_file: Option<PathBuf>,
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long to wait for the upstream's response headers.
    #[serde(default = "defaults::upstream_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Send the client's `Host` to the upstream (oauth2-proxy's default);
    /// when off, `Host` is the upstream URL's authority.
    #[serde(default = "defaults::yes")]
    pub preserve_host: bool,
    /// Remove `Server` and `X-Powered-By` from upstream responses.
    #[serde(default = "defaults::yes")]
    pub strip_version_headers: bool,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
}

/// HTTP Basic credentials sent to the upstream: the user is the logged-in
/// user name, the password a fixed shared secret the app expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// Absolute lifetime of a session, counted from login.
    #[serde(default = "defaults::session_lifetime", with = "humantime_serde")]
    pub lifetime: Duration,
    /// A session unused for this long ends; `0s` turns it off.
    #[serde(default = "defaults::inactivity_timeout", with = "humantime_serde")]
    pub inactivity_timeout: Duration,
    #[serde(default = "defaults::cookie_name")]
    pub cookie_name: String,
    /// Key ring file; created with mode 0600 on first start if absent.
    pub key_file: Option<PathBuf>,
    /// `Secure` cookies. Turn off only for plain-http local use.
    #[serde(default = "defaults::yes")]
    pub secure_cookie: bool,
    /// How many already-verified session cookies are remembered, so the
    /// signature check runs once per cookie; `0` turns the cache off.
    #[serde(default = "defaults::verify_cache_size")]
    pub verify_cache_size: usize,
    /// Groups to keep in the session (names or patterns); unset keeps
    /// every group the IdP sends.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// The largest session (bytes of cookie values) a login may mint: what
    /// the web server in front accepts in one `Cookie` header and in the
    /// login answer's headers.
    #[serde(default = "defaults::max_cookie_bytes")]
    pub max_cookie_bytes: usize,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            lifetime: defaults::session_lifetime(),
            inactivity_timeout: defaults::inactivity_timeout(),
            cookie_name: defaults::cookie_name(),
            key_file: None,
            secure_cookie: true,
            verify_cache_size: defaults::verify_cache_size(),
            groups: None,
            max_cookie_bytes: defaults::max_cookie_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passthrough {
    #[serde(default)]
    pub paths: Vec<PathRule>,
    #[serde(default)]
    pub tokens: Vec<Token>,
    /// Header that may carry a passthrough token instead of `Authorization`,
    /// for apps whose own `Authorization` header must pass untouched.
    #[serde(default = "defaults::token_header")]
    pub token_header: String,
}

impl Default for Passthrough {
    fn default() -> Self {
        Passthrough {
            paths: vec![],
            tokens: vec![],
            token_header: defaults::token_header(),
        }
    }
}

/// One passthrough path rule: exactly one of `exact`, `prefix`, `glob`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub glob: Option<String>,
    /// HTTP methods the rule applies to; empty means all.
    #[serde(default)]
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Becomes the identity (user name) of requests carrying the token.
    pub name: String,
    /// Hex SHA-256 of the token (`portcullis hash-token`).
    pub sha256: Option<String>,
    /// File holding the hex SHA-256, to keep it out of YAML kept in git.
    pub sha256_file: Option<PathBuf>,
    /// Groups given to the token's identity (sent in the groups header).
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    #[serde(default = "defaults::h_user")]
    pub user: String,
    #[serde(default = "defaults::h_email")]
    pub email: String,
    #[serde(default = "defaults::h_groups")]
    pub groups: String,
    #[serde(default = "defaults::h_preferred_username")]
    pub preferred_username: String,
    #[serde(default = "defaults::h_name")]
    pub name: String,
    #[serde(default = "defaults::h_role")]
    pub role: String,
    #[serde(default = "defaults::groups_separator")]
    pub groups_separator: String,
    /// Extra identity attribute -> header name.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
    /// More request headers to remove from every request, besides the
    /// built-in lists: exact names, or `Prefix-*`.
    #[serde(default)]
    pub strip: Vec<String>,
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            user: defaults::h_user(),
            email: defaults::h_email(),
            groups: defaults::h_groups(),
            preferred_username: defaults::h_preferred_username(),
            name: defaults::h_name(),
            role: defaults::h_role(),
            groups_separator: defaults::groups_separator(),
            extra: BTreeMap::new(),
            strip: Vec::new(),
        }
    }
}

/// Limits on client connections (from nginx or whoever connects).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    /// Client connections served at once; more wait in the listen backlog.
    #[serde(default = "defaults::connections_max")]
    pub max: usize,
    /// How long a client may take to send a request's headers, counted
    /// from connecting and, on HTTP/1.1, from each request's first byte.
    #[serde(default = "defaults::header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may sit without a request.
    #[serde(default = "defaults::idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            max: defaults::connections_max(),
            header_read_timeout: defaults::header_read_timeout(),
            idle_timeout: defaults::idle_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    #[serde(default)]
    pub allowed_emails: Vec<String>,
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Names from `roles` (or `default_role`).
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// Client address ranges allowed to use the app (empty: all).
    #[serde(default)]
    pub allowed_ip_ranges: Vec<String>,
    /// Peers whose `X-Forwarded-For`/`-Proto`/`-Host` are believed.
    #[serde(default = "defaults::trusted_proxies")]
    pub trusted_proxies: Vec<String>,
    /// Rules per path, first match decides; the lists above are the rule
    /// for every request no rule matches.
    #[serde(default)]
    pub rules: Vec<AccessRule>,
}

/// One entry of `access.rules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// What the rule protects, in words for the 403 page and the audit log.
    #[serde(default)]
    pub description: String,
    /// Written as passthrough paths are: `exact`, `prefix` or `glob`.
    #[serde(default)]
    pub paths: Vec<PathRule>,
    /// `None`: every method. An empty list would never match (refused).
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    #[serde(default)]
    pub allowed_emails: Vec<String>,
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    #[serde(default)]
    pub allowed_ip_ranges: Vec<String>,
    /// A login at the IdP no older than this, e.g. `15m`.
    #[serde(default, with = "humantime_serde")]
    pub max_auth_age: Option<Duration>,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            allowed_groups: vec![],
            allowed_emails: vec![],
            allowed_email_domains: vec![],
            allowed_roles: vec![],
            allowed_ip_ranges: vec![],
            trusted_proxies: defaults::trusted_proxies(),
            rules: vec![],
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pages {
    pub support_url: Option<String>,
    pub footer: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Json,
            level: defaults::log_level(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

/// Login loop detection and the transaction cookie's lifetime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// More login round trips than this within `loop_window` show the
    /// "login loop" page.
    #[serde(default = "defaults::loop_max")]
    pub loop_max: u32,
    #[serde(default = "defaults::loop_window", with = "humantime_serde")]
    pub loop_window: Duration,
    /// How long a started login may take at the IdP.
    #[serde(default = "defaults::transaction_lifetime", with = "humantime_serde")]
    pub transaction_lifetime: Duration,
}

impl Default for Login {
    fn default() -> Self {
        Login {
            loop_max: defaults::loop_max(),
            loop_window: defaults::loop_window(),
            transaction_lifetime: defaults::transaction_lifetime(),
        }
    }
}

pub(crate) mod defaults {
    use std::time::Duration;

    pub fn yes() -> bool {
        true
    }
    pub fn listen() -> String {
        "127.0.0.1:4180".into()
    }
    pub fn listen_socket_mode() -> String {
        "0666".into()
    }
    pub fn shutdown_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn connections_max() -> usize {
        4096
    }
    pub fn header_read_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(75)
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn upstream_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn session_lifetime() -> Duration {
        Duration::from_secs(12 * 3600)
    }
    pub fn inactivity_timeout() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn cookie_name() -> String {
        "portcullis_session".into()
    }
    /// Cached session verifications: one per concurrently active user is
    /// plenty; about 0.5 kB each.
    pub fn verify_cache_size() -> usize {
        16_384
    }
    /// What nginx carries with its stock buffers: the login answer's
    /// headers must fit one 4 KiB `proxy_buffer_size` page, about 1 kB of
    /// them not the session. A bigger default would turn a user with many
    /// groups into nginx's 502 instead of Portcullis' "too large" page.
    pub fn max_cookie_bytes() -> usize {
        3000
    }
    /// Every chunk a session may have, 8 of 3800 bytes (what the shipped
    /// nginx examples' 32k buffers accept). Written out, not imported:
    /// config sits below `session`; a test in `session::cookies` keeps them
    /// equal.
    pub const MOST_COOKIE_BYTES: usize = 8 * 3800;
    pub fn token_header() -> String {
        "X-Portcullis-Authorization".into()
    }
    pub fn h_user() -> String {
        "X-Forwarded-User".into()
    }
    pub fn h_role() -> String {
        "X-Forwarded-Role".into()
    }
    pub fn h_email() -> String {
        "X-Forwarded-Email".into()
    }
    pub fn h_groups() -> String {
        "X-Forwarded-Groups".into()
    }
    pub fn h_preferred_username() -> String {
        "X-Forwarded-Preferred-Username".into()
    }
    pub fn h_name() -> String {
        "X-Forwarded-Name".into()
    }
    pub fn groups_separator() -> String {
        ",".into()
    }
    pub fn trusted_proxies() -> Vec<String> {
        vec!["127.0.0.0/8".into(), "::1/128".into()]
    }
    pub fn log_level() -> String {
        "info".into()
    }
    pub fn loop_max() -> u32 {
        4
    }
    pub fn loop_window() -> Duration {
        Duration::from_secs(60)
    }
    pub fn transaction_lifetime() -> Duration {
        Duration::from_secs(600)
    }
}
