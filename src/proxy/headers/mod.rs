//! Header rules between the client and the upstream, one file per rule:
//!
//! - [`StripRules`] (first, for every request, before anything reads the
//!   headers): Portcullis' own identity headers, the identity headers of
//!   [`well_known`] apps and gates, [`routing_override`]s, the
//!   [`client_address`] headers nobody vouches for, and the operator's
//!   `headers.strip`; in any letter case, with `_` for `-`, and as
//!   `HTTP_`-prefixed CGI variable names.
//! - [`hop_by_hop`] headers out.
//! - [`client_address`]: `X-Forwarded-*` and `X-Real-IP` set honestly.
//! - [`identity`] headers in.

pub mod client_address;
mod hop_by_hop;
mod identity;
mod name_set;
pub mod routing_override;
pub mod well_known;

use http::header::{HeaderMap, HeaderName};

pub use client_address::set_forwarded;
pub use hop_by_hop::remove_hop_by_hop;
pub use identity::{NotHeaderSafe, set_identity};

use crate::config::{Config, HeaderPattern};
use name_set::NameSet;

/// What is removed from every incoming request, built once per
/// configuration.
#[derive(Debug, Clone)]
pub struct StripRules {
    /// Removed in every spelling.
    any_spelling: NameSet,
    /// Removed only when spelled as no proxy spells them (`_` for `-`, or
    /// `HTTP_` in front): the `X-Forwarded-*` family, which a trusted proxy
    /// sets in its canonical spelling.
    odd_spelling: NameSet,
    /// The exact names of `any_spelling`, for a forward-auth answer that
    /// blanks them.
    exact: Vec<HeaderName>,
}

impl StripRules {
    pub fn new(config: &Config) -> StripRules {
        let mut any_spelling = NameSet::new();
        let mut exact: Vec<HeaderName> = Vec::new();
        let own = config
            .headers
            .all()
            .chain(std::iter::once(&config.assertion_header))
            .map(|h| h.as_str().to_string());
        let operator_exact = config.headers.strip.iter().filter_map(|p| match p {
            HeaderPattern::Exact(e) => Some(e.clone()),
            HeaderPattern::Prefix(_) => None,
        });
        let built_in = well_known::EXACT
            .iter()
            .chain(routing_override::EXACT)
            .chain(client_address::NEVER_BELIEVED)
            .map(std::string::ToString::to_string);
        for name in own.chain(built_in).chain(operator_exact) {
            any_spelling.insert_exact(&name);
            let canonical = name_set::canonical(&name);
            if let Ok(h) = HeaderName::from_bytes(canonical.as_bytes())
                && !exact.contains(&h)
            {
                exact.push(h);
            }
        }
        for p in well_known::PREFIXES {
            any_spelling.insert_prefix(p);
        }
        for p in &config.headers.strip {
            if let HeaderPattern::Prefix(p) = p {
                any_spelling.insert_prefix(p);
            }
        }
        let mut odd_spelling = NameSet::new();
        for p in client_address::FAMILY_PREFIXES {
            odd_spelling.insert_prefix(p);
        }
        for e in client_address::FAMILY_EXACT {
            odd_spelling.insert_exact(e);
        }
        StripRules {
            any_spelling,
            odd_spelling,
            exact,
        }
    }

    /// Whether a header name (lower case, as `HeaderName` keeps it) is
    /// removed from incoming requests.
    fn is_stripped_lower(&self, n: &[u8]) -> bool {
        if self.any_spelling.contains(n) || (self.odd_spelling.contains(n) && n.contains(&b'_')) {
            return true;
        }
        // `HTTP_X_WEBAUTH_USER`: the CGI variable's name sent as a header,
        // which Java and PHP helpers look up by that name.
        match n.split_at_checked(5) {
            Some((b"http-" | b"http_", rest)) => {
                self.any_spelling.contains(rest) || self.odd_spelling.contains(rest)
            }
            _ => false,
        }
    }

