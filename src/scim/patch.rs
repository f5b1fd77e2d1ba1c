//! PATCH (RFC 7644 §3.5.2) on the attributes Portcullis keeps. The message
//! is parsed by the `scim_v2` crate (which takes the `Add`/`Replace`/
//! `Remove` spellings Entra ID sends); applying it is here, with the forms
//! Okta and Entra ID send: a path (`active`, `members`,
//! `members[value eq "ID"]`, a schema-qualified name), or no path and a
//! value object (`{"active": false}`), booleans as `"False"` strings.
//! Attributes Portcullis does not keep are accepted and dropped.

use scim_v2::filter::{AttrPath, PatchPath};
use scim_v2::models::others::{OperationTarget, PatchOp, PatchOperation};
use serde_json::{Map, Value};

use super::directory::{Group, User};
use super::error::ScimError;
use super::resource::{
    GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA, boolean, dedup, member_ids, optional_text, text,
};

/// The PatchOp message of a request body.
pub fn read(body: &Value) -> Result<PatchOp, ScimError> {
    let named = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| s.as_str() == Some(PATCH_SCHEMA)));
    if !named {
        return Err(ScimError::InvalidSyntax(format!(
            "a PATCH body is a PatchOp message: `schemas` must list `{PATCH_SCHEMA}`"
        )));
    }
    serde_json::from_value(body.clone()).map_err(|e| {
        ScimError::InvalidSyntax(format!(
            "the PatchOp message is not valid (RFC 7644 §3.5.2): {e}"
        ))
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// The one operation as (kind, path, value).
type Parts<'a> = (
    Op,
    Option<&'a PatchPath>,
    Option<&'a Value>,
    Option<&'a Map<String, Value>>,
);

fn parts(op: &PatchOperation) -> Parts<'_> {
    fn target(kind: Op, t: &OperationTarget) -> Parts<'_> {
        match t {
            OperationTarget::WithPath { path, value } => (kind, Some(path), value.as_ref(), None),
            OperationTarget::WithoutPath { value } => (kind, None, None, Some(value)),
        }
    }
    match op {
        PatchOperation::Add(t) => target(Op::Add, t),
        PatchOperation::Replace(t) => target(Op::Replace, t),
        PatchOperation::Remove { path, value } => (Op::Remove, Some(path), value.as_ref(), None),
    }
}

/// The lower-cased core attribute a path names, or `None` for anything
/// Portcullis does not keep (a sub-attribute, another schema).
fn core_attr(attr: &AttrPath, schema: &str) -> Option<String> {
    let own = attr
        .uri
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(schema));
    (own && attr.sub_attr.is_none()).then(|| attr.name.to_ascii_lowercase())
}

/// The same for a key of a path-less value object (`active`,
/// `urn:…:core:2.0:User:active`, `name.givenName`, an extension URN).
fn core_key(key: &str, schema: &str) -> Option<String> {
    let name = match key.rsplit_once(':') {
        Some((urn, name)) if urn.eq_ignore_ascii_case(schema) => name,
        Some(_) => return None,
        None => key,
    };
    (!name.contains('.')).then(|| name.to_ascii_lowercase())
}

fn needs_value<'v>(v: Option<&'v Value>, attr: &str) -> Result<&'v Value, ScimError> {
    v.ok_or_else(|| {
        ScimError::InvalidValue(format!("an add or replace of `{attr}` needs a `value`"))
    })
}

