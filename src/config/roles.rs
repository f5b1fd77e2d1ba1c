//! `roles:` and `default_role`: the one role the app gets for a user (an
//! admin/editor/viewer model), chosen at login by `policy::roles`, the
//! first entry that matches winning. Checked here: names that can travel in
//! a header, each entry able to match someone, `idps` only the kinds that
//! exist; `allowed_roles` in `access` may then only name these roles.

use super::FieldError;
use super::raw;
use crate::identity::IdpKind;

/// The checked `roles:` list, in the operator's order (highest first).
#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub list: Vec<Role>,
    /// For everyone no entry matches; `None` refuses them at login.
    pub default: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub groups: Vec<String>,
    /// Lower-cased.
    pub emails: Vec<String>,
    /// Lower-cased, without a leading `@`.
    pub email_domains: Vec<String>,
    pub idps: Vec<IdpKind>,
}

impl Roles {
    /// Whether users get a role at all (and the role header is sent).
    pub fn enabled(&self) -> bool {
        !self.list.is_empty() || self.default.is_some()
    }

    /// Every role a user can have.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list
            .iter()
            .map(|r| r.name.as_str())
            .chain(self.default.as_deref())
    }

    /// Every group a role names: a change of membership in one of them may
    /// change someone's role.
    pub fn named_groups(&self) -> impl Iterator<Item = &String> {
        self.list.iter().flat_map(|r| r.groups.iter())
    }
}

/// A role name goes to the app as a header value and into the session:
/// letters, digits and `.`, `_`, `-`, `:`, at most 64 of them.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

const NAME_RULE: &str = "must be letters, digits, `.`, `_`, `-` or `:` (at most 64, starting with a letter or digit), e.g. `admin`";

pub(super) fn validate(
    raw_roles: &[raw::Role],
    default: Option<&str>,
    errs: &mut Vec<FieldError>,
) -> Roles {
    let mut list: Vec<Role> = Vec::new();
    for (i, r) in raw_roles.iter().enumerate() {
        let email_domains = super::validate::email_domains(
            &r.email_domains,
            &format!("roles[{i}].email_domains"),
            errs,
        );
        let mut add = |field: String, message: String| errs.push(FieldError { field, message });
        let field = format!("roles[{i}]");
        let name = r.name.trim().to_string();
        if !valid_name(&name) {
            add(format!("{field}.name"), format!("`{}` {NAME_RULE}", r.name));
        } else if list.iter().any(|l| l.name == name) {
            add(
                format!("{field}.name"),
                format!(
                    "`{name}` is listed twice: the first match wins, so the second entry is never used; merge them"
                ),
            );
        }
        if r.groups.is_empty()
            && r.emails.is_empty()
            && r.email_domains.is_empty()
            && r.idps.is_empty()
        {
            add(
                field.clone(),
                format!(
                    "`{name}` matches nobody: give it groups, emails, email_domains or idps (`default_role` is the role of everyone else)"
                ),
            );
        }
        let mut idps = Vec::new();
        for (j, k) in r.idps.iter().enumerate() {
            match k.trim().to_ascii_lowercase().as_str() {
                "oidc" => idps.push(IdpKind::Oidc),
                "saml" => idps.push(IdpKind::Saml),
                _ => add(
                    format!("{field}.idps[{j}]"),
                    format!("`{k}` is not a kind of identity provider: write `oidc` or `saml`"),
                ),
            }
        }
        list.push(Role {
            name,
            groups: r.groups.clone(),
            emails: r
                .emails
                .iter()
                .map(|e| e.trim().to_ascii_lowercase())
                .collect(),
            email_domains,
            idps,
        });
    }
    let default = default.map(str::trim).map(String::from);
    if let Some(d) = &default
        && !valid_name(d)
    {
        errs.push(FieldError {
            field: "default_role".into(),
            message: format!("`{d}` {NAME_RULE}"),
        });
    }
    Roles { list, default }
}

/// `allowed_roles` of one rule (`field` names it) against the roles a user
/// can have: a name that is not one of them could never match.
pub(super) fn check_allowed(
    allowed: &[String],
    roles: &Roles,
    field: &str,
    errs: &mut Vec<FieldError>,
) {
    for (i, a) in allowed.iter().enumerate() {
        if !roles.names().any(|n| n == a) {
            let known = roles.names().collect::<Vec<_>>().join(", ");
            errs.push(FieldError {
                field: format!("{field}.allowed_roles[{i}]"),
                message: if known.is_empty() {
                    format!("`{a}` names a role, but no `roles` or `default_role` are configured: define the roles first")
                } else {
                    format!("`{a}` is not a role: the roles are {known}")
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::from_yaml_str;

    const MIN: &str = "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\n";

    fn errors(yaml: &str) -> String {
        from_yaml_str(&format!("{MIN}{yaml}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn roles_are_kept_in_order_with_the_default() {
        let c = from_yaml_str(&format!(
            "{MIN}roles:\n  - name: admin\n    groups: [admins]\n  - name: editor\n    email_domains: ['@Corp.Example']\n    idps: [SAML]\ndefault_role: viewer\naccess:\n  allowed_roles: [admin, viewer]\n"
        ))
        .unwrap();
        let names: Vec<&str> = c.roles.names().collect();
        assert_eq!(names, ["admin", "editor", "viewer"]);
        assert_eq!(c.roles.list[1].email_domains, ["corp.example"]);
        assert_eq!(c.roles.list[1].idps, [crate::identity::IdpKind::Saml]);
        assert!(c.roles.enabled());
        assert_eq!(c.access.allowed_roles, ["admin", "viewer"]);
        assert!(!from_yaml_str(MIN).unwrap().roles.enabled());
    }

    #[test]
    fn each_mistake_is_named_with_its_fix() {
        for (yaml, want) in [
            (
                "roles:\n  - name: 'ad min'\n    groups: [a]\n",
                "roles[0].name: `ad min` must be letters",
            ),
            (
                "roles:\n  - name: admin\n",
                "roles[0]: `admin` matches nobody",
            ),
            (
                "roles:\n  - name: admin\n    groups: [a]\n  - name: admin\n    groups: [b]\n",
                "roles[1].name: `admin` is listed twice",
            ),
            (
                "roles:\n  - name: admin\n    idps: [ldap]\n",
                "roles[0].idps[0]: `ldap` is not a kind",
            ),
            (
                "roles:\n  - name: admin\n    email_domains: ['a b']\n",
                "roles[0].email_domains[0]",
            ),
            (
                "default_role: 'view er'\n",
                "default_role: `view er` must be letters",
            ),
            (
                "access:\n  allowed_roles: [admin]\n",
                "access.allowed_roles[0]: `admin` names a role, but no `roles` or `default_role` are configured",
            ),
            (
                "default_role: viewer\naccess:\n  allowed_roles: [admin]\n",
                "access.allowed_roles[0]: `admin` is not a role: the roles are viewer",
            ),
            (
                "default_role: viewer\naccess:\n  rules:\n    - description: Admin\n      paths: [{prefix: /admin/}]\n      allowed_roles: [admni]\n",
                "access.rules[0] (Admin).allowed_roles[0]: `admni` is not a role",
            ),
        ] {
            let e = errors(yaml);
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
}
