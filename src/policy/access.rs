//! Access rules: who (groups, emails, email domains) and from where (client
//! address ranges) may use the app once authenticated.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{Access, AccessRule};
use crate::identity::Identity;

/// The allow lists of one rule: the domain-wide default or an
/// `access.rules` entry.
#[derive(Debug, Clone, Copy)]
pub struct Lists<'a> {
    pub groups: &'a [String],
    pub emails: &'a [String],
    pub email_domains: &'a [String],
    pub roles: &'a [String],
    pub ip_ranges: &'a [IpNet],
}

impl<'a> From<&'a Access> for Lists<'a> {
    fn from(a: &'a Access) -> Self {
        Lists {
            groups: &a.allowed_groups,
            emails: &a.allowed_emails,
            email_domains: &a.allowed_email_domains,
            roles: &a.allowed_roles,
            ip_ranges: &a.allowed_ip_ranges,
        }
    }
}

impl<'a> From<&'a AccessRule> for Lists<'a> {
    fn from(r: &'a AccessRule) -> Self {
        Lists {
            groups: &r.allowed_groups,
            emails: &r.allowed_emails,
            email_domains: &r.allowed_email_domains,
            roles: &r.allowed_roles,
            ip_ranges: &r.allowed_ip_ranges,
        }
    }
}

/// Which rule refused a request; named in the audit log, never on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Not in `allowed_groups`, `allowed_emails`, `allowed_email_domains`
    /// or `allowed_roles`.
    Identity,
    /// Client address outside `allowed_ip_ranges`.
    ClientIp,
    /// A value of the identity contains control characters: it cannot be
    /// sent as a header, and forwarding without it would tell the upstream
    /// less than Portcullis knows (fail closed).
    NotHeaderSafe,
    /// `access.rules` exist and the path has no normal form, so no rule
    /// can be chosen for it (fail closed).
    UnplaceablePath,
}

/// A refusal and the rule that made it: named in the audit log; only the
/// operator's description is shown on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub why: Denied,
    /// `default`, `rules[N]`, or `none` when no rule could be chosen.
    pub rule: String,
    pub description: Option<String>,
}

impl Denied {
    pub fn rule(self) -> &'static str {
        match self {
            Denied::Identity => "allowed_groups/allowed_emails/allowed_email_domains/allowed_roles",
            Denied::ClientIp => "allowed_ip_ranges",
            Denied::NotHeaderSafe => "identity_control_characters",
            Denied::UnplaceablePath => "path_without_normal_form",
        }
    }
}

/// The identity rules form one allow list: with none configured, every
/// authenticated user is allowed; otherwise a match in any of them allows.
pub fn check_identity<'a>(lists: impl Into<Lists<'a>>, id: &Identity) -> Result<(), Denied> {
    let access = lists.into();
    if access.groups.is_empty()
        && access.emails.is_empty()
        && access.email_domains.is_empty()
        && access.roles.is_empty()
    {
        return Ok(());
    }
    if id.groups.iter().any(|g| access.groups.contains(g)) {
        return Ok(());
    }
    if id.role.as_ref().is_some_and(|r| access.roles.contains(r)) {
        return Ok(());
    }
    if let Some(email) = id.email.as_deref()
        && email_matches(email, access.emails, access.email_domains)
    {
        return Ok(());
    }
    Err(Denied::Identity)
}

/// Whether an address is one of `emails` (lower case) or in one of
/// `domains`: exactly the domain after the last `@`, so `a@x.example.com`
/// does not match `example.com`, and `a@example.com@evil` has domain `evil`.
pub fn email_matches(email: &str, emails: &[String], domains: &[String]) -> bool {
    let email = email.to_ascii_lowercase();
    emails.contains(&email)
        || email
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domains.iter().any(|d| d == domain))
}

/// Every value the upstream would receive can be a header.
pub fn check_header_safe(id: &Identity) -> Result<(), Denied> {
    if id.is_header_safe() {
        Ok(())
    } else {
        Err(Denied::NotHeaderSafe)
    }
}

