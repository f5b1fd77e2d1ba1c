//! The nginx site for the domain, read from `nginx -T` (nginx's own dump
//! of every configuration file it loads): it sends the domain's requests to
//! Portcullis' listen address with `Host` and `X-Forwarded-Proto`, and, in
//! proxy mode, passes WebSocket upgrades.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Check;
use crate::config::Config;
use crate::listen::ListenAddr;

/// One directive: its words, and its block when it has one.
#[derive(Debug, Clone)]
pub struct Directive {
    pub args: Vec<String>,
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    fn name(&self) -> &str {
        self.args.first().map(String::as_str).unwrap_or_default()
    }
    fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or_default()
    }
}

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let flush = |w: &mut String, out: &mut Vec<String>| {
        if !w.is_empty() {
            out.push(std::mem::take(w));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' if word.is_empty() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' | '\'' if word.is_empty() => {
                let mut s = String::new();
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                s.push(e);
                            }
                        }
                        d if d == c => break,
                        d => s.push(d),
                    }
                }
                // An empty quoted string is a word too (`Connection ""`).
                out.push(s);
            }
            '{' | '}' | ';' => {
                flush(&mut word, &mut out);
                out.push(c.to_string());
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Parses one file's text into its directives (braces and semicolons only;
/// nginx has already checked the syntax).
pub fn parse(text: &str) -> Vec<Directive> {
    fn block(toks: &mut std::iter::Peekable<std::vec::IntoIter<String>>) -> Vec<Directive> {
        let mut out = Vec::new();
        let mut args = Vec::new();
        while let Some(t) = toks.next() {
            match t.as_str() {
                ";" => out.push(Directive {
                    args: std::mem::take(&mut args),
                    block: None,
                }),
                "{" => {
                    let inner = block(toks);
                    out.push(Directive {
                        args: std::mem::take(&mut args),
                        block: Some(inner),
                    });
                }
                "}" => return out,
                _ => args.push(t),
            }
        }
        out
    }
    block(&mut tokens(text).into_iter().peekable())
}

/// `nginx -T` prints every file after a `# configuration file PATH:` line.
pub fn split_dump(dump: &str) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for line in dump.lines() {
        if let Some(path) = line
            .strip_prefix("# configuration file ")
            .and_then(|l| l.strip_suffix(':'))
        {
            files.push((PathBuf::from(path), String::new()));
        } else if let Some((_, text)) = files.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    files
}

/// The main file with every `include` replaced by the files it names.
pub fn resolve(files: &[(PathBuf, String)]) -> Vec<Directive> {
    let Some((main, _)) = files.first() else {
        return Vec::new();
    };
    let prefix = main.parent().unwrap_or(Path::new("/")).to_path_buf();
    let parsed: BTreeMap<&Path, Vec<Directive>> =
        files.iter().map(|(p, t)| (p.as_path(), parse(t))).collect();
    fn expand(
        ds: &[Directive],
        parsed: &BTreeMap<&Path, Vec<Directive>>,
        prefix: &Path,
        depth: usize,
    ) -> Vec<Directive> {
        let mut out = Vec::new();
        for d in ds {
            if d.name() == "include" && d.block.is_none() && depth < 16 {
                let Some(pattern) = d.args.get(1) else {
                    continue;
                };
                let full = prefix.join(pattern);
                let Ok(glob) = globset::Glob::new(&full.to_string_lossy()) else {
                    continue;
                };
                let m = glob.compile_matcher();
                for (p, inner) in parsed {
                    if m.is_match(p) {
                        out.extend(expand(inner, parsed, prefix, depth + 1));
                    }
                }
            } else {
                out.push(Directive {
                    args: d.args.clone(),
                    block: d.block.as_ref().map(|b| expand(b, parsed, prefix, depth)),
                });
            }
        }
        out
    }
    expand(&parsed[main.as_path()], &parsed, &prefix, 0)
}

fn walk<'a>(ds: &'a [Directive], name: &str, out: &mut Vec<&'a Directive>) {
    for d in ds {
        if d.name() == name {
            out.push(d);
        }
        walk(d.children(), name, out);
    }
}

fn server_name_matches(pattern: &str, domain: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let domain = domain.split(':').next().unwrap_or(domain);
    if let Some(rest) = p.strip_prefix("*.") {
        domain.ends_with(&format!(".{rest}"))
    } else if let Some(rest) = p.strip_prefix('.') {
        domain == rest || domain.ends_with(&format!(".{rest}"))
    } else {
        p == domain
    }
}

