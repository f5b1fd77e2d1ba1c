//! Turns the raw configuration (`super::raw`) into the checked one
//! (`super::checked`): URLs parsed, CIDRs parsed, secret files read, header
//! names checked, defaults derived from `domain`. Collects every problem,
//! each naming its field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use url::Url;

use super::FieldError;
use super::checked::{
    Access, BasicAuth, Config, Connections, HeaderPattern, Headers, Hosts, Passthrough, PathRule,
    Session, Token, Upstream,
};
use super::raw::{self, Scheme};

struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

pub(super) fn validate(raw: raw::Config) -> Result<Config, Vec<FieldError>> {
    let mut errs = Errors(Vec::new());

    let domain = match raw.domain.as_deref().map(str::trim) {
        None | Some("") => {
            errs.add(
                "domain",
                "is required: set it to the public host name users type, e.g. `app.example.com`",
            );
            String::new()
        }
        Some(d) => host_name(d).unwrap_or_else(|e| {
            errs.add("domain", e);
            String::new()
        }),
    };
    let mut host_names = vec![domain.clone()];
    for (i, alias) in raw.domain_aliases.iter().enumerate() {
        match host_name(alias.trim()) {
            Ok(a) => host_names.push(a),
            Err(e) => errs.add(format!("domain_aliases[{i}]"), e),
        }
    }
    if !raw.domain_aliases.is_empty() && !raw.strict_host {
        errs.add(
            "domain_aliases",
            "only matters with `strict_host: true`; set that too, or remove the aliases",
        );
    }
    let hosts = Hosts {
        strict: raw.strict_host,
        names: host_names,
        default_port: match raw.scheme {
            Scheme::Https => 443,
            Scheme::Http => 80,
        },
    };

    let listen = crate::listen::ListenAddr::parse(&raw.listen).unwrap_or_else(|e| {
        errs.add("listen", e);
        crate::listen::ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 4180)))
    });
    let listen_socket_mode = u32::from_str_radix(raw.listen_socket_mode.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .unwrap_or_else(|| {
            errs.add(
                "listen_socket_mode",
                format!(
                    "`{}` is not an octal file mode: write e.g. `0660`",
                    raw.listen_socket_mode
                ),
            );
            0o666
        });
    let metrics = super::metrics::validate(&raw.metrics, &mut errs.0);

    let state_dir = raw
        .state_dir
        .clone()
        .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("portcullis-state"));

    let upstream = validate_upstream(&raw, &mut errs);
    let session = validate_session(&raw, &state_dir, &mut errs);
    let passthrough = validate_passthrough(&raw, &mut errs);
    let headers = validate_headers(&raw, &mut errs);
    let connections = validate_connections(&raw, &mut errs);
    let roles = super::roles::validate(&raw.roles, raw.default_role.as_deref(), &mut errs.0);
    let access = validate_access(&raw, &roles, &mut errs);

    if let Some(url) = &raw.pages.support_url
        && !(url.starts_with("https://")
            || url.starts_with("http://")
            || url.starts_with("mailto:"))
    {
        errs.add(
            "pages.support_url",
            "must start with https://, http:// or mailto:",
        );
    }
    if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
        errs.add(
            "log.level",
            format!(
                "`{}` is not a level: use error, warn, info, debug or trace",
                raw.log.level
            ),
        );
    }
    let oidc = raw
        .oidc
        .as_ref()
        .and_then(|o| super::oidc::validate(o, &mut errs.0));
    let saml = raw
        .saml
        .as_ref()
        .and_then(|s| super::saml::validate(s, &domain, raw.scheme, &state_dir, &mut errs.0));
    if raw.oidc.is_some() && raw.saml.is_some() {
        errs.add(
            "oidc",
            "and `saml` are both set: one instance logs in through one identity provider; remove one of them",
        );
    }
    let assertion = super::assertion::validate(&raw.assertion, &domain, &state_dir, &mut errs.0);
    let assertion_header = raw
        .assertion
        .header_name()
        .unwrap_or(HeaderName::from_static(super::assertion::DEFAULT_HEADER));
    if raw.login.loop_max == 0 {
        errs.add("login.loop_max", "must be at least 1");
    }

    let revocation = super::revocation::validate(
        &raw.revocation.clone().unwrap_or_default(),
        &domain,
        &state_dir,
        &mut errs.0,
    );

    let scim = super::scim::validate(raw.scim.as_ref(), &state_dir, &mut errs.0);
    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    let (Some(upstream), Some(passthrough), Some(headers), Some(metrics), Some(revocation)) =
        (upstream, passthrough, headers, metrics, revocation)
    else {
        return Err(errs.0);
    };
    Ok(Config {
        domain,
        scheme: raw.scheme,
        listen,
        listen_socket_mode,
        state_dir,
        shutdown_timeout: raw.shutdown_timeout,
        upstream,
        session,
        revocation,
        passthrough,
        headers,
        connections,
        access,
        pages: raw.pages,
        log: raw.log,
        login: raw.login,
        oidc,
        saml,
        metrics,
        forward_auth_headers: raw.forward_auth.headers,
        hosts,
        assertion,
        assertion_header,
        scim,
        roles,
    })
}

