//! `access.rules`: each rule can match something, and no earlier rule
//! covers it (the first match decides, so a covered rule would never be
//! used). Every error names the rule by index and description and says
//! what to change.

use http::Method;

use super::FieldError;
use super::checked::{AccessRule, PathRuleKind};
use super::raw;

/// Methods a rule may name: a misspelt one would silently match nothing.
const KNOWN_METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
];

pub(super) fn validate(
    raw_rules: &[raw::AccessRule],
    roles: &super::roles::Roles,
    errs: &mut Vec<FieldError>,
) -> Vec<AccessRule> {
    let mut out: Vec<(usize, AccessRule)> = Vec::new();
    for (i, r) in raw_rules.iter().enumerate() {
        let name = format!("access.rules[{i}]");
        let start = errs.len();
        let add = |errs: &mut Vec<FieldError>, field: String, message: String| {
            errs.push(FieldError { field, message });
        };
        let description = r.description.trim().to_string();
        if description.is_empty() || description.chars().any(char::is_control) {
            add(
                errs,
                format!("{name}.description"),
                "is required: say in a few words what the rule protects (it is shown on the 403 page), e.g. `Admin console`".into(),
            );
        }
        let label = format!("{name} ({description})");
        if r.paths.is_empty() {
            add(
                errs,
                format!("{label}.paths"),
                "is empty, so the rule never matches: list at least one `prefix`, `exact` or `glob`".into(),
            );
        }
        let mut paths = Vec::new();
        for (j, p) in r.paths.iter().enumerate() {
            let field = format!("{label}.paths[{j}]");
            if !p.methods.is_empty() {
                add(
                    errs,
                    format!("{field}.methods"),
                    "belongs on the rule: move it to the rule's `methods`".into(),
                );
            }
            if let Some(k) = super::path_rule::kind(p, &field, errs) {
                paths.push(k);
            }
        }
        let mut methods = Vec::new();
        match &r.methods {
            None => {}
            Some(list) if list.is_empty() => add(
                errs,
                format!("{label}.methods"),
                "is empty, so the rule never matches: name methods, or leave `methods` out for all of them".into(),
            ),
            Some(list) => {
                for (j, m) in list.iter().enumerate() {
                    let upper = m.trim().to_ascii_uppercase();
                    match Method::from_bytes(upper.as_bytes()) {
                        Ok(parsed) if KNOWN_METHODS.contains(&upper.as_str()) => {
                            methods.push(parsed);
                        }
                        _ => add(
                            errs,
                            format!("{label}.methods[{j}]"),
                            format!("`{m}` is not an HTTP method this rule can match: use e.g. GET, POST, PUT, PATCH, DELETE"),
                        ),
                    }
                }
            }
        }
        let allowed_email_domains = super::validate::email_domains(
            &r.allowed_email_domains,
            &format!("{label}.allowed_email_domains"),
            errs,
        );
        if r.max_auth_age
            .is_some_and(|a| a < std::time::Duration::from_secs(1))
        {
            add(
                errs,
                format!("{label}.max_auth_age"),
                "must be at least 1s (e.g. `15m`): a sign-in is never younger than that".into(),
            );
        }
        super::roles::check_allowed(&r.allowed_roles, roles, &label, errs);
        let allowed_ip_ranges = super::validate::cidrs_into(
            &r.allowed_ip_ranges,
            &format!("{label}.allowed_ip_ranges"),
            errs,
        );
        let rule = AccessRule {
            description,
            paths,
            methods,
            allowed_groups: r.allowed_groups.clone(),
            allowed_emails: r
                .allowed_emails
                .iter()
                .map(|e| e.trim().to_ascii_lowercase())
                .collect(),
            allowed_email_domains,
            allowed_roles: r.allowed_roles.clone(),
            allowed_ip_ranges,
            max_auth_age: r.max_auth_age,
        };
        if errs.len() > start {
            continue;
        }
        if let Some((k, earlier)) = out.iter().find(|(_, e)| covers(e, &rule)) {
            errs.push(FieldError {
                field: label,
                message: format!(
                    "is never used: the earlier access.rules[{k}] ({}) matches every path and method it does, and the first match decides; move this rule before it or narrow the earlier one",
                    earlier.description
                ),
            });
            continue;
        }
        out.push((i, rule));
    }
    out.into_iter().map(|(_, r)| r).collect()
}