/// Where a `proxy_pass` sends requests: each `host:port` or `unix:PATH`.
fn targets(proxy_pass: &str, upstreams: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let rest = proxy_pass
        .strip_prefix("http://")
        .or_else(|| proxy_pass.strip_prefix("https://"))
        .unwrap_or(proxy_pass);
    if let Some(sock) = rest.strip_prefix("unix:") {
        return vec![format!("unix:{}", sock.split(':').next().unwrap_or(sock))];
    }
    let host = rest.split('/').next().unwrap_or(rest);
    match upstreams.get(host) {
        Some(servers) => servers.clone(),
        None if host.contains(':') => vec![host.to_string()],
        None => vec![format!("{host}:80")],
    }
}

fn points_at(target: &str, listen: &ListenAddr) -> bool {
    match listen {
        ListenAddr::Unix(p) => target == format!("unix:{}", p.display()),
        ListenAddr::Tcp(a) => {
            let alias = |t: &str| t.replace("localhost:", "127.0.0.1:");
            alias(target) == a.to_string()
                || (a.ip().is_unspecified() && alias(target) == format!("127.0.0.1:{}", a.port()))
        }
    }
}

/// The headers a location sends: its own `proxy_set_header`s, or, when it
/// has none, the enclosing level's (nginx's inheritance rule).
fn set_headers(chain: &[&Directive]) -> BTreeMap<String, String> {
    for level in chain.iter().rev() {
        let own: BTreeMap<String, String> = level
            .children()
            .iter()
            .filter(|d| d.name() == "proxy_set_header" && d.args.len() >= 3)
            .map(|d| (d.args[1].to_ascii_lowercase(), d.args[2].clone()))
            .collect();
        if !own.is_empty() {
            return own;
        }
    }
    BTreeMap::new()
}

fn own_value<'a>(chain: &[&'a Directive], name: &str) -> Option<&'a str> {
    chain.iter().rev().find_map(|level| {
        level
            .children()
            .iter()
            .find(|d| d.name() == name)
            .and_then(|d| d.args.get(1))
            .map(String::as_str)
    })
}

/// Locations with their enclosing blocks (server first).
fn locations<'a>(chain: &[&'a Directive], out: &mut Vec<Vec<&'a Directive>>) {
    let Some(last) = chain.last() else { return };
    for d in last.children() {
        if d.name() == "location" || d.name() == "if" {
            let mut c = chain.to_vec();
            c.push(d);
            out.push(c.clone());
            locations(&c, out);
        }
    }
}