/// A host name with an optional port, lower-cased (`domain`, aliases).
fn host_name(d: &str) -> Result<String, String> {
    let d = d.to_ascii_lowercase();
    // A port is allowed for local use without a front proxy.
    let valid = !d.contains(['/', '@', ' ', '?', '#', '\\'])
        && Url::parse(&format!("https://{d}/")).ok().is_some_and(|u| {
            let host = u.host_str().unwrap_or_default();
            match u.port() {
                Some(p) => d == format!("{host}:{p}"),
                None => d == host,
            }
        });
    if valid {
        Ok(d)
    } else {
        Err(format!(
            "`{d}` is not a host name: give only the host, e.g. `app.example.com` (no scheme or path)"
        ))
    }
}

fn read_secret_file(path: &std::path::Path, field: &str, errs: &mut Errors) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Some(s.trim().to_string()),
        Err(e) => {
            errs.add(
                field,
                format!(
                    "cannot read `{}`: {e}; check the path and that the portcullis user may read it",
                    path.display()
                ),
            );
            None
        }
    }
}

fn validate_upstream(raw: &raw::Config, errs: &mut Errors) -> Option<Upstream> {
    let Some(u) = &raw.upstream else {
        errs.add(
            "upstream.url",
            "is required: the address of the app to protect, e.g. `http://127.0.0.1:3000`",
        );
        return None;
    };
    let url = match Url::parse(&u.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            if url.query().is_some() || url.fragment().is_some() {
                errs.add("upstream.url", "must not have a query or fragment");
            }
            if !url.username().is_empty() || url.password().is_some() {
                // It would end up in logs, and it is not how Portcullis
                // authenticates to the upstream.
                errs.add(
                    "upstream.url",
                    "must not contain a user or password; use `upstream.basic_auth` to send credentials",
                );
                return None;
            }
            Some(url)
        }
        Ok(_) => {
            errs.add(
                "upstream.url",
                format!("`{}` must be an http:// or https:// URL with a host", u.url),
            );
            None
        }
        Err(e) => {
            errs.add(
                "upstream.url",
                format!(
                    "`{}` is not a URL ({e}); write e.g. `http://127.0.0.1:3000`",
                    u.url
                ),
            );
            None
        }
    };
    if let Some(ca) = &u.ca_file
        && let Err(e) = std::fs::metadata(ca)
    {
        errs.add(
            "upstream.ca_file",
            format!("cannot read `{}`: {e}", ca.display()),
        );
    }
    let basic_auth = match &u.basic_auth {
        None => None,
        Some(b) => match (&b.password, &b.password_file) {
            (Some(p), None) => Some(BasicAuth {
                password: p.clone(),
            }),
            (None, Some(f)) => read_secret_file(f, "upstream.basic_auth.password_file", errs)
                .map(|password| BasicAuth { password }),
            _ => {
                errs.add(
                    "upstream.basic_auth",
                    "set exactly one of `password` and `password_file`",
                );
                None
            }
        },
    };
    if u.timeout.is_zero() {
        errs.add("upstream.timeout", "must be longer than 0s, e.g. `60s`");
    }
    Some(Upstream {
        url: url?,
        tls_verify: u.tls_verify,
        ca_file: u.ca_file.clone(),
        connect_timeout: u.connect_timeout,
        timeout: u.timeout,
        preserve_host: u.preserve_host,
        strip_version_headers: u.strip_version_headers,
        basic_auth,
    })
}

