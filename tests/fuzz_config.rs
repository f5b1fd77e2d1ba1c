//! Property tests of the configuration loader: whatever YAML an operator
//! (or a template gone wrong) writes, `from_yaml_str` answers with a
//! configuration or with errors that name a field and say what to do;
//! it never panics, and what it accepts keeps the rules' promises.
//!
//! `PROPTEST_CASES=100000 cargo test --test fuzz_config` runs longer.

mod fuzz_support;

use fuzz_support::{config, hostile};
use portcullis::config::{ConfigError, PathRuleKind, from_yaml_str};
use proptest::prelude::*;

const REFERENCE: &str = include_str!("../config-examples/reference.yaml");

/// Values that break YAML and the validators: wrong types, anchors and
/// aliases, tags, flow collections, huge and negative numbers, odd
/// durations, paths and addresses.
const VALUES: &[&str] = &[
    "",
    "~",
    "null",
    "true",
    "no",
    "0",
    "-1",
    "0x10",
    "1e999",
    "99999999999999999999",
    "\"\"",
    "''",
    "[]",
    "{}",
    "[a, b]",
    "{a: 1}",
    "&a x",
    "*a",
    "!!binary AAAA",
    "!!str 1",
    "|",
    ">",
    "\"\\u0000\"",
    "30s",
    "0s",
    "-5m",
    "1y",
    "12h",
    "999999999d",
    "/",
    "/public/",
    "/public",
    "public/",
    "/**",
    "/[",
    "/{a,b}",
    "http://127.0.0.1:1",
    "https://",
    "unix:/x.sock",
    "127.0.0.1:0",
    "[::1]:80",
    "10.0.0.0/8",
    "10.0.0.0/33",
    "app.test",
    "APP.test:443",
    "é",
    "\"a\\\"b\"",
    "x: y",
    "- a",
    "? a",
    "%TAG",
    "0666",
    "0999",
    "forwarded",
    "nginx",
    "caddy",
];

const KEYS: &[&str] = &[
    "domain",
    "scheme",
    "listen",
    "strict_host",
    "domain_aliases",
    "listen_socket_mode",
    "shutdown_timeout",
    "state_dir",
    "upstream",
    "upstream:\n  url",
    "upstream:\n  timeout",
    "upstream:\n  preserve_host",
    "session:\n  lifetime",
    "session:\n  inactivity_timeout",
    "session:\n  cookie_name",
    "session:\n  secure_cookie",
    "passthrough:\n  paths",
    "passthrough:\n  paths:\n    - prefix",
    "passthrough:\n  paths:\n    - exact",
    "passthrough:\n  paths:\n    - glob",
    "passthrough:\n  tokens:\n    - name",
    "passthrough:\n  tokens:\n    - sha256",
    "passthrough:\n  token_header",
    "headers:\n  strip",
    "headers:\n  user",
    "connections:\n  max",
    "connections:\n  header_read_timeout",
    "connections:\n  idle_timeout",
    "access:\n  allowed_ip_ranges",
    "access:\n  allowed_groups",
    "access:\n  trusted_proxies",
    "forward_auth:\n  headers",
    "oidc:\n  issuer",
    "saml",
    "log:\n  format",
    "metrics",
    "unknown_key",
];

fn check(yaml: &str) -> Result<(), TestCaseError> {
    match from_yaml_str(yaml) {
        Ok(c) => {
            prop_assert!(!c.domain.is_empty(), "accepted without a domain:\n{yaml}");
            for r in &c.passthrough.paths {
                match &r.kind {
                    PathRuleKind::Exact(p) => {
                        prop_assert!(p.starts_with('/'), "exact {p:?} accepted");
                    }
                    PathRuleKind::Prefix(p) => prop_assert!(
                        p.starts_with('/') && p.ends_with('/'),
                        "prefix {p:?} accepted"
                    ),
                    PathRuleKind::Glob(g) => {
                        prop_assert!(g.glob().glob().starts_with('/'), "glob {g:?} accepted");
                    }
                }
            }
        }
        Err(e @ ConfigError::Invalid(_)) => {
            let fields = e.fields();
            prop_assert!(!fields.is_empty(), "refused without saying why:\n{yaml}");
            for f in fields {
                prop_assert!(
                    !f.field.is_empty() && !f.message.trim().is_empty(),
                    "{f:?} for\n{yaml}"
                );
            }
        }
        Err(e) => prop_assert!(false, "{e} for text"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary text, and text made of YAML's sharp edges.
    #[test]
    fn any_text_is_a_config_or_named_errors(
        text in any::<String>(),
        edgy in hostile(&[":", ": ", "\n", "\n  ", "- ", "&a ", "*a", "[", "]", "{", "}", "!!", "? ", "|\n", "'", "\"", "#", "domain", "upstream", "url", "passthrough", "<<: *a"], 24),
    ) {
        check(&text)?;
        check(&edgy)?;
    }

    /// A minimal valid configuration with a few keys set to hostile values.
    #[test]
    fn hostile_values_are_refused_by_name_or_accepted_safely(
        sets in proptest::collection::vec((proptest::sample::select(KEYS), proptest::sample::select(VALUES)), 1..5),
    ) {
        let mut yaml = String::from("domain: app.test\nupstream:\n  url: http://127.0.0.1:1\n");
        for (k, v) in sets {
            yaml.push_str(&format!("{k}: {v}\n"));
        }
        check(&yaml)?;
    }

    /// The shipped reference configuration, with lines dropped, doubled or
    /// given a hostile value.
    #[test]
    fn the_reference_damaged_line_by_line(
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..3, proptest::sample::select(VALUES)), 1..4),
    ) {
        let mut lines: Vec<String> = REFERENCE.lines().map(str::to_string).collect();
        for (at, how, v) in edits {
            let i = at.index(lines.len());
            match how {
                0 => { lines.remove(i); }
                1 => { let l = lines[i].clone(); lines.insert(i, l); }
                _ => {
                    if let Some((k, _)) = lines[i].split_once(':') {
                        lines[i] = format!("{k}: {v}");
                    }
                }
            }
        }
        check(&lines.join("\n"))?;
    }
}

/// The undamaged reference is valid: the property above starts from a
/// configuration that is accepted.
#[test]
fn the_reference_is_valid() {
    from_yaml_str(REFERENCE).expect("config-examples/reference.yaml is valid");
}