/// The checks of the site for `config.domain` in a resolved configuration.
pub fn check_site(config: &Config, root: &[Directive]) -> Vec<Check> {
    let listen = &config.listen;
    let mut ups = Vec::new();
    walk(root, "upstream", &mut ups);
    let upstreams: BTreeMap<String, Vec<String>> = ups
        .iter()
        .filter_map(|u| {
            let name = u.args.get(1)?.clone();
            let servers = u
                .children()
                .iter()
                .filter(|d| d.name() == "server")
                .filter_map(|d| d.args.get(1).cloned())
                .collect();
            Some((name, servers))
        })
        .collect();
    let mut servers = Vec::new();
    walk(root, "server", &mut servers);
    let sites: Vec<&Directive> = servers
        .into_iter()
        .filter(|s| s.block.is_some())
        .filter(|s| {
            s.children().iter().any(|d| {
                d.name() == "server_name"
                    && d.args[1..]
                        .iter()
                        .any(|n| server_name_matches(n, &config.domain))
            })
        })
        .collect();
    if sites.is_empty() {
        return vec![Check::warn(
            "nginx",
            format!("nginx has no server block for {}", config.domain),
            "install the snippet `portcullis new` wrote (NAME.nginx.conf) in /etc/nginx/sites-available/, link it into sites-enabled, `nginx -t && systemctl reload nginx` (ignore this if another web server fronts Portcullis)",
        )];
    }
    let mut out = Vec::new();
    let mut found = false;
    let mut elsewhere = Vec::new();
    let mut fronting = Vec::new();
    for site in &sites {
        let before = found;
        found = false;
        let mut locs = Vec::new();
        locations(&[*site], &mut locs);
        let forward_auth = locs.iter().any(|c| {
            c.last()
                .is_some_and(|l| l.children().iter().any(|d| d.name() == "auth_request"))
        });
        for chain in &locs {
            let Some(loc) = chain.last() else { continue };
            let Some(pass) = loc
                .children()
                .iter()
                .find(|d| d.name() == "proxy_pass")
                .and_then(|d| d.args.get(1))
            else {
                continue;
            };
            let t = targets(pass, &upstreams);
            if !t.iter().any(|t| points_at(t, listen)) {
                elsewhere.push(format!("{} -> {}", loc.args[1..].join(" "), t.join(", ")));
                continue;
            }
            found = true;
            let where_ = format!("location {}", loc.args[1..].join(" "));
            let h = set_headers(chain);
            let has = |n: &str| h.contains_key(n);
            let host_ok = h
                .get("host")
                .is_some_and(|v| v == "$host" || v == "$http_host");
            if host_ok {
                out.push(Check::ok("nginx", format!("{where_} sends Host")));
            } else {
                out.push(Check::fail(
                    "nginx",
                    format!("{where_} does not send the browser's Host (nginx then sends the upstream's name), so Portcullis refuses the requests or builds wrong redirects"),
                    format!("add `proxy_set_header Host $host;` to {where_}"),
                ));
            }
            if has("x-forwarded-proto") {
                out.push(Check::ok(
                    "nginx",
                    format!("{where_} sends X-Forwarded-Proto"),
                ));
            } else {
                out.push(Check::fail(
                    "nginx",
                    format!("{where_} does not send X-Forwarded-Proto: Portcullis cannot tell that the browser used https"),
                    format!("add `proxy_set_header X-Forwarded-Proto $scheme;` to {where_}"),
                ));
            }
            let is_auth_subrequest = loc.children().iter().any(|d| d.name() == "internal");
            if !forward_auth && !is_auth_subrequest {
                let upgrade = h.get("upgrade").is_some_and(|v| v == "$http_upgrade");
                let connection = h.get("connection").is_some_and(|v| v.starts_with('$'));
                let v11 = own_value(chain, "proxy_http_version") == Some("1.1");
                if upgrade && connection && v11 {
                    out.push(Check::ok(
                        "nginx",
                        format!("{where_} passes WebSocket upgrades"),
                    ));
                } else {
                    out.push(Check::fail(
                        "nginx",
                        format!("{where_} does not pass WebSocket upgrades (needs proxy_http_version 1.1, Upgrade and Connection)"),
                        format!("add `proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;` to {where_} (with the `map $http_upgrade $connection_upgrade` block from the snippet)"),
                    ));
                }
            }
        }
        if found {
            fronting.push(*site);
        }
        found |= before;
    }
    let need = super::size::estimate(config);
    let groups = super::size::GROUPS;
    for site in &fronting {
        // nginx's defaults: `large_client_header_buffers 4 8k`,
        // `proxy_buffer_size` one memory page.
        let line = size_of(site, "large_client_header_buffers", 2).unwrap_or(8 * 1024);
        if line < need.cookie_header {
            out.push(Check::warn(
                "nginx",
                format!("nginx accepts header lines up to {line} bytes; the Cookie header of a user with {groups} groups is about {} bytes (nginx answers 400 Request Header Or Cookie Too Large)", need.cookie_header),
                format!("add `large_client_header_buffers 8 32k;` to the server block, or set session.max_cookie_bytes to at most {}", line.saturating_sub(300)),
            ));
        }
        // nginx keeps a response's headers in one `proxy_buffer_size` buffer.
        let buffer = size_of(site, "proxy_buffer_size", 1).unwrap_or(4 * 1024);
        if buffer < need.login_answer {
            out.push(Check::warn(
                "nginx",
                format!("nginx keeps Portcullis' response headers in {buffer} bytes (proxy_buffer_size); the login answer for a user with {groups} groups needs about {} (nginx answers 502 upstream sent too big header)", need.login_answer),
                format!("add `proxy_buffer_size 32k; proxy_buffers 8 32k; proxy_busy_buffers_size 64k;` to the server block, or set session.max_cookie_bytes to at most {}", buffer.saturating_sub(1000)),
            ));
        }
    }
    if !found {
        out.push(Check::fail(
            "nginx",
            format!(
                "the nginx site for {} does not send requests to Portcullis' listen address {listen} (it sends: {})",
                config.domain,
                if elsewhere.is_empty() { "nothing".to_string() } else { elsewhere.join("; ") }
            ),
            format!("point proxy_pass (or the upstream block's `server`) at {listen}, or change `listen` in the Portcullis config"),
        ));
    }
    out
}