fn validate_session(raw: &raw::Config, state_dir: &std::path::Path, errs: &mut Errors) -> Session {
    let s = &raw.session;
    if s.lifetime < Duration::from_secs(60) {
        errs.add("session.lifetime", "must be at least 1m, e.g. `12h`");
    }
    if !s.inactivity_timeout.is_zero() && s.inactivity_timeout < Duration::from_secs(60) {
        errs.add(
            "session.inactivity_timeout",
            "must be `0s` (off) or at least 1m, e.g. `1h`",
        );
    }
    let valid_name = !s.cookie_name.is_empty()
        && s.cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !s.cookie_name.starts_with("__");
    if !valid_name {
        errs.add(
            "session.cookie_name",
            "use letters, digits, `_` and `-` only, without a `__` prefix (Portcullis adds `__Host-` itself)",
        );
    }
    if s.cookie_name.starts_with(crate::INTERNAL_COOKIE_PREFIX)
        && s.cookie_name != "portcullis_session"
    {
        errs.add(
            "session.cookie_name",
            format!(
                "must not start with `{}`, which Portcullis uses for its other cookies",
                crate::INTERNAL_COOKIE_PREFIX
            ),
        );
    }
    if s.verify_cache_size > 1 << 20 {
        errs.add(
            "session.verify_cache_size",
            "must be at most 1048576 cached cookies (about 0.5 kB each); the default is 16384, `0` turns the cache off",
        );
    }
    let most = raw::defaults::MOST_COOKIE_BYTES;
    if s.max_cookie_bytes < 1024 || s.max_cookie_bytes > most {
        errs.add(
            "session.max_cookie_bytes",
            format!("must be between 1024 and {most} (8 cookies of 3800 bytes); the default {} fits nginx's stock buffers, {most} needs those of the shipped nginx examples", raw::defaults::max_cookie_bytes()),
        );
    }
    let groups = s.groups.as_deref().and_then(|patterns| {
        super::GroupFilter::build(patterns)
            .map_err(|bad| {
                for (i, why) in bad {
                    errs.add(format!("session.groups[{i}]"), why);
                }
            })
            .ok()
    });
    let secure = s.secure_cookie;
    // Browsers keep Secure cookies over plain http only for localhost.
    let local_host = raw
        .domain
        .as_deref()
        .map(|d| {
            d.rsplit_once(':').map_or(d, |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    d
                }
            })
        })
        .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]");
    if secure && raw.scheme == Scheme::Http && !local_host {
        errs.add(
            "session.secure_cookie",
            "is true (the default) but `scheme` is http: browsers drop Secure cookies on plain http and every login would loop. Serve https (`scheme: https` behind TLS), or for local testing set `secure_cookie: false`",
        );
    }
    if !secure && raw.scheme == Scheme::Https {
        errs.add(
            "session.secure_cookie",
            "can be false only with `scheme: http` (plain-http local use); browsers would otherwise send the session over https only anyway",
        );
    }
    Session {
        lifetime: s.lifetime,
        inactivity_timeout: (!s.inactivity_timeout.is_zero()).then_some(s.inactivity_timeout),
        base_cookie_name: s.cookie_name.clone(),
        cookie_name: if secure {
            format!("__Host-{}", s.cookie_name)
        } else {
            s.cookie_name.clone()
        },
        key_file: s
            .key_file
            .clone()
            .unwrap_or_else(|| state_dir.join("session-keys.json")),
        secure_cookie: secure,
        verify_cache_size: s.verify_cache_size,
        groups,
        max_cookie_bytes: s.max_cookie_bytes,
    }
}

