//! The checked configuration the rest of Portcullis reads: [`Config`] and
//! its sections, each named after its YAML section (`upstream:` is
//! [`Upstream`]). Values are parsed (URLs, CIDRs, header names), secret
//! files read and defaults derived from `domain`; `super::validate` builds
//! them from `super::raw`. Sections with a file of their own (`oidc`, `saml`,
//! `metrics`, `assertion`, `scim`) keep their checked type there.

use std::path::PathBuf;
use std::time::Duration;

use globset::GlobMatcher;
use http::{HeaderName, Method};
use ipnet::IpNet;
use url::Url;

use super::assertion::Assertion;
use super::metrics::Metrics;
use super::oidc::Oidc;
use super::raw::{HeaderFamily, Log, Login, Pages, Scheme};
use super::saml::Saml;

#[derive(Debug, Clone)]
pub struct Config {
    pub domain: String,
    pub scheme: Scheme,
    pub listen: crate::listen::ListenAddr,
    /// Mode of the Unix socket (`listen_socket_mode`).
    pub listen_socket_mode: u32,
    pub state_dir: PathBuf,
    pub shutdown_timeout: Duration,
    pub upstream: Upstream,
    pub session: Session,
    pub revocation: super::Revocation,
    pub passthrough: Passthrough,
    pub headers: Headers,
    pub connections: Connections,
    pub access: Access,
    pub pages: Pages,
    pub log: Log,
    pub login: Login,
    pub oidc: Option<Oidc>,
    pub saml: Option<Saml>,
    pub metrics: Metrics,
    /// Which headers describe the original request in forward-auth mode.
    pub forward_auth_headers: HeaderFamily,
    /// The host names requests may carry (`strict_host`).
    pub hosts: Hosts,
    /// The signed identity assertion; `None` when `assertion.enabled` is off.
    pub assertion: Option<Assertion>,
    /// The assertion's header name, stripped from every request even when
    /// assertions are off.
    pub assertion_header: HeaderName,
    /// SCIM provisioning; `None` unless a `scim:` section is set.
    pub scim: Option<super::scim::Scim>,
    /// `roles` and `default_role`.
    pub roles: super::roles::Roles,
}

/// `strict_host` and the names it accepts.
#[derive(Debug, Clone)]
pub struct Hosts {
    pub strict: bool,
    /// `domain` first, then `domain_aliases`; lower case, optional `:port`.
    pub names: Vec<String>,
    /// The scheme's port, which a client may write or leave out.
    pub default_port: u16,
}

impl Config {
    /// `https://domain`: the origin every redirect and callback belongs to.
    pub fn public_origin(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.domain)
    }

    /// The configured IdP's `clock_skew`: how far its clock may be from
    /// ours (60 s when no IdP is configured, as the IdP sections default).
    pub fn idp_clock_skew(&self) -> Duration {
        match (&self.oidc, &self.saml) {
            (Some(o), _) => o.clock_skew,
            (None, Some(s)) => s.clock_skew,
            (None, None) => Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: Url,
    pub tls_verify: bool,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub preserve_host: bool,
    pub strip_version_headers: bool,
    pub basic_auth: Option<BasicAuth>,
}

#[derive(Clone)]
pub struct BasicAuth {
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicAuth { password: <redacted> }")
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub lifetime: Duration,
    /// `None` when inactivity expiry is off.
    pub inactivity_timeout: Option<Duration>,
    /// The configured name, without any prefix.
    pub base_cookie_name: String,
    /// The name used on the wire: `__Host-` + base when cookies are secure.
    pub cookie_name: String,
    pub key_file: PathBuf,
    pub secure_cookie: bool,
    /// Verified-cookie cache entries; 0 = off.
    pub verify_cache_size: usize,
    /// `session.groups`: `None` keeps every group.
    pub groups: Option<super::GroupFilter>,
    /// A login whose session token is longer is refused with a page.
    pub max_cookie_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Passthrough {
    pub paths: Vec<PathRule>,
    pub tokens: Vec<Token>,
    pub token_header: HeaderName,
}

#[derive(Debug, Clone)]
pub struct PathRule {
    pub kind: PathRuleKind,
    /// Empty: every method.
    pub methods: Vec<Method>,
}

#[derive(Debug, Clone)]
pub enum PathRuleKind {
    Exact(String),
    Prefix(String),
    Glob(GlobMatcher),
}

impl PathRuleKind {
    /// Whether the canonical path `norm` matches, the one matcher of
    /// `passthrough.paths` and `access.rules[].paths`.
    pub fn matches(&self, norm: &str) -> bool {
        match self {
            PathRuleKind::Exact(p) => norm == p,
            PathRuleKind::Prefix(p) => norm.starts_with(p.as_str()),
            PathRuleKind::Glob(g) => g.is_match(norm),
        }
    }
}

#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub sha256: [u8; 32],
    pub groups: Vec<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("name", &self.name).finish()
    }
}