/// `8k`, `1m`, `512` as bytes.
/// The size a block's directive sets in its argument `arg` (`8k`, `1m`).
fn size_of(block: &Directive, name: &str, arg: usize) -> Option<usize> {
    block
        .children()
        .iter()
        .find(|d| d.name() == name)
        .and_then(|d| d.args.get(arg))
        .and_then(|v| size_bytes(v))
}

fn size_bytes(v: &str) -> Option<usize> {
    let v = v.to_ascii_lowercase();
    let (n, mult) = match v.chars().last()? {
        'k' => (&v[..v.len() - 1], 1024),
        'm' => (&v[..v.len() - 1], 1024 * 1024),
        _ => (v.as_str(), 1),
    };
    n.parse::<usize>().ok().map(|n| n * mult)
}

/// Runs `nginx -T` (with `conf`: against that main file) and checks the
/// site; no checks at all when nginx is not installed.
pub fn checks(config: &Config, conf: Option<&Path>) -> Vec<Check> {
    let mut cmd = Command::new("nginx");
    cmd.arg("-T");
    if let Some(c) = conf {
        cmd.arg("-p")
            .arg(c.parent().unwrap_or(Path::new("/")))
            .arg("-c")
            .arg(c);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && conf.is_none() => return Vec::new(),
        Err(e) => {
            return vec![Check::warn(
                "nginx",
                format!("cannot run `nginx -T`: {e}"),
                "run doctor as root (nginx -T reads the TLS keys' directories)",
            )];
        }
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return vec![Check::fail(
            "nginx",
            format!(
                "`nginx -T` refuses the configuration: {}",
                err.lines()
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or_default()
            ),
            "fix what `nginx -t` names; nginx keeps serving its previous configuration until then",
        )];
    }
    let files = split_dump(&String::from_utf8_lossy(&out.stdout));
    check_site(config, &resolve(&files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_comments_and_empty_strings_are_words() {
        let d = parse("a \"b c\" '' # not this\n{ x 'y;z'; }");
        assert_eq!(d[0].args, vec!["a", "b c", ""]);
        assert_eq!(d[0].children()[0].args, vec!["x", "y;z"]);
    }

    #[test]
    fn includes_are_resolved_from_the_dump_relative_to_the_main_file() {
        let dump = "# configuration file /etc/nginx/nginx.conf:\nhttp { include sites-enabled/*; }\n\n# configuration file /etc/nginx/sites-enabled/a:\nserver { server_name a.test; include proxy_params; }\n# configuration file /etc/nginx/proxy_params:\nproxy_set_header Host $http_host;\n";
        let root = resolve(&split_dump(dump));
        let mut servers = Vec::new();
        walk(&root, "server", &mut servers);
        assert_eq!(servers.len(), 1);
        assert_eq!(
            servers[0].children()[1].args,
            vec!["proxy_set_header", "Host", "$http_host"]
        );
    }

    #[test]
    fn a_location_with_own_headers_inherits_none() {
        let d = parse(
            "server { proxy_set_header X-Forwarded-Proto $scheme; location / { proxy_set_header Host $host; } }",
        );
        let chain = vec![&d[0], &d[0].children()[1]];
        let h = set_headers(&chain);
        assert!(h.contains_key("host"));
        assert!(!h.contains_key("x-forwarded-proto"));
        let d = parse("server { proxy_set_header X-Forwarded-Proto $scheme; location / { } }");
        let chain = vec![&d[0], &d[0].children()[1]];
        assert!(set_headers(&chain).contains_key("x-forwarded-proto"));
    }

    #[test]
    fn server_names() {
        assert!(server_name_matches("*.example.com", "a.example.com"));
        assert!(!server_name_matches("*.example.com", "example.com"));
        assert!(server_name_matches(".example.com", "example.com"));
        assert!(server_name_matches("App.Test", "app.test"));
        assert!(!server_name_matches("app.test", "app.test.evil"));
    }
}