pub fn check_ip<'a>(lists: impl Into<Lists<'a>>, ip: IpAddr) -> Result<(), Denied> {
    let access = lists.into();
    if access.ip_ranges.is_empty() || access.ip_ranges.iter().any(|n| n.contains(&ip)) {
        Ok(())
    } else {
        Err(Denied::ClientIp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(yaml: &str) -> Access {
        crate::config::from_yaml_str(&format!(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\naccess:\n{yaml}"
        ))
        .unwrap()
        .access
    }

    fn id(email: &str, groups: &[&str]) -> Identity {
        Identity {
            subject: "s".into(),
            user: "u".into(),
            email: Some(email.into()),
            groups: groups
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn no_rules_allow_everyone() {
        assert!(check_identity(&access("  allowed_ip_ranges: []\n"), &id("a@b.c", &[])).is_ok());
    }

    #[test]
    fn any_matching_rule_allows() {
        let a = access(
            "  allowed_groups: [admins]\n  allowed_emails: [Boss@Corp.example]\n  allowed_email_domains: ['@example.com']\n",
        );
        assert!(check_identity(&a, &id("x@other.example", &["admins"])).is_ok());
        assert!(check_identity(&a, &id("boss@corp.example", &[])).is_ok());
        assert!(check_identity(&a, &id("Carol@EXAMPLE.com", &[])).is_ok());
        assert_eq!(
            check_identity(&a, &id("x@other.example", &["Admins"])),
            Err(Denied::Identity)
        );
        assert_eq!(
            check_identity(&a, &id("x@sub.example.com", &[])),
            Err(Denied::Identity)
        );
        assert_eq!(
            check_identity(&a, &id("x@example.com.evil", &[])),
            Err(Denied::Identity)
        );
    }

    #[test]
    fn each_rule_alone_refuses_an_outsider() {
        // One list configured is an allow list by itself: the others being
        // empty must not open the gate to everyone.
        let outsider = id("mallory@evil.example", &["staff"]);
        for rule in [
            "  allowed_groups: [admins]\n",
            "  allowed_emails: [boss@corp.example]\n",
            "  allowed_email_domains: [corp.example]\n",
            "  allowed_groups: [admins]\n  allowed_emails: [boss@corp.example]\n",
            "  allowed_emails: [boss@corp.example]\n  allowed_email_domains: [corp.example]\n",
        ] {
            assert_eq!(
                check_identity(&access(rule), &outsider),
                Err(Denied::Identity),
                "{rule}"
            );
        }
    }

    #[test]
    fn ip_ranges() {
        let a = access("  allowed_ip_ranges: [10.0.0.0/8, '2001:db8::/32']\n");
        assert!(check_ip(&a, "10.1.2.3".parse().unwrap()).is_ok());
        assert!(check_ip(&a, "2001:db8::1".parse().unwrap()).is_ok());
        assert_eq!(
            check_ip(&a, "192.0.2.1".parse().unwrap()),
            Err(Denied::ClientIp)
        );
    }

    #[test]
    fn control_characters_in_any_value_refuse_the_identity() {
        let mut failures = Vec::new();
        let base = id("a@example.com", &["staff"]);
        assert_eq!(check_header_safe(&base), Ok(()));
        let unicode = Identity {
            name: Some("Zoë Ŝmith 山田".into()),
            ..base.clone()
        };
        assert_eq!(check_header_safe(&unicode), Ok(()), "non-ASCII is fine");
        for bad in [
            "a\r\nX-Admin: 1",
            "a\nb",
            "a\u{0}",
            "a\tb",
            "a\u{7f}",
            "a\u{85}",
        ] {
            let variants: Vec<(&str, Identity)> = vec![
                (
                    "subject",
                    Identity {
                        subject: bad.into(),
                        ..base.clone()
                    },
                ),
                (
                    "user",
                    Identity {
                        user: bad.into(),
                        ..base.clone()
                    },
                ),
                (
                    "email",
                    Identity {
                        email: Some(bad.into()),
                        ..base.clone()
                    },
                ),
                (
                    "name",
                    Identity {
                        name: Some(bad.into()),
                        ..base.clone()
                    },
                ),
                (
                    "preferred_username",
                    Identity {
                        preferred_username: Some(bad.into()),
                        ..base.clone()
                    },
                ),
                (
                    "groups",
                    Identity {
                        groups: vec!["staff".into(), bad.into()],
                        ..base.clone()
                    },
                ),
                (
                    "extra",
                    Identity {
                        extra: [("dept".to_string(), bad.to_string())].into(),
                        ..base.clone()
                    },
                ),
            ];
            for (field, identity) in variants {
                if check_header_safe(&identity) != Err(Denied::NotHeaderSafe) {
                    failures.push(format!("{field} = {bad:?}"));
                }
            }
        }
        assert!(failures.is_empty(), "accepted: {failures:?}");
        assert_eq!(Denied::NotHeaderSafe.rule(), "identity_control_characters");
    }
}
