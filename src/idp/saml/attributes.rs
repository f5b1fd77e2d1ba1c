//! From a verified assertion's NameID and attributes to the [`Identity`].
//! Built-in aliases make AD FS, Entra ID, Okta, Shibboleth-style (OID),
//! Keycloak and SimpleSAMLphp work unmapped; an attribute matches by its
//! `Name` or `FriendlyName`, case-insensitively, and the first alias present
//! wins. The operator can replace each list.

use std::collections::BTreeMap;

use samael::schema::Assertion;

use crate::config::saml::AttributeOverrides;
use crate::identity::Identity;

const CLAIMS: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/";
const MS_CLAIMS: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/";

const UID_OID: &str = "urn:oid:0.9.2342.19200300.100.1.1";
const MAIL_OID: &str = "urn:oid:0.9.2342.19200300.100.1.3";
/// eduPerson (eduPerson 202208 §2.2).
const EPPN_OID: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6";
const IS_MEMBER_OF_OID: &str = "urn:oid:1.3.6.1.4.1.5923.1.5.1.1";
/// inetOrgPerson / X.520 `cn`.
const CN_OID: &str = "urn:oid:2.5.4.3";
/// Active Directory's `memberOf`.
const AD_MEMBER_OF_OID: &str = "urn:oid:1.2.840.113556.1.2.102";

fn upn() -> [String; 2] {
    [format!("{CLAIMS}upn"), "userPrincipalName".into()]
}

pub fn default_user() -> Vec<String> {
    let mut v = vec![
        "uid".to_string(),
        UID_OID.into(),
        "sAMAccountName".into(),
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname".into(),
    ];
    v.extend(upn());
    v.extend(["eduPersonPrincipalName".into(), EPPN_OID.into()]);
    v
}

pub fn default_email() -> Vec<String> {
    let mut v = vec![
        "mail".to_string(),
        "email".into(),
        "emailaddress".into(),
        MAIL_OID.into(),
        format!("{CLAIMS}emailaddress"),
    ];
    v.extend(upn());
    v
}

pub fn default_display_name() -> Vec<String> {
    vec![
        "displayName".into(),
        "urn:oid:2.16.840.1.113730.3.1.241".into(),
        "http://schemas.microsoft.com/identity/claims/displayname".into(),
        // LDAP directories hold the full name in `cn`.
        "cn".into(),
        CN_OID.into(),
        "commonName".into(),
    ]
}

fn given_name() -> Vec<String> {
    vec![
        "givenName".into(),
        "firstName".into(),
        "urn:oid:2.5.4.42".into(),
        format!("{CLAIMS}givenname"),
    ]
}

fn surname() -> Vec<String> {
    vec![
        "sn".into(),
        "surname".into(),
        "lastName".into(),
        "urn:oid:2.5.4.4".into(),
        format!("{CLAIMS}surname"),
    ]
}

pub fn default_groups() -> Vec<String> {
    vec![
        "groups".into(),
        "memberOf".into(),
        AD_MEMBER_OF_OID.into(),
        "isMemberOf".into(),
        IS_MEMBER_OF_OID.into(),
        format!("{MS_CLAIMS}groups"),
        format!("{MS_CLAIMS}role"),
        "http://schemas.xmlsoap.org/claims/Group".into(),
        "Role".into(),
    ]
}

/// Extra attributes always offered for `headers.extra`, under these keys.
pub fn default_extra() -> Vec<(String, Vec<String>)> {
    vec![
        (
            "distinguishedName".into(),
            vec!["distinguishedName".into(), "urn:oid:2.5.4.49".into()],
        ),
        ("company".into(), vec!["company".into()]),
        (
            "department".into(),
            vec![
                "department".into(),
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/department".into(),
            ],
        ),
        (
            "telephoneNumber".into(),
            vec!["telephoneNumber".into(), "urn:oid:2.5.4.20".into()],
        ),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(
        "the IdP's answer names no user: it has no NameID and none of the attributes {0}; release one of them for this application at the IdP, or set saml.attributes.user"
    )]
    NoUser(String),
    #[error(
        "the IdP's answer has a value with control characters (the NameID, user name, email, name, a group or a mapped attribute), which cannot be sent as a header; fix the value at the IdP"
    )]
    BadValue,
}

/// `(name, friendly name, values)` of every attribute in the assertion.
type Attr = (Option<String>, Option<String>, Vec<String>);