fn validate_passthrough(raw: &raw::Config, errs: &mut Errors) -> Option<Passthrough> {
    let p = &raw.passthrough;
    let mut paths = Vec::new();
    for (i, rule) in p.paths.iter().enumerate() {
        let field = format!("passthrough.paths[{i}]");
        let kind = super::path_rule::kind(rule, &field, &mut errs.0);
        let mut methods = Vec::new();
        for (j, m) in rule.methods.iter().enumerate() {
            match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => methods.push(m),
                Err(_) => errs.add(
                    format!("{field}.methods[{j}]"),
                    format!("`{m}` is not an HTTP method"),
                ),
            }
        }
        if let Some(kind) = kind {
            paths.push(PathRule { kind, methods });
        }
    }
    let mut tokens = Vec::new();
    for (i, t) in p.tokens.iter().enumerate() {
        let field = format!("passthrough.tokens[{i}]");
        if t.name.trim().is_empty() || t.name.chars().any(char::is_control) {
            errs.add(
                format!("{field}.name"),
                "must be a non-empty name without control characters",
            );
        }
        for (j, g) in t.groups.iter().enumerate() {
            if g.is_empty() || g.chars().any(char::is_control) {
                errs.add(
                    format!("{field}.groups[{j}]"),
                    "must be a non-empty group name without control characters",
                );
            }
        }
        let hex_hash = match (&t.sha256, &t.sha256_file) {
            (Some(h), None) => Some((h.clone(), format!("{field}.sha256"))),
            (None, Some(f)) => read_secret_file(f, &format!("{field}.sha256_file"), errs)
                .map(|h| (h, format!("{field}.sha256_file"))),
            _ => {
                errs.add(
                    field.clone(),
                    "set exactly one of `sha256` and `sha256_file` (make the hash with `portcullis hash-token`)",
                );
                None
            }
        };
        if let Some((h, hash_field)) = hex_hash {
            let mut sha256 = [0u8; 32];
            if hex::decode_to_slice(h.trim(), &mut sha256).is_err() {
                errs.add(
                    hash_field,
                    "must be 64 hex digits, the SHA-256 of the token: run `portcullis hash-token` and paste its output",
                );
            } else {
                tokens.push(Token {
                    name: t.name.clone(),
                    sha256,
                    groups: t.groups.clone(),
                });
            }
        }
    }
    let token_header = if let Ok(h) = HeaderName::from_bytes(p.token_header.as_bytes()) {
        Some(h)
    } else {
        errs.add("passthrough.token_header", "is not a valid header name");
        None
    };
    Some(Passthrough {
        paths,
        tokens,
        token_header: token_header?,
    })
}

fn header(name: &str, field: &str, errs: &mut Errors) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(h) if !is_reserved_header(&h) => Some(h),
        Ok(_) => {
            errs.add(
                field,
                format!(
                    "`{name}` is a header Portcullis or HTTP itself manages; choose another name"
                ),
            );
            None
        }
        Err(_) => {
            errs.add(field, format!("`{name}` is not a valid header name"));
            None
        }
    }
}

fn is_reserved_header(h: &HeaderName) -> bool {
    use http::header::{
        AUTHORIZATION, CONNECTION, CONTENT_LENGTH, COOKIE, HOST, SET_COOKIE, TRANSFER_ENCODING,
        UPGRADE,
    };
    [
        HOST,
        COOKIE,
        SET_COOKIE,
        AUTHORIZATION,
        CONNECTION,
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        UPGRADE,
    ]
    .contains(h)
        || h.as_str().eq_ignore_ascii_case("x-forwarded-for")
        || h.as_str().eq_ignore_ascii_case("x-forwarded-proto")
        || h.as_str().eq_ignore_ascii_case("x-forwarded-host")
}

fn validate_headers(raw: &raw::Config, errs: &mut Errors) -> Option<Headers> {
    let h = &raw.headers;
    let user = header(&h.user, "headers.user", errs);
    let email = header(&h.email, "headers.email", errs);
    let groups = header(&h.groups, "headers.groups", errs);
    let preferred = header(&h.preferred_username, "headers.preferred_username", errs);
    let name = header(&h.name, "headers.name", errs);
    let role = header(&h.role, "headers.role", errs);
    let mut extra = Vec::new();
    for (attr, hname) in &h.extra {
        if let Some(hn) = header(hname, &format!("headers.extra.{attr}"), errs) {
            extra.push((attr.clone(), hn));
        }
    }
    if h.groups_separator.is_empty() || h.groups_separator.chars().any(char::is_control) {
        errs.add(
            "headers.groups_separator",
            "must be a non-empty printable string, e.g. `,`",
        );
    }
    let strip = validate_strip(raw, errs);
    Some(Headers {
        user: user?,
        email: email?,
        groups: groups?,
        preferred_username: preferred?,
        name: name?,
        role: role?,
        groups_separator: h.groups_separator.clone(),
        extra,
        strip,
    })
}

