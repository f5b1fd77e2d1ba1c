//! One revocation: what it names, since when, who asked.

use serde::{Deserialize, Serialize};

/// Clock difference between instances that an entry's end allows for.
const LEEWAY_SECS: u64 = 5;

/// What a revocation matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// One session, by its `sid`.
    Session(String),
    /// Every session of this user name (the user header's value) that
    /// logged in before the entry was made. Compared without regard to
    /// case ([`fold_user`]): IdPs send the same email in any case.
    User(String),
    /// Every session of this IdP subject (OIDC `sub`, SAML NameID or the
    /// mapped subject) that logged in before the entry was made.
    Subject(String),
    /// Every session of this IdP session that logged in before the entry
    /// was made: the OpenID Provider's `sid`, the SAML `SessionIndex` (the
    /// session's `isid`).
    IdpSession(String),
    /// Every SAML session that was issued for this NameID and logged in
    /// before the entry was made: equal values, and equal Formats when
    /// both the entry and the session have one (the session's NameID is
    /// its `nid`, else its subject; its Format is `sub_fmt`).
    NameId {
        value: String,
        format: Option<String>,
    },
    /// Every session that logged in before the entry was made.
    All,
}

/// A user name as the [`Target::User`] comparison sees it: lower case, so
/// `Alice@Example.com` from a SCIM call names the session of
/// `alice@example.com`. Both sides go through this.
pub fn fold_user(user: &str) -> std::borrow::Cow<'_, str> {
    if user.is_ascii() {
        if user.bytes().any(|b| b.is_ascii_uppercase()) {
            user.to_ascii_lowercase().into()
        } else {
            user.into()
        }
    } else {
        user.to_lowercase().into()
    }
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Session(_) => "session",
            Target::User(_) => "user",
            Target::Subject(_) => "subject",
            Target::IdpSession(_) => "idp_session",
            Target::NameId { .. } => "name_id",
            Target::All => "all",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Target::Session(v)
            | Target::User(v)
            | Target::Subject(v)
            | Target::IdpSession(v)
            | Target::NameId { value: v, .. } => v,
            Target::All => "*",
        }
    }
}

/// Where a revocation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `portcullis revoke`.
    Cli,
    /// An OpenID Connect back-channel logout token from the provider.
    BackchannelLogout,
    /// A SAML LogoutRequest from the IdP (redirect or SOAP binding).
    SamlLogout,
    /// A SCIM call from the IdP's provisioning (deactivation, deletion,
    /// group removal).
    Scim,
}

impl Source {
    pub fn metric_label(self) -> &'static str {
        match self {
            Source::Cli => "cli",
            Source::BackchannelLogout => "backchannel_logout",
            Source::SamlLogout => "saml_logout",
            Source::Scim => "scim",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub target: Target,
    /// When it was made, in milliseconds since the epoch: sessions that
    /// logged in before this are cut.
    pub at_ms: u64,
    pub source: Source,
    /// Who asked (an operator's login name, an IdP): for the audit log.
    pub by: String,
}

impl Entry {
    /// Whether no session it could match can still be alive at `now_ms`:
    /// every such session logged in before `at_ms` and lives at most
    /// `lifetime_secs`.
    pub fn expired(&self, lifetime_secs: u64, now_ms: u64) -> bool {
        let end_secs = (self.at_ms / 1000)
            .saturating_add(lifetime_secs)
            .saturating_add(LEEWAY_SECS);
        now_ms / 1000 > end_secs
    }

    /// Seconds since the epoch when it is forgotten.
    pub fn expires(&self, lifetime_secs: u64) -> u64 {
        (self.at_ms / 1000)
            .saturating_add(lifetime_secs)
            .saturating_add(LEEWAY_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_fold_to_lower_case() {
        assert_eq!(fold_user("Alice@Example.com"), "alice@example.com");
        assert_eq!(fold_user("alice@example.com"), "alice@example.com");
        assert!(matches!(
            fold_user("alice"),
            std::borrow::Cow::Borrowed("alice")
        ));
        assert_eq!(fold_user("ÉLODIE@Exemple.fr"), "élodie@exemple.fr");
    }

    #[test]
    fn lives_as_long_as_the_sessions_it_could_match() {
        let e = Entry {
            target: Target::All,
            at_ms: 1_000_000,
            source: Source::Cli,
            by: "ops".into(),
        };
        // Made at second 1000; lifetime 3600; 5 s for the clocks.
        assert!(!e.expired(3600, 4_605_000));
        assert!(e.expired(3600, 4_606_000));
    }

    #[test]
    fn file_form_is_stable() {
        let e = Entry {
            target: Target::User("alice".into()),
            at_ms: 7,
            source: Source::Cli,
            by: "root".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"target":{"kind":"user","value":"alice"},"at_ms":7,"source":"cli","by":"root"}"#
        );
        let n = Entry {
            target: Target::NameId {
                value: "alice".into(),
                format: Some("f".into()),
            },
            at_ms: 7,
            source: Source::SamlLogout,
            by: "saml:idp".into(),
        };
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"target":{"kind":"name_id","value":{"value":"alice","format":"f"}},"at_ms":7,"source":"saml_logout","by":"saml:idp"}"#
        );
        let all: Entry = serde_json::from_str(
            r#"{"target":{"kind":"all"},"at_ms":7,"source":"cli","by":"root"}"#,
        )
        .unwrap();
        assert_eq!(all.target, Target::All);
    }
}
