//! `access.rules`: which rule decides a request. The first rule whose path
//! and method match decides; the domain-wide lists are the default rule.
//!
//! Rules match the canonical path ([`path::normalise`]), the same reading
//! passthrough uses, so dot segments and escapes cannot move a request to
//! another rule. The app receives the raw path, though, and a router
//! behind the gate may read it raw: so for a non-canonical path the rule of
//! the raw reading applies too, and the request must satisfy both. A path
//! with no normal form cannot be placed at all, and is refused once rules
//! exist.

use http::Method;

use super::path;
use crate::config::{Access, AccessRule};

/// A rule that applies to a request.
#[derive(Debug, Clone, Copy)]
pub enum Selected<'a> {
    /// No rule matched: the domain-wide lists.
    Default,
    /// `access.rules[index]`.
    Rule(usize, &'a AccessRule),
}

impl Selected<'_> {
    /// The rule's name for the audit log: `rules[1]` or `default`.
    pub fn name(&self) -> String {
        match self {
            Selected::Default => "default".into(),
            Selected::Rule(i, _) => format!("rules[{i}]"),
        }
    }

    /// The operator's description, for the 403 page.
    pub fn description(&self) -> Option<&str> {
        match self {
            Selected::Default => None,
            Selected::Rule(_, r) => Some(&r.description),
        }
    }

    pub fn max_auth_age(&self) -> Option<std::time::Duration> {
        match self {
            Selected::Default => None,
            Selected::Rule(_, r) => r.max_auth_age,
        }
    }
}

/// The rules a request must satisfy: one, or two when its raw and
/// canonical readings fall under different rules. `None`: the path has no
/// normal form and rules exist, so no rule can be chosen (fail closed).
pub fn applicable<'a>(
    access: &'a Access,
    method: &Method,
    raw_path: &str,
) -> Option<Vec<Selected<'a>>> {
    if access.rules.is_empty() {
        return Some(vec![Selected::Default]);
    }
    let normal = path::normalise(raw_path)?;
    let by_normal = first_match(access, method, &normal);
    if normal == raw_path {
        return Some(vec![by_normal]);
    }
    let by_raw = first_match(access, method, raw_path);
    if same(by_normal, by_raw) {
        Some(vec![by_normal])
    } else {
        Some(vec![by_normal, by_raw])
    }
}

/// The strictest `max_auth_age` of the rules that apply.
pub fn max_auth_age(selected: &[Selected<'_>]) -> Option<std::time::Duration> {
    selected.iter().filter_map(Selected::max_auth_age).min()
}

fn first_match<'a>(access: &'a Access, method: &Method, p: &str) -> Selected<'a> {
    access
        .rules
        .iter()
        .enumerate()
        .find(|(_, r)| {
            (r.methods.is_empty() || r.methods.contains(method))
                && r.paths.iter().any(|k| k.matches(p))
        })
        .map_or(Selected::Default, |(i, r)| Selected::Rule(i, r))
}