/// Headers Portcullis reads to decide, or passes on because the exchange
/// needs them: `headers.strip` must not remove them before the decision.
const NEEDED_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "authorization",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "accept",
    "sec-fetch-mode",
    "sec-fetch-dest",
    "x-requested-with",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-original-uri",
    "x-original-method",
];

fn validate_strip(raw: &raw::Config, errs: &mut Errors) -> Vec<HeaderPattern> {
    let token_header = raw.passthrough.token_header.to_ascii_lowercase();
    let mut out = Vec::new();
    for (i, entry) in raw.headers.strip.iter().enumerate() {
        let field = format!("headers.strip[{i}]");
        let e = entry.trim();
        let (name, prefix) = match e.strip_suffix('*') {
            Some(p) => (p, true),
            None => (e, false),
        };
        if name.is_empty() || name.contains('*') || HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            errs.add(
                field,
                format!(
                    "`{entry}` is not a header name or `Prefix-*`: write e.g. `X-Grafana-User` or `X-Corp-Auth-*` (one `*`, at the end, after at least one character)"
                ),
            );
            continue;
        }
        let canonical = name.to_ascii_lowercase().replace('_', "-");
        let pattern = if prefix {
            HeaderPattern::Prefix(canonical)
        } else {
            HeaderPattern::Exact(canonical)
        };
        let token = token_header.replace('_', "-");
        if let Some(needed) = NEEDED_HEADERS
            .iter()
            .copied()
            .chain(std::iter::once(token.as_str()))
            .find(|n| pattern.matches(n))
        {
            errs.add(
                field,
                format!(
                    "`{entry}` would remove `{needed}`, which Portcullis needs to decide on or pass on every request; list the app's own header names instead"
                ),
            );
            continue;
        }
        out.push(pattern);
    }
    out
}

fn validate_connections(raw: &raw::Config, errs: &mut Errors) -> Connections {
    let c = &raw.connections;
    if c.max == 0 || c.max > 1_000_000 {
        errs.add(
            "connections.max",
            format!(
                "`{}` is out of range: give the number of client connections served at once, from 1 to 1000000 [default 4096]",
                c.max
            ),
        );
    }
    let within = |d: Duration, field: &str, max: Duration, errs: &mut Errors| {
        if d < Duration::from_secs(1) || d > max {
            errs.add(
                field,
                format!(
                    "`{}` is out of range: give a duration from 1s to {}",
                    humantime::format_duration(d),
                    humantime::format_duration(max)
                ),
            );
        }
    };
    within(
        c.header_read_timeout,
        "connections.header_read_timeout",
        Duration::from_secs(600),
        errs,
    );
    within(
        c.idle_timeout,
        "connections.idle_timeout",
        Duration::from_secs(3600),
        errs,
    );
    Connections {
        max: c.max,
        header_read_timeout: c.header_read_timeout,
        idle_timeout: c.idle_timeout,
    }
}

/// Email domains as rules compare them: lower case, without a leading
/// `@`; each must be a domain (`field[i]` names one that is not).
pub(super) fn email_domains(
    list: &[String],
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Vec<String> {
    let out: Vec<String> = list
        .iter()
        .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
        .collect();
    for (i, d) in out.iter().enumerate() {
        if d.is_empty() || d.contains(['@', '/', ' ']) {
            errs.push(FieldError {
                field: format!("{field}[{i}]"),
                message: "must be a domain such as `example.com`".into(),
            });
        }
    }
    out
}

pub(super) fn cidrs_into(list: &[String], field: &str, errs: &mut Vec<FieldError>) -> Vec<IpNet> {
    let mut e = Errors(std::mem::take(errs));
    let out = cidrs(list, field, &mut e);
    *errs = e.0;
    out
}

fn cidrs(list: &[String], field: &str, errs: &mut Errors) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let s = s.trim();
        // A bare address means that one host.
        let parsed = s
            .parse::<IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(n) => out.push(n),
            Err(_) => errs.add(
                format!("{field}[{i}]"),
                format!("`{s}` is not a CIDR range: write e.g. `10.0.0.0/8`, `192.0.2.7` or `2001:db8::/32`"),
            ),
        }
    }
    out
}