    /// Removes every header [`Self::is_stripped_lower`] names.
    pub fn strip_spoofed(&self, headers: &mut HeaderMap) {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| self.is_stripped_lower(k.as_str().as_bytes()))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
    }

    /// The exact names removed from requests (Portcullis' own identity
    /// headers, the well-known ones, the operator's exact entries), lower
    /// case: a forward-auth answer can send each one empty, so a front
    /// proxy that copies them overwrites the client's copy. Prefix rules
    /// cannot be blanked this way.
    pub fn exact_names(&self) -> &[HeaderName] {
        &self.exact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        crate::config::from_yaml_str(&format!(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\n{extra}"
        ))
        .unwrap()
    }

    fn left_after(rules: &StripRules, names: &[&str]) -> Vec<String> {
        let mut h = HeaderMap::new();
        for n in names {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_static("admin"),
            );
        }
        rules.strip_spoofed(&mut h);
        // HeaderMap does not keep insertion order across removals.
        let mut left: Vec<String> = h.keys().map(std::string::ToString::to_string).collect();
        left.sort();
        left
    }

    #[test]
    fn strips_identity_headers_in_any_spelling() {
        let rules = StripRules::new(&config("headers:\n  extra:\n    department: X-Dept\n"));
        let left = left_after(
            &rules,
            &[
                "x-forwarded-email",
                "X-Forwarded-User",
                "x_forwarded_email",
                "X_FORWARDED_GROUPS",
                "x-dept",
                "x_dept",
                "http_x_dept",
                "x-real-ip",
                "x-other",
            ],
        );
        assert_eq!(left, vec!["x-other"]);
    }

    #[test]
    fn routing_overrides_and_foreign_identity_names_are_stripped() {
        let rules = StripRules::new(&config("headers:\n  user: Remote-User-Name\n"));
        let left = left_after(
            &rules,
            &[
                "remote-user-name",
                "x-forwarded-user",
                "remote-user",
                "x-original-url",
                "x_rewrite_url",
                "x-http-method-override",
                "x-auth-request-email",
                "x-webauth-role",
                "oidc_claim_email",
                "mellon_name_id",
                "shib-session-id",
                "x-ms-client-principal-name",
                "http_remote_user",
            ],
        );
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_forwarded_family_goes_only_in_spellings_no_proxy_sends() {
        let rules = StripRules::new(&config(""));
        let left = left_after(
            &rules,
            &[
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-prefix",
                "forwarded",
                "x_forwarded_for",
                "x-forwarded_host",
                "http-x-forwarded-for",
                "http_forwarded",
                "true-client-ip",
                "true_client_ip",
                "http_client_ip",
            ],
        );
        assert_eq!(
            left,
            vec![
                "forwarded",
                "x-forwarded-for",
                "x-forwarded-prefix",
                "x-forwarded-proto",
            ]
        );
    }

    #[test]
    fn operator_entries_exact_and_prefix() {
        let rules = StripRules::new(&config(
            "headers:\n  strip: [X-Grafana-User, 'X-Corp-Auth-*', my_app_user]\n",
        ));
        let left = left_after(
            &rules,
            &[
                "x-grafana-user",
                "x_grafana_user",
                "x-corp-auth-user",
                "x-corp-auth-",
                "X_CORP_AUTH_ROLE",
                "my-app-user",
                "x-grafana-users",
                "x-corp-authx",
                "x-grafana-org-id",
            ],
        );
        assert_eq!(
            left,
            vec!["x-corp-authx", "x-grafana-org-id", "x-grafana-users"]
        );
    }

    #[test]
    fn ordinary_browser_headers_are_kept() {
        let rules = StripRules::new(&config(""));
        let names = [
            "host",
            "accept",
            "accept-language",
            "accept-encoding",
            "user-agent",
            "cookie",
            "authorization",
            "referer",
            "origin",
            "sec-fetch-site",
            "sec-fetch-mode",
            "sec-ch-ua",
            "upgrade-insecure-requests",
            "cache-control",
            "content-type",
            "x-requested-with",
            "x-csrf-token",
            "x-request-id",
            "x-original-uri",
            "x-forwarded-uri",
            "x-auth-token",
            "x-grafana-org-id",
            "if-none-match",
            "dnt",
            "priority",
            "http2-settings",
        ];
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        assert_eq!(left_after(&rules, &names), sorted);
    }

    #[test]
    fn exact_names_are_lower_case_and_include_operator_entries() {
        let rules = StripRules::new(&config("headers:\n  strip: [X-Grafana-User, 'X-Corp-*']\n"));
        let names: Vec<&str> = rules
            .exact_names()
            .iter()
            .map(http::HeaderName::as_str)
            .collect();
        for n in [
            "x-forwarded-user",
            "remote-user",
            "x-grafana-user",
            "true-client-ip",
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains('*')));
    }
}
