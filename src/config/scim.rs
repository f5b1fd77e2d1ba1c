//! The checked `scim:` section ([`Scim`]) and its checks; the YAML form is
//! `raw::Scim`. The bearer tokens the IdP's provisioning presents are
//! stored as SHA-256 hashes, like passthrough tokens (`portcullis
//! hash-token`). The endpoints live in the top-level `scim` module. SCIM
//! is off without this section.

use std::path::{Path, PathBuf};

use super::FieldError;
use super::checked::Token;
use super::raw;

/// The checked `scim:` section.
#[derive(Debug, Clone)]
pub struct Scim {
    /// Compared like passthrough tokens (`policy::tokens`); their `groups`
    /// are always empty.
    pub tokens: Vec<Token>,
    pub file: PathBuf,
}

/// Checks the section, adding one error per bad field to `errs`; `None`
/// when it is absent or wrong.
pub(super) fn validate(
    raw: Option<&raw::Scim>,
    state_dir: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<Scim> {
    let raw = raw?;
    let before = errs.len();
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
        if t.name.trim().is_empty() || t.name.chars().any(char::is_control) {
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
    if errs.len() > before {
        return None;
    }
    Some(Scim {
        tokens,
        file: raw
            .file
            .clone()
            .unwrap_or_else(|| state_dir.join("scim.json")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(yaml: &str) -> raw::Scim {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn tokens_are_hashes_and_the_file_defaults_to_the_state_directory() {
        let hash = hex::encode(crate::policy::tokens::sha256("t0ken"));
        let mut errs = Vec::new();
        let yaml = format!("tokens:\n  - name: okta\n    sha256: {hash}\n");
        let s = validate(Some(&raw(&yaml)), Path::new("/var/lib/p"), &mut errs).unwrap();
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s.tokens[0].name, "okta");
        assert_eq!(s.tokens[0].sha256, crate::policy::tokens::sha256("t0ken"));
        assert_eq!(s.file, PathBuf::from("/var/lib/p/scim.json"));
        assert!(validate(None, Path::new("/x"), &mut errs).is_none());
    }

    #[test]
    fn every_mistake_names_its_field() {
        let fields = |yaml: &str| -> Vec<String> {
            let mut errs = Vec::new();
            assert!(validate(Some(&raw(yaml)), Path::new("/x"), &mut errs).is_none());
            errs.into_iter().map(|e| e.field).collect()
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