fn set_user(u: &mut User, attr: &str, op: Op, value: Option<&Value>) -> Result<(), ScimError> {
    match (attr, op) {
        ("username", Op::Remove) => {
            return Err(ScimError::InvalidValue(
                "`userName` is required and cannot be removed".into(),
            ));
        }
        ("username", _) => u.user_name = text(needs_value(value, "userName")?, "userName")?,
        ("externalid", Op::Remove) => u.external_id = None,
        ("externalid", _) => {
            u.external_id = optional_text(needs_value(value, "externalId")?, "externalId")?;
        }
        ("displayname", Op::Remove) => u.display_name = None,
        ("displayname", _) => {
            u.display_name = optional_text(needs_value(value, "displayName")?, "displayName")?;
        }
        // Unset counts as active: removing `active` never revokes.
        ("active", Op::Remove) => u.active = None,
        ("active", _) => u.active = Some(boolean(needs_value(value, "active")?, "active")?),
        // `id`, `meta`, `schemas` and everything Portcullis does not keep.
        _ => {}
    }
    Ok(())
}

pub fn apply_user(u: &mut User, patch: &PatchOp) -> Result<(), ScimError> {
    for op in &patch.operations {
        match parts(op) {
            (kind, Some(PatchPath::Attr(attr)), value, _) => {
                if let Some(name) = core_attr(attr, USER_SCHEMA) {
                    set_user(u, &name, kind, value)?;
                }
            }
            (kind, None, _, Some(map)) => {
                for (k, v) in map {
                    if let Some(name) = core_key(k, USER_SCHEMA) {
                        set_user(u, &name, kind, Some(v))?;
                    }
                }
            }
            // `emails[type eq "work"].value` and the like: not kept.
            (_, Some(PatchPath::Value(_)), _, _) | (_, None, _, None) => {}
        }
    }
    Ok(())
}

fn set_group(g: &mut Group, attr: &str, op: Op, value: Option<&Value>) -> Result<(), ScimError> {
    match (attr, op) {
        ("members", Op::Add) => {
            g.members
                .extend(member_ids(needs_value(value, "members")?)?);
            dedup(&mut g.members);
        }
        ("members", Op::Replace) => {
            g.members = member_ids(needs_value(value, "members")?)?;
            dedup(&mut g.members);
        }
        // Entra ID: `remove` of `members` with the ones to remove as value;
        // without a value, every member (RFC 7644 §3.5.2.2).
        ("members", Op::Remove) => match value {
            Some(v) => {
                let gone = member_ids(v)?;
                g.members.retain(|m| !gone.contains(m));
            }
            None => g.members.clear(),
        },
        ("displayname", Op::Remove) => {
            return Err(ScimError::InvalidValue(
                "`displayName` is required and cannot be removed".into(),
            ));
        }
        ("displayname", _) => {
            g.display_name = text(needs_value(value, "displayName")?, "displayName")?;
        }
        ("externalid", Op::Remove) => g.external_id = None,
        ("externalid", _) => {
            g.external_id = optional_text(needs_value(value, "externalId")?, "externalId")?;
        }
        _ => {}
    }
    Ok(())
}