fn validate_access(raw: &raw::Config, roles: &super::roles::Roles, errs: &mut Errors) -> Access {
    let a = &raw.access;
    super::roles::check_allowed(&a.allowed_roles, roles, "access", &mut errs.0);
    let allowed_email_domains = email_domains(
        &a.allowed_email_domains,
        "access.allowed_email_domains",
        &mut errs.0,
    );
    Access {
        allowed_groups: a.allowed_groups.clone(),
        allowed_emails: a
            .allowed_emails
            .iter()
            .map(|e| e.trim().to_ascii_lowercase())
            .collect(),
        allowed_email_domains,
        allowed_roles: a.allowed_roles.clone(),
        allowed_ip_ranges: cidrs(&a.allowed_ip_ranges, "access.allowed_ip_ranges", errs),
        trusted_proxies: validate_trusted_proxies(&a.trusted_proxies, errs),
        rules: super::access_rules::validate(&a.rules, roles, &mut errs.0),
    }
}

fn validate_trusted_proxies(raw: &[String], errs: &mut Errors) -> Vec<IpNet> {
    let field = "access.trusted_proxies";
    let nets = cidrs(raw, field, errs);
    // Judged as a whole only once every entry parsed (indexes line up).
    if nets.len() == raw.len() {
        let indexed: Vec<(usize, IpNet)> = nets.iter().copied().enumerate().collect();
        errs.0
            .extend(super::trusted_proxies::check(field, raw, &indexed));
    }
    nets
}

#[cfg(test)]
mod tests {
    use super::super::from_yaml_str;
    use std::time::Duration;

    fn fields(yaml: &str) -> Vec<String> {
        match from_yaml_str(yaml) {
            Ok(_) => vec![],
            Err(e) => e.fields().into_iter().map(|f| f.field).collect(),
        }
    }

    const MIN: &str = "domain: app.example.com\nupstream:\n  url: http://127.0.0.1:3000\n";

    #[test]
    fn the_revocation_list_lives_in_the_state_directory_unless_told() {
        let c = from_yaml_str(&format!("{MIN}state_dir: /var/lib/p\nrevocation:\n")).unwrap();
        assert_eq!(
            c.revocation.file,
            std::path::PathBuf::from("/var/lib/p/revocations.json")
        );
        let c =
            from_yaml_str(&format!("{MIN}revocation:\n  file: /srv/shared/rev.json\n")).unwrap();
        assert_eq!(
            c.revocation.file,
            std::path::PathBuf::from("/srv/shared/rev.json")
        );
        assert_eq!(
            fields(&format!("{MIN}revocation:\n  fil: x\n")),
            ["revocation.fil"]
        );
    }

    #[test]
    fn strict_host_is_off_by_default_and_aliases_are_host_names() {
        let c = from_yaml_str(MIN).unwrap();
        assert!(!c.hosts.strict);
        assert_eq!(c.hosts.names, vec!["app.example.com"]);
        assert_eq!(c.hosts.default_port, 443);
        let c = from_yaml_str(&format!(
            "{MIN}strict_host: true\ndomain_aliases: [App.Internal:8443]\n"
        ))
        .unwrap();
        assert!(c.hosts.strict);
        assert_eq!(c.hosts.names, vec!["app.example.com", "app.internal:8443"]);
        assert_eq!(
            fields(&format!(
                "{MIN}strict_host: true\ndomain_aliases: [ok.example, 'https://x/']\n"
            )),
            vec!["domain_aliases[1]"]
        );
        // Aliases without strict_host would do nothing: say so.
        assert_eq!(
            fields(&format!("{MIN}domain_aliases: [b.example]\n")),
            vec!["domain_aliases"]
        );
    }