/// Whether every request `later` matches is matched by `earlier`.
fn covers(earlier: &AccessRule, later: &AccessRule) -> bool {
    let methods = earlier.methods.is_empty()
        || (!later.methods.is_empty() && later.methods.iter().all(|m| earlier.methods.contains(m)));
    methods
        && later
            .paths
            .iter()
            .all(|l| earlier.paths.iter().any(|e| path_covers(e, l)))
}

/// Whether pattern `e` matches every path pattern `l` matches. Decided
/// exactly where it can be (literals, and a glob whose literal start is
/// the prefix); otherwise "no", so only certain shadowing is refused.
fn path_covers(e: &PathRuleKind, l: &PathRuleKind) -> bool {
    use PathRuleKind::{Exact, Glob, Prefix};
    match (e, l) {
        (Exact(a), Exact(b)) => a == b,
        (Prefix(a), Exact(b) | Prefix(b)) => b.starts_with(a.as_str()),
        (Prefix(a), Glob(g)) => {
            // Characters of the glob before its first metacharacter match
            // themselves, so a glob starting with the prefix stays under it.
            let src = g.glob().glob();
            let literal_end = src.find(['*', '?', '[', '{', '\\']).unwrap_or(src.len());
            src[..literal_end].starts_with(a.as_str())
        }
        (Glob(a), Exact(b)) => a.is_match(b),
        (Glob(a), Glob(b)) => a.glob().glob() == b.glob().glob(),
        (Exact(_), _) | (Glob(_), Prefix(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::from_yaml_str;

    fn errors(rules: &str) -> Vec<String> {
        let yaml = format!(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\naccess:\n  rules:\n{rules}"
        );
        match from_yaml_str(&yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_string).collect(),
        }
    }

    fn rules(rules: &str) -> Vec<crate::config::AccessRule> {
        from_yaml_str(&format!(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\naccess:\n  rules:\n{rules}"
        ))
        .unwrap()
        .access
        .rules
    }

    fn one_error_mentions(rules: &str, words: &[&str]) {
        let e = errors(rules);
        assert!(
            e.iter().any(|l| words.iter().all(|w| l.contains(w))),
            "wanted {words:?} in {e:#?}"
        );
    }

    #[test]
    fn good_rules_are_read_in_order() {
        let r = rules(
            "    - description: Admin console\n      paths: [{prefix: /admin/}, {exact: /settings}]\n      allowed_groups: [admins]\n    - description: API writes\n      paths: [{glob: '/api/**'}]\n      methods: [post, DELETE]\n      allowed_email_domains: ['@Corp.example']\n",
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].description, "Admin console");
        assert!(r[0].methods.is_empty());
        assert_eq!(r[1].methods, vec![http::Method::POST, http::Method::DELETE]);
        assert_eq!(r[1].allowed_email_domains, vec!["corp.example"]);
    }

    #[test]
    fn rules_that_can_never_match_are_refused_by_name() {
        one_error_mentions(
            "    - description: Admin\n      paths: []\n",
            &["access.rules[0] (Admin).paths", "never matches"],
        );
        one_error_mentions(
            "    - description: Admin\n      paths: [{prefix: /admin/}]\n      methods: []\n",
            &["access.rules[0] (Admin).methods", "never matches"],
        );
        one_error_mentions(
            "    - description: Admin\n      paths: [{prefix: /admin/}]\n      methods: [GTE]\n",
            &["access.rules[0] (Admin).methods[0]", "`GTE`"],
        );
        for (p, want) in [
            ("{prefix: /admin/../x/}", "`/x/`"),
            ("{prefix: //admin/}", "`/admin/`"),
            ("{exact: /%61dmin}", "`/admin`"),
            ("{exact: '/admin%2fx'}", "a plain path"),
        ] {
            one_error_mentions(
                &format!("    - description: Admin\n      paths: [{p}]\n"),
                &["access.rules[0] (Admin).paths[0]", "canonical", want],
            );
        }
        one_error_mentions(
            "    - description: Admin\n      paths: [{prefix: /admin}]\n",
            &["access.rules[0] (Admin).paths[0].prefix", "end with `/`"],
        );
        one_error_mentions(
            "    - paths: [{prefix: /admin/}]\n",
            &["access.rules[0].description", "is required"],
        );
        one_error_mentions(
            "    - description: Admin\n      paths: [{prefix: /admin/, methods: [GET]}]\n",
            &["access.rules[0] (Admin).paths[0].methods", "move it"],
        );
        one_error_mentions(
            "    - description: Admin\n      paths: [{prefix: /admin/}]\n      allowed_ip_ranges: [10.0.0.0/33]\n",
            &["access.rules[0] (Admin).allowed_ip_ranges[0]", "CIDR"],
        );
        one_error_mentions(
            "    - description: Admin\n      paths: [{prefix: /admin/}]\n      max_auth_age: 500ms\n",
            &["access.rules[0] (Admin).max_auth_age", "at least 1s"],
        );
        one_error_mentions(
            "    - description: Admin\n      paths: [{prefix: /admin/}]\n      max_auth_age: 0s\n",
            &["access.rules[0] (Admin).max_auth_age", "at least 1s"],
        );
    }

    #[test]
    fn max_auth_age_is_kept() {
        let c = crate::config::from_yaml_str(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\naccess:\n  rules:\n    - description: Admin\n      paths: [{prefix: /admin/}]\n      max_auth_age: 15m\n",
        )
        .unwrap();
        assert_eq!(
            c.access.rules[0].max_auth_age,
            Some(std::time::Duration::from_secs(900))
        );
    }

    #[test]
    fn a_rule_covered_by_an_earlier_one_is_refused() {
        for (earlier, later) in [
            (
                "paths: [{prefix: /admin/}]",
                "paths: [{prefix: /admin/users/}]",
            ),
            ("paths: [{prefix: /admin/}]", "paths: [{exact: /admin/x}]"),
            (
                "paths: [{prefix: /admin/}]",
                "paths: [{glob: '/admin/**/*.json'}]",
            ),
            ("paths: [{glob: '/a/*.css'}]", "paths: [{exact: /a/b.css}]"),
            ("paths: [{glob: '/a/**'}]", "paths: [{glob: '/a/**'}]"),
            (
                "paths: [{prefix: /a/}, {prefix: /b/}]",
                "paths: [{exact: /b/x}, {prefix: /a/y/}]",
            ),
            (
                "paths: [{prefix: /api/}]",
                "paths: [{prefix: /api/}]\n      methods: [POST]",
            ),
            (
                "paths: [{prefix: /api/}]\n      methods: [POST, PUT]",
                "paths: [{prefix: /api/v1/}]\n      methods: [put]",
            ),
        ] {
            let e = errors(&format!(
                "    - description: First\n      {earlier}\n    - description: Second\n      {later}\n"
            ));
            assert!(
                e.iter().any(|l| l.contains("access.rules[1] (Second)")
                    && l.contains("access.rules[0] (First)")
                    && l.contains("move this rule before it")),
                "{earlier} / {later}: {e:#?}"
            );
        }
    }

    #[test]
    fn rules_that_only_overlap_are_kept() {
        for (earlier, later) in [
            (
                "paths: [{prefix: /admin/users/}]",
                "paths: [{prefix: /admin/}]",
            ),
            (
                "paths: [{prefix: /api/}]\n      methods: [POST]",
                "paths: [{prefix: /api/}]",
            ),
            (
                "paths: [{prefix: /a/}]",
                "paths: [{exact: /a/x}, {exact: /b}]",
            ),
            ("paths: [{glob: '/a/*'}]", "paths: [{prefix: /a/}]"),
            ("paths: [{prefix: /a/}]", "paths: [{glob: '/*/x'}]"),
            ("paths: [{exact: /a/}]", "paths: [{prefix: /a/}]"),
        ] {
            let r = rules(&format!(
                "    - description: First\n      {earlier}\n    - description: Second\n      {later}\n"
            ));
            assert_eq!(r.len(), 2, "{earlier} / {later}");
        }
    }
}
