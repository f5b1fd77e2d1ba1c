//! One path pattern as `passthrough.paths` and `access.rules[].paths` write
//! it: exactly one of `exact`, `prefix` (starting and ending with `/`) or
//! `glob` (`*` within a segment, `**` across segments). One reader for both,
//! so the two lists cannot grow different dialects.

use globset::GlobBuilder;

use super::FieldError;
use super::checked::PathRuleKind;
use super::raw;

/// The pattern of `rule`, or `None` after adding what is wrong to `errs`.
pub(super) fn kind(
    rule: &raw::PathRule,
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Option<PathRuleKind> {
    let mut add = |f: String, m: String| {
        errs.push(FieldError {
            field: f,
            message: m,
        });
    };
    // Passthrough paths and access rules match the canonical path: a
    // literal in another form would silently never match.
    let literal = rule.exact.as_deref().or(rule.prefix.as_deref());
    if let Some(l) = literal
        && l.starts_with('/')
        && !crate::path::is_canonical(l)
    {
        let hint = crate::path::normalise(l)
            .map_or_else(|| "a plain path".to_string(), |n| format!("`{n}`"));
        add(
            field.to_string(),
            format!(
                "`{l}` is not in canonical form, and paths are matched in canonical form, so it never matches: write {hint}"
            ),
        );
    }
    match (&rule.exact, &rule.prefix, &rule.glob) {
        (Some(e), None, None) => {
            if !e.starts_with('/') {
                add(format!("{field}.exact"), "must start with `/`".into());
            }
            Some(PathRuleKind::Exact(e.clone()))
        }
        (None, Some(pre), None) => {
            if !pre.starts_with('/') || !pre.ends_with('/') {
                add(
                    format!("{field}.prefix"),
                    format!(
                        "`{pre}` must start and end with `/` (so `/static/` cannot also match `/static-admin`); use `exact` for one path"
                    ),
                );
            }
            Some(PathRuleKind::Prefix(pre.clone()))
        }
        (None, None, Some(g)) => {
            if !g.starts_with('/') {
                add(format!("{field}.glob"), "must start with `/`".into());
            }
            match GlobBuilder::new(g).literal_separator(true).build() {
                Ok(glob) => Some(PathRuleKind::Glob(glob.compile_matcher())),
                Err(e) => {
                    add(format!("{field}.glob"), format!("is not a valid glob: {e}"));
                    None
                }
            }
        }
        _ => {
            add(
                field.to_string(),
                "set exactly one of `exact`, `prefix` or `glob`".into(),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::from_yaml_str;

    /// A passthrough literal not in canonical form never matches (paths are
    /// matched canonical), so it is refused with the form to write, as for
    /// access rules.
    #[test]
    fn passthrough_literals_must_be_canonical() {
        for (path, want) in [
            ("{prefix: /static/../admin/}", "write `/admin/`"),
            ("{exact: /%68ealth}", "write `/health`"),
            ("{prefix: //assets/}", "write `/assets/`"),
            ("{exact: /a/./b}", "write `/a/b`"),
        ] {
            let e = from_yaml_str(&format!(
                "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\npassthrough:\n  paths:\n    - {path}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("passthrough.paths[0]")
                    && e.contains("not in canonical form")
                    && e.contains(want),
                "{path}: {e}"
            );
        }
        assert!(
            from_yaml_str(
                "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\npassthrough:\n  paths:\n    - {prefix: /static/}\n    - {exact: /health}\n"
            )
            .is_ok()
        );
    }
}
