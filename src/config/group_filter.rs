//! `session.groups`: which of a user's groups the session keeps. Users in
//! hundreds of groups make session cookies of many kilobytes, past what
//! browsers, nginx and app servers accept in request headers; the app
//! usually needs a handful. Patterns are globs (`*`, `?`, `[...]`,
//! `{a,b}`; `\` makes the next character literal), so an exact name is a
//! pattern too. Applied once, at login (`server::App::complete_login`).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// The compiled `session.groups` list.
#[derive(Debug, Clone)]
pub struct GroupFilter {
    set: GlobSet,
}

impl GroupFilter {
    /// Compiles `patterns`; each problem comes back with the index of its
    /// entry and what is wrong with it.
    pub fn build(patterns: &[String]) -> Result<GroupFilter, Vec<(usize, String)>> {
        let mut errs = Vec::new();
        let mut set = GlobSetBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            if p.trim().is_empty() {
                errs.push((
                    i,
                    "is empty: give a group name or a pattern such as `app-*`".into(),
                ));
                continue;
            }
            // Group names are not paths: `*` also matches `/` and `,`
            // (`cn=app-*` matches a whole LDAP DN).
            match GlobBuilder::new(p)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
            {
                Ok(g) => {
                    set.add(g);
                }
                Err(e) => errs.push((
                    i,
                    format!(
                        "`{p}` is not a valid pattern ({}): use a group name, `*` and `?` as wildcards, and `\\` before a literal `*`, `?`, `[` or `{{`",
                        e.kind()
                    ),
                )),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        set.build()
            .map(|set| GroupFilter { set })
            .map_err(|e| vec![(0, e.to_string())])
    }

    pub fn matches(&self, group: &str) -> bool {
        self.set.is_match(group)
    }

    /// Keeps the groups that match or that `needed` says are needed (the
    /// groups an access rule names: a rule must keep seeing them); returns
    /// how many were dropped.
    pub fn retain(&self, groups: &mut Vec<String>, needed: impl Fn(&str) -> bool) -> usize {
        let before = groups.len();
        groups.retain(|g| self.matches(g) || needed(g));
        before - groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(p: &[&str]) -> GroupFilter {
        GroupFilter::build(&p.iter().map(|s| (*s).to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_names_and_patterns() {
        let f = filter(&["staff", "app-*", "cn=grafana-*,ou=groups,dc=example,dc=com"]);
        for g in [
            "staff",
            "app-",
            "app-admins",
            "app-a/b",
            "cn=grafana-editors,ou=groups,dc=example,dc=com",
        ] {
            assert!(f.matches(g), "{g}");
        }
        for g in [
            "Staff",
            "staffing",
            "xapp-admins",
            "cn=other,ou=groups,dc=example,dc=com",
            "",
        ] {
            assert!(!f.matches(g), "{g}");
        }
        let dn = filter(&["cn=grp-00*"]);
        assert!(dn.matches("cn=grp-000,ou=groups,dc=example,dc=com"));
        let literal = filter(&[r"team\*"]);
        assert!(literal.matches("team*"));
        assert!(!literal.matches("teams"));
    }

    #[test]
    fn retain_keeps_matches_and_needed_groups_and_counts_the_rest() {
        let f = filter(&["grp-00*"]);
        let mut groups: Vec<String> = (0..500).map(|i| format!("grp-{i:03}")).collect();
        groups.push("admins".into());
        let dropped = f.retain(&mut groups, |g| g == "admins");
        assert_eq!(dropped, 490);
        let mut want: Vec<String> = (0..10).map(|i| format!("grp-00{i}")).collect();
        want.push("admins".into());
        assert_eq!(groups, want);
    }

    #[test]
    fn empty_and_invalid_patterns_are_named() {
        let errs = GroupFilter::build(&["ok".into(), " ".into(), "app-[".into()]).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].0, 1);
        assert!(errs[0].1.contains("is empty"), "{errs:?}");
        assert_eq!(errs[1].0, 2);
        assert!(
            errs[1].1.contains("`app-[` is not a valid pattern"),
            "{errs:?}"
        );
    }
}
