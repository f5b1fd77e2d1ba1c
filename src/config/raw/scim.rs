//! `scim:` as read: the bearer tokens of the IdP's provisioning and the
//! file of SCIM state. Checked in `config::scim`.

use std::path::PathBuf;

use serde::Deserialize;

/// `scim:` in the YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scim {
    /// One per IdP tenant (or two while rotating).
    #[serde(default)]
    pub tokens: Vec<ScimToken>,
    /// Default `scim.json` in the state directory.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimToken {
    /// Who calls with it (`okta`, `entra`): named in the audit log.
    pub name: String,
    /// Hex SHA-256 of the token (`portcullis hash-token`).
    pub sha256: Option<String>,
    /// File holding the hex SHA-256, to keep it out of YAML kept in git.
    pub sha256_file: Option<PathBuf>,
}
