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