fn attributes(assertion: &Assertion) -> Vec<Attr> {
    assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| &s.attributes)
        .map(|a| {
            let values = a
                .values
                .iter()
                .filter_map(|v| v.value.as_deref())
                .map(str::trim)
                // Values with control characters are kept here and refuse
                // the login in `identity` once mapped: dropping one would
                // fall back to another attribute for the user name, or
                // leave a group out without anyone noticing.
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect();
            (a.name.clone(), a.friendly_name.clone(), values)
        })
        .collect()
}

fn find<'a>(attrs: &'a [Attr], aliases: &[String]) -> Option<&'a [String]> {
    let matches = |n: &Option<String>, alias: &str| {
        n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(alias))
    };
    aliases.iter().find_map(|alias| {
        attrs
            .iter()
            .find(|(name, friendly, values)| {
                !values.is_empty() && (matches(name, alias) || matches(friendly, alias))
            })
            .map(|(_, _, v)| v.as_slice())
    })
}

pub fn identity(
    assertion: &Assertion,
    overrides: &AttributeOverrides,
) -> Result<Identity, MappingError> {
    let attrs = attributes(assertion);
    let name_id = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| (n.value.trim().to_string(), n.format.clone()))
        .filter(|(v, _)| !v.is_empty());
    if name_id
        .as_ref()
        .is_some_and(|(v, _)| v.chars().any(char::is_control))
    {
        return Err(MappingError::BadValue);
    }
    let first = |aliases: &[String]| find(&attrs, aliases).and_then(|v| v.first().cloned());

    let user_aliases = overrides.user.clone().unwrap_or_else(default_user);
    let user = first(&user_aliases)
        // An explicit override means exactly those attributes.
        .or_else(|| match overrides.user {
            Some(_) => None,
            None => name_id.as_ref().map(|(v, _)| v.clone()),
        })
        .ok_or_else(|| MappingError::NoUser(user_aliases.join(", ")))?;

    let email = match &overrides.email {
        Some(aliases) => first(aliases),
        None => first(&default_email()).or_else(|| {
            name_id
                .as_ref()
                .filter(|(v, f)| {
                    f.as_deref() == Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
                        && v.contains('@')
                })
                .map(|(v, _)| v.clone())
        }),
    };

    let name = match &overrides.name {
        Some(aliases) => first(aliases),
        None => first(&default_display_name())
            .or_else(|| match (first(&given_name()), first(&surname())) {
                (Some(g), Some(s)) => Some(format!("{g} {s}")),
                (Some(g), None) => Some(g),
                (None, Some(s)) => Some(s),
                (None, None) => None,
            })
            .or_else(|| first(&[format!("{CLAIMS}name")])),
    };

    let groups = overrides
        .groups
        .as_deref()
        .map_or_else(|| find(&attrs, &default_groups()), |a| find(&attrs, a))
        .map(<[String]>::to_vec)
        .unwrap_or_default();

    let mut extra = BTreeMap::new();
    for (key, aliases) in default_extra().iter().chain(overrides.extra.iter()) {
        if let Some(v) = find(&attrs, aliases) {
            extra.insert(key.clone(), v.join(","));
        }
    }

    let identity = Identity {
        subject: name_id.map_or_else(|| user.clone(), |(v, _)| v),
        preferred_username: Some(user.clone()),
        user,
        email,
        name,
        groups,
        extra,
        // Chosen at login (`policy::roles`), after every IdP check.
        role: None,
    };
    if !identity.is_header_safe() {
        return Err(MappingError::BadValue);
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assertion(
        name_id: Option<(&str, &str)>,
        attrs: &[(&str, Option<&str>, &[&str])],
    ) -> Assertion {
        let nid = name_id
            .map(|(f, v)| format!(r#"<saml:NameID Format="{f}">{v}</saml:NameID>"#))
            .unwrap_or_default();
        let attrs: String = attrs
            .iter()
            .map(|(n, fr, vals)| {
                let fr = fr
                    .map(|f| format!(r#" FriendlyName="{f}""#))
                    .unwrap_or_default();
                let vals: String = vals
                    .iter()
                    .map(|v| format!("<saml:AttributeValue>{v}</saml:AttributeValue>"))
                    .collect();
                format!(r#"<saml:Attribute Name="{n}"{fr}>{vals}</saml:Attribute>"#)
            })
            .collect();
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>https://idp</saml:Issuer><saml:Subject>{nid}</saml:Subject><saml:AttributeStatement>{attrs}</saml:AttributeStatement></saml:Assertion>"#
        )
        .parse()
        .unwrap()
    }

    const EMAIL_FMT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

    #[test]
    fn friendly_names_basic_names() {
        let a = assertion(
            Some((EMAIL_FMT, "alice@example.com")),
            &[
                ("uid", None, &["alice"]),
                ("mail", None, &["alice@example.com"]),
                ("displayName", None, &["Alice Example"]),
                ("groups", None, &["admins", "staff"]),
                ("department", None, &["R&amp;D"]),
            ],
        );
        let id = identity(&a, &AttributeOverrides::default()).unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.subject, "alice@example.com");
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
        assert_eq!(id.name.as_deref(), Some("Alice Example"));
        assert_eq!(id.groups, vec!["admins", "staff"]);
        assert_eq!(id.extra.get("department").map(String::as_str), Some("R&D"));
    }

    #[test]
    fn oids_and_friendly_names() {
        let a = assertion(
            Some(("urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "_x1")),
            &[
                (UID_OID, Some("uid"), &["bob"]),
                (MAIL_OID, None, &["bob@example.org"]),
                ("urn:oid:2.5.4.42", None, &["Bob"]),
                ("urn:oid:2.5.4.4", None, &["Builder"]),
                ("urn:oid:1.3.6.1.4.1.5923.1.5.1.1", None, &["staff"]),
            ],
        );
        let id = identity(&a, &AttributeOverrides::default()).unwrap();
        assert_eq!(id.user, "bob");
        assert_eq!(id.email.as_deref(), Some("bob@example.org"));
        assert_eq!(id.name.as_deref(), Some("Bob Builder"));
        assert_eq!(id.groups, vec!["staff"]);
        // A transient NameID is no email address.
        let a = assertion(
            Some(("urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "_x1")),
            &[(UID_OID, None, &["bob"])],
        );
        assert_eq!(
            identity(&a, &AttributeOverrides::default()).unwrap().email,
            None
        );
    }

    #[test]
    fn ldap_inet_org_person_names_need_no_mapping() {
        // An LDAP-backed IdP releasing the directory's own names.
        let a = assertion(
            Some(("urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "_t")),
            &[
                ("uid", None, &["frank"]),
                ("mail", None, &["frank@example.org"]),
                ("cn", None, &["Frank Directory"]),
                ("givenName", None, &["Franz"]),
                ("sn", None, &["Other"]),
                ("memberOf", None, &["cn=ops,ou=groups,dc=example,dc=org"]),
            ],
        );
        let id = identity(&a, &AttributeOverrides::default()).unwrap();
        assert_eq!(id.user, "frank");
        assert_eq!(id.email.as_deref(), Some("frank@example.org"));
        assert_eq!(
            id.name.as_deref(),
            Some("Frank Directory"),
            "cn before givenName + sn"
        );
        assert_eq!(id.groups, vec!["cn=ops,ou=groups,dc=example,dc=org"]);
        // The same by OID only (Shibboleth-style, urn:oasis:…:uri NameFormat).
        let a = assertion(
            None,
            &[
                (UID_OID, None, &["frank"]),
                (CN_OID, None, &["Frank Directory"]),
                (AD_MEMBER_OF_OID, None, &["ops"]),
            ],
        );
        let id = identity(&a, &AttributeOverrides::default()).unwrap();
        assert_eq!(id.user, "frank");
        assert_eq!(id.name.as_deref(), Some("Frank Directory"));
        assert_eq!(id.groups, vec!["ops"]);
        // displayName, when released too, wins over cn.
        let a = assertion(
            None,
            &[
                ("uid", None, &["frank"]),
                ("cn", None, &["F. Directory"]),
                ("displayName", None, &["Frank D."]),
            ],
        );
        let id = identity(&a, &AttributeOverrides::default()).unwrap();
        assert_eq!(id.name.as_deref(), Some("Frank D."));
    }

    #[test]
    fn edu_person_names_need_no_mapping() {
        let a = assertion(
            Some(("urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "_t")),
            &[
                (
                    EPPN_OID,
                    Some("eduPersonPrincipalName"),
                    &["gina@uni.example"],
                ),
                (IS_MEMBER_OF_OID, Some("isMemberOf"), &["staff", "faculty"]),
                ("urn:oid:2.16.840.1.113730.3.1.241", None, &["Gina Scholar"]),
            ],
        );
        let id = identity(&a, &AttributeOverrides::default()).unwrap();
        assert_eq!(id.user, "gina@uni.example");
        assert_eq!(id.name.as_deref(), Some("Gina Scholar"));
        assert_eq!(id.groups, vec!["staff", "faculty"]);
        // By name only, and uid still wins over the scoped principal name.
        let a = assertion(
            None,
            &[
                ("eduPersonPrincipalName", None, &["gina@uni.example"]),
                ("uid", None, &["gina"]),
                ("isMemberOf", None, &["staff"]),
            ],
        );
        let id = identity(&a, &AttributeOverrides::default()).unwrap();
        assert_eq!(id.user, "gina");
        assert_eq!(id.groups, vec!["staff"]);
    }

    #[test]
    fn adfs_claim_uris() {
        let a = assertion(
            Some((EMAIL_FMT, "carol@example.com")),
            &[
                (&format!("{CLAIMS}name"), None, &["Carol Outsider"]),
                (&format!("{CLAIMS}upn"), None, &["carol@example.com"]),
                (
                    &format!("{CLAIMS}emailaddress"),
                    None,
                    &["carol@example.com"],
                ),
                (&format!("{MS_CLAIMS}groups"), None, &["contractors"]),
            ],
        );
        let id = identity(&a, &AttributeOverrides::default()).unwrap();
        assert_eq!(id.user, "carol@example.com");
        assert_eq!(id.email.as_deref(), Some("carol@example.com"));
        assert_eq!(id.name.as_deref(), Some("Carol Outsider"));
        assert_eq!(id.groups, vec!["contractors"]);
    }

    #[test]
    fn nameid_is_the_last_resort_user_and_overrides_replace_lists() {
        let a = assertion(
            Some((EMAIL_FMT, "dave@example.com")),
            &[("roles", None, &["ops"])],
        );
        let id = identity(&a, &AttributeOverrides::default()).unwrap();
        assert_eq!(id.user, "dave@example.com");
        assert!(id.groups.is_empty());
        let o = AttributeOverrides {
            groups: Some(vec!["roles".into()]),
            extra: vec![("team".into(), vec!["roles".into()])],
            ..Default::default()
        };
        let id = identity(&a, &o).unwrap();
        assert_eq!(id.groups, vec!["ops"]);
        assert_eq!(id.extra.get("team").map(String::as_str), Some("ops"));
        // An explicit user attribute that is missing is an error, not the NameID.
        let o = AttributeOverrides {
            user: Some(vec!["employeeNumber".into()]),
            ..Default::default()
        };
        assert!(matches!(identity(&a, &o), Err(MappingError::NoUser(_))));
        let none = assertion(None, &[]);
        let err = identity(&none, &AttributeOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("release one of them"));
    }

    #[test]
    fn control_characters_refuse_the_login_instead_of_being_dropped() {
        let mut failures = Vec::new();
        for (name, attrs) in [
            (
                "a group",
                vec![("groups", None, &["ok", "bad&#10;X-Evil: 1"][..])],
            ),
            // Dropping the value would make `mail` the user name.
            (
                "the user attribute",
                vec![
                    ("uid", None, &["erin&#13;&#10;X-Admin: 1"][..]),
                    ("mail", None, &["other@example.com"][..]),
                ],
            ),
            (
                "the email",
                vec![("mail", None, &["erin&#9;@example.com"][..])],
            ),
            (
                "the display name",
                vec![("displayName", None, &["Erin&#7;"][..])],
            ),
            (
                "a mapped attribute",
                vec![("department", None, &["R&amp;D&#10;Sales"][..])],
            ),
        ] {
            let a = assertion(Some((EMAIL_FMT, "erin@example.com")), &attrs);
            match identity(&a, &AttributeOverrides::default()) {
                Err(MappingError::BadValue) => {}
                other => failures.push(format!("{name}: {other:?}")),
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        // An attribute the mapping does not use cannot refuse a login.
        let a = assertion(
            Some((EMAIL_FMT, "erin@example.com")),
            &[
                ("groups", None, &["ok"]),
                ("postalAddress", None, &["1 Road&#10;Town"]),
            ],
        );
        assert_eq!(
            identity(&a, &AttributeOverrides::default()).unwrap().groups,
            ["ok"]
        );
    }
}
