//! The one identity type both IdP flavours (and passthrough tokens) produce.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who logged in, as the upstream app will see it in headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Identity {
    /// Stable identifier at the IdP (OIDC `sub`, SAML NameID).
    pub subject: String,
    /// The user name sent in the user header.
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Further attributes an operator may map to headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    /// The app's role for this user (`roles:`), chosen at login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Identity {
    /// Whether every value can travel in an HTTP header (no control
    /// characters: no header injection, nothing silently left out).
    pub fn is_header_safe(&self) -> bool {
        let ok = |s: &str| !s.chars().any(char::is_control);
        ok(&self.subject)
            && ok(&self.user)
            && self.email.as_deref().is_none_or(ok)
            && self.name.as_deref().is_none_or(ok)
            && self.preferred_username.as_deref().is_none_or(ok)
            && self.groups.iter().all(|g| ok(g))
            && self.role.as_deref().is_none_or(ok)
            && self.extra.values().all(|v| ok(v))
    }
}

/// Which kind of login produced a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdpKind {
    Oidc,
    Saml,
}