pub fn apply_group(g: &mut Group, patch: &PatchOp) -> Result<(), ScimError> {
    for op in &patch.operations {
        match parts(op) {
            (kind, Some(PatchPath::Attr(attr)), value, _) => {
                if let Some(name) = core_attr(attr, GROUP_SCHEMA) {
                    set_group(g, &name, kind, value)?;
                }
            }
            // Okta: `remove` with `members[value eq "ID"]`.
            (kind, Some(PatchPath::Value(vp)), value, _) => {
                let members = core_attr(&vp.attr, GROUP_SCHEMA).is_some_and(|n| n == "members");
                if !members || vp.sub_attr.is_some() {
                    return Err(ScimError::InvalidPath(format!(
                        "Portcullis can change only whole members of a group, not `{}`",
                        PatchPath::Value(vp.clone())
                    )));
                }
                let selected = super::query::members_selected(g, &vp.filter)?;
                g.members.retain(|m| !selected.contains(m));
                if kind != Op::Remove {
                    set_group(g, "members", Op::Add, value)?;
                }
            }
            (kind, None, _, Some(map)) => {
                for (k, v) in map {
                    if let Some(name) = core_key(k, GROUP_SCHEMA) {
                        set_group(g, &name, kind, Some(v))?;
                    }
                }
            }
            (_, None, _, None) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> User {
        User {
            id: "u1".into(),
            user_name: "alice@example.com".into(),
            external_id: None,
            active: Some(true),
            display_name: Some("Alice".into()),
            created_ms: 0,
            modified_ms: 0,
        }
    }

    fn group(members: &[&str]) -> Group {
        Group {
            id: "g1".into(),
            display_name: "admins".into(),
            external_id: None,
            members: members.iter().map(ToString::to_string).collect(),
            created_ms: 0,
            modified_ms: 0,
        }
    }

    fn patch(ops: &Value) -> PatchOp {
        read(&json!({"schemas": [PATCH_SCHEMA], "Operations": ops})).unwrap()
    }

    #[test]
    fn okta_and_entra_deactivations() {
        for ops in [
            json!([{"op": "replace", "value": {"active": false}}]),
            json!([{"op": "replace", "path": "active", "value": false}]),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
            json!([{"op": "Replace", "value": {"urn:ietf:params:scim:schemas:core:2.0:User:active": "False", "name.givenName": "A"}}]),
        ] {
            let mut u = user();
            apply_user(&mut u, &patch(&ops)).unwrap();
            assert_eq!(u.active, Some(false), "{ops}");
            assert_eq!(u.user_name, "alice@example.com", "{ops}");
        }
        let mut u = user();
        apply_user(
            &mut u,
            &patch(&json!([
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "x@y"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
                {"op": "Remove", "path": "displayName"},
                {"op": "Replace", "path": "userName", "value": "alice@corp.example"},
            ])),
        )
        .unwrap();
        assert_eq!(u.display_name, None);
        assert_eq!(u.user_name, "alice@corp.example");
        assert_eq!(u.active, Some(true));
    }

    #[test]
    fn group_membership_as_okta_and_entra_change_it() {
        let mut g = group(&["u1", "u2", "u3"]);
        apply_group(
            &mut g,
            &patch(&json!([{"op": "remove", "path": "members[value eq \"u2\"]"}])),
        )
        .unwrap();
        assert_eq!(g.members, ["u1", "u3"]);
        apply_group(
            &mut g,
            &patch(&json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}])),
        )
        .unwrap();
        assert_eq!(g.members, ["u3"]);
        apply_group(&mut g, &patch(&json!([{"op": "Add", "path": "members", "value": [{"value": "u4"}, {"value": "u3"}]}]))).unwrap();
        assert_eq!(g.members, ["u3", "u4"]);
        apply_group(
            &mut g,
            &patch(&json!([{"op": "replace", "value": {"id": "g1", "displayName": "ops"}}])),
        )
        .unwrap();
        assert_eq!((g.display_name.as_str(), g.members.len()), ("ops", 2));
        apply_group(
            &mut g,
            &patch(&json!([{"op": "replace", "path": "members", "value": [{"value": "u9"}]}])),
        )
        .unwrap();
        assert_eq!(g.members, ["u9"]);
        apply_group(
            &mut g,
            &patch(&json!([{"op": "remove", "path": "members"}])),
        )
        .unwrap();
        assert!(g.members.is_empty());
    }

    #[test]
    fn malformed_patches_are_refused_with_their_scim_type() {
        let t = |v: Value| read(&v).map(|_| ()).unwrap_err().scim_type();
        assert_eq!(t(json!({"Operations": []})), Some("invalidSyntax"));
        assert_eq!(
            t(json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "frobnicate"}]})),
            Some("invalidSyntax")
        );
        let mut u = user();
        let e = apply_user(
            &mut u,
            &patch(&json!([{"op": "remove", "path": "userName"}])),
        )
        .unwrap_err();
        assert_eq!(e.scim_type(), Some("invalidValue"));
        let e = apply_user(
            &mut u,
            &patch(&json!([{"op": "replace", "path": "active", "value": 3}])),
        )
        .unwrap_err();
        assert_eq!(e.scim_type(), Some("invalidValue"));
    }
}
