//! `scim:` in the YAML ([`ScimRaw`]) and its checked form ([`Scim`]): the
//! bearer tokens the IdP's provisioning presents (stored as SHA-256 hashes,
//! like passthrough tokens, made with `portcullis hash-token`) and the file
//! that keeps the little SCIM state Portcullis needs. The endpoints live in
//! the top-level `scim` module. SCIM is off without this section.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::FieldError;
use super::validate::Token;

/// `scim:` in the YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimRaw {
    /// One per IdP tenant (or two while rotating).
    #[serde(default)]
    pub tokens: Vec<ScimTokenRaw>,
    /// Default `scim.json` in the state directory.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimTokenRaw {
    /// Who calls with it (`okta`, `entra`): named in the audit log.
    pub name: String,
    /// Hex SHA-256 of the token (`portcullis hash-token`).
    pub sha256: Option<String>,
    /// File holding the hex SHA-256, to keep it out of YAML kept in git.
    pub sha256_file: Option<PathBuf>,
}

/// The checked `scim:` section.
#[derive(Debug, Clone)]
pub struct Scim {
    /// Compared like passthrough tokens (`policy::tokens`); their `groups`
    /// are always empty.
    pub tokens: Vec<Token>,
    pub file: PathBuf,
}

/// Checks the section; `None` when it is absent.
pub fn validate(raw: Option<&ScimRaw>, state_dir: &Path) -> Result<Option<Scim>, Vec<FieldError>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let mut errs = Vec::new();
    let mut err = |field: String, message: String| errs.push(FieldError { field, message });
    if raw.tokens.is_empty() {
        err(
            "scim.tokens".into(),
            "needs at least one token: run `portcullis hash-token --generate`, give the token to the IdP and put the hash here".into(),
        );
    }
    let mut tokens = Vec::new();
    for (i, t) in raw.tokens.iter().enumerate() {
        let field = format!("scim.tokens[{i}]");
        if t.name.trim().is_empty() || t.name.chars().any(|c| c.is_control()) {
            err(
                format!("{field}.name"),
                "must be a non-empty name without control characters".into(),
            );
        }
        let hex_hash = match (&t.sha256, &t.sha256_file) {
            (Some(h), None) => Some((h.trim().to_string(), format!("{field}.sha256"))),
            (None, Some(f)) => match std::fs::read_to_string(f) {
                Ok(h) => Some((h.trim().to_string(), format!("{field}.sha256_file"))),
                Err(e) => {
                    err(
                        format!("{field}.sha256_file"),
                        format!(
                            "cannot read `{}`: {e}; check the path and that the portcullis user may read it",
                            f.display()
                        ),
                    );
                    None
                }
            },
            _ => {
                err(
                    field.clone(),
                    "set exactly one of `sha256` and `sha256_file` (make the hash with `portcullis hash-token`)".into(),
                );
                None
            }
        };
        if let Some((h, hash_field)) = hex_hash {
            let mut sha256 = [0u8; 32];
            if hex::decode_to_slice(&h, &mut sha256).is_err() {
                err(
                    hash_field,
                    "must be 64 hex digits, the SHA-256 of the token: run `portcullis hash-token` and paste its output".into(),
                );
            } else {
                tokens.push(Token {
                    name: t.name.clone(),
                    sha256,
                    groups: Vec::new(),
                });
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Some(Scim {
        tokens,
        file: raw
            .file
            .clone()
            .unwrap_or_else(|| state_dir.join("scim.json")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(yaml: &str) -> ScimRaw {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn tokens_are_hashes_and_the_file_defaults_to_the_state_directory() {
        let hash = hex::encode(crate::policy::tokens::sha256("t0ken"));
        let s = validate(
            Some(&raw(&format!(
                "tokens:\n  - name: okta\n    sha256: {hash}\n"
            ))),
            Path::new("/var/lib/p"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.tokens[0].name, "okta");
        assert_eq!(s.tokens[0].sha256, crate::policy::tokens::sha256("t0ken"));
        assert_eq!(s.file, PathBuf::from("/var/lib/p/scim.json"));
        assert!(validate(None, Path::new("/x")).unwrap().is_none());
    }

    #[test]
    fn every_mistake_names_its_field() {
        let fields = |yaml: &str| -> Vec<String> {
            validate(Some(&raw(yaml)), Path::new("/x"))
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields("tokens: []\n"), ["scim.tokens"]);
        assert_eq!(
            fields("tokens:\n  - name: okta\n    sha256: nothex\n"),
            ["scim.tokens[0].sha256"]
        );
        assert_eq!(fields("tokens:\n  - name: okta\n"), ["scim.tokens[0]"]);
        assert_eq!(
            fields("tokens:\n  - name: ''\n    sha256_file: /nonexistent/portcullis/h\n"),
            ["scim.tokens[0].name", "scim.tokens[0].sha256_file"]
        );
    }
}