#[derive(Debug, Clone)]
pub struct Headers {
    pub user: HeaderName,
    pub email: HeaderName,
    pub groups: HeaderName,
    pub preferred_username: HeaderName,
    pub name: HeaderName,
    /// Sent only when `roles` or `default_role` is set.
    pub role: HeaderName,
    pub groups_separator: String,
    pub extra: Vec<(String, HeaderName)>,
    /// `headers.strip`: the operator's own names to remove.
    pub strip: Vec<HeaderPattern>,
}

/// A header name or name prefix, canonical: lower case, `_` read as `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPattern {
    Exact(String),
    Prefix(String),
}

impl HeaderPattern {
    pub(super) fn matches(&self, canonical_name: &str) -> bool {
        match self {
            HeaderPattern::Exact(e) => e == canonical_name,
            HeaderPattern::Prefix(p) => canonical_name.starts_with(p.as_str()),
        }
    }
}

/// The checked `connections:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    pub max: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Headers {
    /// Every header Portcullis sets on the way to the upstream.
    pub fn all(&self) -> impl Iterator<Item = &HeaderName> {
        [
            &self.user,
            &self.email,
            &self.groups,
            &self.preferred_username,
            &self.name,
            &self.role,
        ]
        .into_iter()
        .chain(self.extra.iter().map(|(_, h)| h))
    }
}

#[derive(Debug, Clone)]
pub struct Access {
    pub allowed_groups: Vec<String>,
    /// Lower-cased.
    pub allowed_emails: Vec<String>,
    /// Lower-cased, without a leading `@`.
    pub allowed_email_domains: Vec<String>,
    /// Each names a role of `roles` or the `default_role`.
    pub allowed_roles: Vec<String>,
    pub allowed_ip_ranges: Vec<IpNet>,
    pub trusted_proxies: Vec<IpNet>,
    /// `access.rules`, in order; the lists above are the default rule.
    pub rules: Vec<AccessRule>,
}

/// One checked `access.rules` entry: it can match, and no earlier rule
/// covers it.
#[derive(Debug, Clone)]
pub struct AccessRule {
    pub description: String,
    pub paths: Vec<PathRuleKind>,
    /// Empty: every method.
    pub methods: Vec<Method>,
    pub allowed_groups: Vec<String>,
    /// Lower-cased.
    pub allowed_emails: Vec<String>,
    /// Lower-cased, without a leading `@`.
    pub allowed_email_domains: Vec<String>,
    pub allowed_roles: Vec<String>,
    pub allowed_ip_ranges: Vec<IpNet>,
    pub max_auth_age: Option<Duration>,
}

impl Access {
    /// Every group an access rule names, the default rule's included.
    pub fn named_groups(&self) -> impl Iterator<Item = &String> {
        self.allowed_groups
            .iter()
            .chain(self.rules.iter().flat_map(|r| r.allowed_groups.iter()))
    }
}
