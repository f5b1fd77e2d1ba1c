//! Configuration: one YAML file per protected domain, every key overridable
//! by a `PORTCULLIS_*` environment variable (`__` separates nesting levels:
//! `PORTCULLIS_UPSTREAM__URL`). `load` reads, validates and returns the typed
//! [`Config`] the rest of Portcullis uses; every error names its field.
//!
//! One naming scheme: the serde types, exactly as read, live in `raw` and are
//! named after their YAML section (`raw::Upstream` is `upstream:`); the
//! checked types carry the same name here (`config::Upstream`). `checked`
//! holds the checked types of the sections without a file of their own,
//! `validate` the checks; a section with its own file (`oidc`, `saml`,
//! `metrics`, `assertion`, `revocation`, `scim`, `roles`) has its checked type and
//! checks in that file
//! and its raw type in the same name under `raw/`.

mod access_rules;
pub mod assertion;
mod checked;
mod group_filter;
mod metrics;
pub mod oidc;
mod path_rule;
mod raw;
mod revocation;
pub mod roles;
pub mod saml;
pub mod scim;
mod trusted_proxies;
mod validate;

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format};
use serde_saphyr::figment::Yaml;

pub use assertion::{Assertion, AssertionAlg};
pub use checked::{
    Access, AccessRule, BasicAuth, Config, Connections, HeaderPattern, Headers, Hosts, Passthrough,
    PathRule, PathRuleKind, Session, Token, Upstream,
};
pub use group_filter::GroupFilter;
pub use metrics::Metrics;
/// Sections and values used as written: their types are all the checking
/// they need, so the checked form is the raw one.
pub use raw::{HeaderFamily, Log, LogFormat, Login, Pages, Scheme};
pub use revocation::{RedisStore, Revocation};
pub use roles::{Role, Roles};

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "PORTCULLIS_";

/// One problem in the configuration: which field, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read the configuration file {path}: {source}; check the path given to --config"
    )]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("the configuration is not valid:\n{}", list(.0))]
    Invalid(Vec<FieldError>),
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The field errors, for tests and `check-config`.
    pub fn fields(&self) -> Vec<FieldError> {
        match self {
            ConfigError::Invalid(v) => v.clone(),
            ConfigError::Unreadable { .. } => vec![],
        }
    }
}

/// Reads `path` (if any) and the process environment, and validates.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = path {
        // figment reports a missing file as an empty one; a gate must not
        // start with defaults because of a typo in the path.
        std::fs::metadata(path).map_err(|source| ConfigError::Unreadable {
            path: path.display().to_string(),
            source,
        })?;
        figment = figment.merge(Yaml::file_exact(path));
    }
    figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
    from_figment(&figment)
}

/// Validates a configuration given as YAML text (no environment).
pub fn from_yaml_str(yaml: &str) -> Result<Config, ConfigError> {
    from_figment(&Figment::from(Yaml::string(yaml)))
}

fn from_figment(figment: &Figment) -> Result<Config, ConfigError> {
    let raw: raw::Config = figment.extract().map_err(|e| {
        ConfigError::Invalid(e.into_iter().map(|e| figment_error(&e)).collect::<Vec<_>>())
    })?;
    validate::validate(raw).map_err(ConfigError::Invalid)
}

/// figment sometimes has the offending key in the path already.
fn with_leaf(path: &[String], leaf: &str) -> String {
    let mut parts = path.to_vec();
    if parts.last().map(String::as_str) != Some(leaf) {
        parts.push(leaf.to_string());
    }
    parts.join(".")
}

fn figment_error(e: &figment::Error) -> FieldError {
    use figment::error::Kind;
    let mut field = e.path.join(".");
    let message = match &e.kind {
        Kind::UnknownField(name, expected) => {
            field = with_leaf(&e.path, name);
            format!(
                "unknown key; valid keys here are: {}. Check the spelling (unknown keys are refused so a typo cannot weaken security)",
                expected.join(", ")
            )
        }
        Kind::MissingField(name) => {
            field = with_leaf(&e.path, name);
            "is required; add it".to_string()
        }
        Kind::InvalidType(actual, expected) => {
            format!("has the wrong type: found {actual}, expected {expected}")
        }
        Kind::InvalidValue(actual, expected) => {
            format!("has an invalid value: found {actual}, expected {expected}")
        }
        Kind::UnknownVariant(found, expected) => {
            format!(
                "`{found}` is not allowed; use one of: {}",
                expected.join(", ")
            )
        }
        other => format!("{other}"),
    };
    let source = e
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .map(|s| format!(" (from {s})"))
        .unwrap_or_default();
    FieldError {
        field: if field.is_empty() {
            "(top level)".into()
        } else {
            field
        },
        message: format!("{message}{source}"),
    }
}