fn same(a: Selected<'_>, b: Selected<'_>) -> bool {
    match (a, b) {
        (Selected::Default, Selected::Default) => true,
        (Selected::Rule(i, _), Selected::Rule(j, _)) => i == j,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        crate::config::from_yaml_str(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\naccess:\n  allowed_groups: [staff]\n  rules:\n    - description: Admin console\n      paths: [{prefix: /admin/}, {exact: /admin}]\n      allowed_groups: [admins]\n    - description: API writes\n      paths: [{prefix: /api/}]\n      methods: [POST]\n      allowed_groups: [writers]\n    - description: Reports\n      paths: [{glob: '/reports/*.pdf'}]\n      allowed_groups: [finance]\n",
        )
        .unwrap()
        .access
    }

    fn names(method: &str, p: &str) -> Option<Vec<String>> {
        let a = access();
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        applicable(&a, &m, p).map(|v| v.iter().map(Selected::name).collect())
    }

    #[test]
    fn the_first_matching_rule_decides_and_the_lists_are_the_default() {
        assert_eq!(names("GET", "/admin/x").unwrap(), ["rules[0]"]);
        assert_eq!(names("GET", "/admin").unwrap(), ["rules[0]"]);
        assert_eq!(names("GET", "/administrator").unwrap(), ["default"]);
        assert_eq!(names("POST", "/api/x").unwrap(), ["rules[1]"]);
        assert_eq!(names("GET", "/api/x").unwrap(), ["default"]);
        assert_eq!(names("GET", "/reports/q1.pdf").unwrap(), ["rules[2]"]);
        assert_eq!(names("GET", "/reports/2026/q1.pdf").unwrap(), ["default"]);
        assert_eq!(names("GET", "/").unwrap(), ["default"]);
    }

    #[test]
    fn dot_segments_and_escapes_cannot_leave_a_rule() {
        let mut failures = Vec::new();
        for p in [
            "/admin/../admin/x",
            "/%61dmin/x",
            "/%61dmin/",
            "//admin/x",
            "/admin//x",
            "/admin/./x",
            "/admin;x=1/x",
            "/admin\\x",
            "/x/../admin/",
            "/admin/%78",
        ] {
            // The canonical reading's rule always applies (first); the raw
            // one may add another (next test).
            if names("GET", p).and_then(|v| v.first().cloned()).as_deref() != Some("rules[0]") {
                failures.push(format!("{p}: {:?}", names("GET", p)));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn a_raw_reading_under_another_rule_must_be_satisfied_too() {
        // A raw-prefix router behind the gate reads these as /admin/...
        assert_eq!(
            names("GET", "/admin/../public/x").unwrap(),
            ["default", "rules[0]"]
        );
        assert_eq!(
            names("POST", "/api/../admin/x").unwrap(),
            ["rules[0]", "rules[1]"]
        );
        // Letter case is the app's: /ADMIN/ is another path.
        assert_eq!(names("GET", "/ADMIN/x").unwrap(), ["default"]);
    }

    #[test]
    fn a_path_without_a_normal_form_has_no_rule() {
        for p in [
            "/admin%2f..",
            "/public%2F..%2Fadmin/",
            "/admin/%00",
            "/x/..%20/admin/",
            "/%c0%ae/admin/",
        ] {
            assert!(names("GET", p).is_none(), "{p}");
        }
        // Without rules nothing changes: the default lists decide.
        let mut a = access();
        a.rules.clear();
        assert!(applicable(&a, &Method::GET, "/admin%2f..").is_some());
    }

    #[test]
    fn the_strictest_max_auth_age_applies() {
        let mut a = access();
        a.rules[1].max_auth_age = Some(std::time::Duration::from_secs(600));
        let v = applicable(&a, &Method::POST, "/api/../admin/x").unwrap();
        assert_eq!(max_auth_age(&v), Some(std::time::Duration::from_secs(600)));
        let v = applicable(&a, &Method::GET, "/admin/x").unwrap();
        assert_eq!(max_auth_age(&v), None);
    }

    #[test]
    fn a_path_read_alike_both_ways_is_one_rule() {
        // Not canonical, but both readings fall under the same rule (or
        // both under none): that rule applies once.
        assert_eq!(names("GET", "/admin/./x").unwrap(), ["rules[0]"]);
        assert_eq!(names("GET", "/admin//x").unwrap(), ["rules[0]"]);
        assert_eq!(names("GET", "/public/./x").unwrap(), ["default"]);
        assert_eq!(names("GET", "/public//x").unwrap(), ["default"]);
    }

    #[test]
    fn a_rule_is_described_in_the_operators_words() {
        let a = access();
        let v = applicable(&a, &Method::POST, "/api/../admin/x").unwrap();
        let words: Vec<Option<&str>> = v.iter().map(Selected::description).collect();
        assert_eq!(words, [Some("Admin console"), Some("API writes")]);
        let v = applicable(&a, &Method::GET, "/").unwrap();
        assert_eq!(v[0].description(), None, "the default rule has no words");
    }
}