    #[test]
    fn forward_auth_header_family() {
        use super::super::HeaderFamily;
        let c = from_yaml_str(MIN).unwrap();
        assert_eq!(c.forward_auth_headers, HeaderFamily::Nginx);
        let c = from_yaml_str(&format!("{MIN}forward_auth:\n  headers: forwarded\n")).unwrap();
        assert_eq!(c.forward_auth_headers, HeaderFamily::Forwarded);
        let e = from_yaml_str(&format!("{MIN}forward_auth:\n  headers: traefik\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("traefik"), "{e}");
        let e = from_yaml_str(&format!("{MIN}forward_auth:\n  header: nginx\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("header"), "{e}");
    }

    #[test]
    fn minimal_config_is_valid_and_secure_by_default() {
        let c = from_yaml_str(MIN).unwrap();
        assert_eq!(c.domain, "app.example.com");
        assert!(c.session.secure_cookie);
        assert_eq!(c.session.cookie_name, "__Host-portcullis_session");
        assert_eq!(c.public_origin(), "https://app.example.com");
        assert_eq!(c.access.trusted_proxies.len(), 2);
        assert!(
            c.access
                .trusted_proxies
                .iter()
                .all(|n| n.addr().is_loopback())
        );
    }

    #[test]
    fn unknown_key_names_its_path() {
        let f = fields(&format!("{MIN}access:\n  allowed_grups: [a]\n"));
        assert_eq!(f, vec!["access.allowed_grups"]);
    }

    #[test]
    fn missing_domain_and_bad_url() {
        let f = fields("upstream:\n  url: 'not a url'\n");
        assert!(f.contains(&"domain".to_string()), "{f:?}");
        assert!(f.contains(&"upstream.url".to_string()), "{f:?}");
    }

    #[test]
    fn verify_cache_size_is_bounded() {
        let c = from_yaml_str(MIN).unwrap();
        assert_eq!(c.session.verify_cache_size, 16384);
        let c = from_yaml_str(&format!("{MIN}session:\n  verify_cache_size: 0\n")).unwrap();
        assert_eq!(c.session.verify_cache_size, 0);
        let f = fields(&format!("{MIN}session:\n  verify_cache_size: 2000000\n"));
        assert_eq!(f, vec!["session.verify_cache_size"]);
    }

    #[test]
    fn session_groups_patterns_are_checked() {
        let c = from_yaml_str(&format!("{MIN}session:\n  groups: [staff, 'app-*']\n")).unwrap();
        let f = c.session.groups.unwrap();
        assert!(f.matches("app-admins") && f.matches("staff") && !f.matches("other"));
        assert!(from_yaml_str(MIN).unwrap().session.groups.is_none());
        assert_eq!(
            fields(&format!("{MIN}session:\n  groups: [staff, '', 'a[']\n")),
            ["session.groups[1]", "session.groups[2]"]
        );
    }

    #[test]
    fn bad_cidr_names_index() {
        let f = fields(&format!(
            "{MIN}access:\n  allowed_ip_ranges: ['10.0.0.0/8', '10.0.0.300/8']\n"
        ));
        assert_eq!(f, vec!["access.allowed_ip_ranges[1]"]);
    }

    #[test]
    fn unreadable_secret_file() {
        let f = fields(&format!(
            "{MIN}passthrough:\n  tokens:\n    - name: mon\n      sha256_file: /nonexistent/portcullis/hash\n"
        ));
        assert_eq!(f, vec!["passthrough.tokens[0].sha256_file"]);
    }

    #[test]
    fn token_names_and_groups_have_no_control_characters() {
        let token = |name: &str, groups: &str| {
            fields(&format!(
                "{MIN}passthrough:\n  tokens:\n    - name: \"{name}\"\n      sha256: {}\n      groups: [{groups}]\n",
                "ab".repeat(32)
            ))
        };
        assert_eq!(token("backup", "\"ops\""), Vec::<String>::new());
        assert_eq!(
            token("back\\nup", "\"ops\""),
            ["passthrough.tokens[0].name"]
        );
        assert_eq!(
            token("backup", "\"ops\", \"adm\\rins\""),
            ["passthrough.tokens[0].groups[1]"]
        );
    }

    #[test]
    fn prefix_must_end_with_slash() {
        let f = fields(&format!(
            "{MIN}passthrough:\n  paths:\n    - prefix: /static\n"
        ));
        assert_eq!(f, vec!["passthrough.paths[0].prefix"]);
    }

    #[test]
    fn insecure_cookie_needs_http_scheme() {
        let f = fields(&format!("{MIN}session:\n  secure_cookie: false\n"));
        assert_eq!(f, vec!["session.secure_cookie"]);
        let ok = from_yaml_str(&format!(
            "{MIN}scheme: http\nsession:\n  secure_cookie: false\n"
        ))
        .unwrap();
        assert_eq!(ok.session.cookie_name, "portcullis_session");
    }

    #[test]
    fn plain_http_needs_insecure_cookies_except_on_localhost() {
        let f = fields(&format!("{MIN}scheme: http\n"));
        assert_eq!(f, vec!["session.secure_cookie"]);
        let local =
            "domain: localhost:8080\nscheme: http\nupstream:\n  url: http://127.0.0.1:3000\n";
        assert!(from_yaml_str(local).is_ok());
    }

    #[test]
    fn upstream_credentials_in_the_url_are_refused() {
        let f =
            fields("domain: a.example.com\nupstream:\n  url: http://admin:s3cret@127.0.0.1:3000\n");
        assert_eq!(f, vec!["upstream.url"]);
    }

    #[test]
    fn identity_header_cannot_be_a_managed_header() {
        let f = fields(&format!("{MIN}headers:\n  user: Cookie\n"));
        assert_eq!(f, vec!["headers.user"]);
    }

    #[test]
    fn durations_are_human() {
        let c = from_yaml_str(&format!(
            "{MIN}session:\n  lifetime: 8h\n  inactivity_timeout: 0s\n"
        ))
        .unwrap();
        assert_eq!(c.session.lifetime.as_secs(), 8 * 3600);
        assert!(c.session.inactivity_timeout.is_none());
    }

    #[test]
    fn connection_limits_default_and_bounds() {
        let c = from_yaml_str(MIN).unwrap();
        assert_eq!(c.connections.max, 4096);
        assert_eq!(c.connections.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.connections.idle_timeout, Duration::from_secs(75));
        for (yaml, field) in [
            ("max: 0", "connections.max"),
            ("max: 1000001", "connections.max"),
            ("header_read_timeout: 0s", "connections.header_read_timeout"),
            (
                "header_read_timeout: 999ms",
                "connections.header_read_timeout",
            ),
            (
                "header_read_timeout: 11m",
                "connections.header_read_timeout",
            ),
            ("idle_timeout: 0s", "connections.idle_timeout"),
            ("idle_timeout: 2h", "connections.idle_timeout"),
        ] {
            let f = fields(&format!("{MIN}connections:\n  {yaml}\n"));
            assert_eq!(f, vec![field], "{yaml}");
        }
        let c = from_yaml_str(&format!(
            "{MIN}connections:\n  max: 1\n  header_read_timeout: 1s\n  idle_timeout: 1h\n"
        ))
        .unwrap();
        assert_eq!(c.connections.max, 1);
    }

    #[test]
    fn strip_entries_are_names_or_prefixes_and_spare_what_portcullis_reads() {
        let c = from_yaml_str(&format!(
            "{MIN}headers:\n  strip: [X-Grafana-User, 'x_corp_*', ' Remote-Login ']\n"
        ))
        .unwrap();
        assert_eq!(
            c.headers.strip,
            vec![
                super::HeaderPattern::Exact("x-grafana-user".into()),
                super::HeaderPattern::Prefix("x-corp-".into()),
                super::HeaderPattern::Exact("remote-login".into()),
            ]
        );
        for bad in [
            "'*'",
            "''",
            "'X-*-User'",
            "'X User'",
            "Cookie",
            "AUTHORIZATION",
            "'Sec-Fetch-*'",
            "'X-*'",
            "x_original_uri",
            "'X-Portcullis-*'",
        ] {
            let f = fields(&format!("{MIN}headers:\n  strip: [{bad}]\n"));
            assert_eq!(f, vec!["headers.strip[0]"], "{bad}");
        }
    }
}
