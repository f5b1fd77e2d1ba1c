//! Which role a user has (`roles:`): the first entry that matches, in the
//! operator's order (highest first), else `default_role`. Chosen once, at
//! login; the session keeps it.

use crate::config::Roles;
use crate::identity::{Identity, IdpKind};

/// The outcome for one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// No roles are configured: the user has none, and needs none.
    Off,
    Role(String),
    /// Roles are configured, none matches, and there is no default.
    NoMatch,
}

pub fn choose(roles: &Roles, id: &Identity, idp: IdpKind) -> Chosen {
    if !roles.enabled() {
        return Chosen::Off;
    }
    let email = id.email.as_deref();
    roles
        .list
        .iter()
        .find(|r| {
            id.groups.iter().any(|g| r.groups.contains(g))
                || email
                    .is_some_and(|e| super::access::email_matches(e, &r.emails, &r.email_domains))
                || r.idps.contains(&idp)
        })
        .map(|r| r.name.clone())
        .or_else(|| roles.default.clone())
        .map_or(Chosen::NoMatch, Chosen::Role)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(yaml: &str) -> Roles {
        crate::config::from_yaml_str(&format!(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\n{yaml}"
        ))
        .unwrap()
        .roles
    }

    fn user(email: &str, groups: &[&str]) -> Identity {
        Identity {
            subject: "s".into(),
            user: "u".into(),
            email: Some(email.into()),
            groups: groups.iter().map(|g| (*g).to_string()).collect(),
            ..Default::default()
        }
    }

    const THREE: &str = "roles:\n  - name: admin\n    groups: [admins]\n  - name: editor\n    groups: [staff]\n    emails: [Carol@Example.com]\n  - name: partner\n    email_domains: [partner.example]\n    idps: [saml]\n";

    fn role(r: &Roles, id: &Identity, idp: IdpKind) -> Chosen {
        choose(r, id, idp)
    }

    #[test]
    fn the_first_match_wins_in_the_written_order() {
        let r = roles(&format!("{THREE}default_role: viewer\n"));
        let both = user("a@example.com", &["staff", "admins"]);
        assert_eq!(role(&r, &both, IdpKind::Oidc), Chosen::Role("admin".into()));
        let staff = user("b@example.com", &["staff"]);
        assert_eq!(
            role(&r, &staff, IdpKind::Oidc),
            Chosen::Role("editor".into())
        );
        // An address, compared without case.
        let carol = user("carol@EXAMPLE.com", &[]);
        assert_eq!(
            role(&r, &carol, IdpKind::Oidc),
            Chosen::Role("editor".into())
        );
        // The domain exactly, after the last `@`.
        let partner = user("p@partner.example", &[]);
        assert_eq!(
            role(&r, &partner, IdpKind::Oidc),
            Chosen::Role("partner".into())
        );
        let sub = user("p@sub.partner.example", &[]);
        assert_eq!(role(&r, &sub, IdpKind::Oidc), Chosen::Role("viewer".into()));
        let tricked = user("p@partner.example@evil.example", &[]);
        assert_eq!(
            role(&r, &tricked, IdpKind::Oidc),
            Chosen::Role("viewer".into())
        );
        // The IdP kind.
        assert_eq!(
            role(&r, &sub, IdpKind::Saml),
            Chosen::Role("partner".into())
        );
        // Group names are exact.
        let near = user("n@example.com", &["Admins", "admins "]);
        assert_eq!(
            role(&r, &near, IdpKind::Oidc),
            Chosen::Role("viewer".into())
        );
    }

    #[test]
    fn without_a_default_a_user_no_role_matches_is_refused() {
        let r = roles(THREE);
        let nobody = user("n@example.com", &["other"]);
        assert_eq!(role(&r, &nobody, IdpKind::Oidc), Chosen::NoMatch);
        let mut no_email = nobody.clone();
        no_email.email = None;
        assert_eq!(role(&r, &no_email, IdpKind::Oidc), Chosen::NoMatch);
    }

    #[test]
    fn a_default_alone_gives_everyone_that_role_and_none_turns_roles_off() {
        let r = roles("default_role: viewer\n");
        assert_eq!(
            role(&r, &user("a@b.c", &[]), IdpKind::Saml),
            Chosen::Role("viewer".into())
        );
        assert_eq!(
            role(&roles(""), &user("a@b.c", &["admins"]), IdpKind::Oidc),
            Chosen::Off
        );
    }
}
