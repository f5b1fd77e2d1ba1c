//! SCIM resources on the wire (RFC 7643): the stored users and groups
//! rendered as `User` and `Group` resources with `meta`, and the
//! attributes Portcullis keeps read out of what the IdP sends. Attribute
//! names are compared without regard to case (RFC 7643 §2.1); everything
//! Portcullis does not keep (names, emails, the enterprise extension) is
//! accepted and dropped.

use serde_json::{Map, Value, json};

use super::directory::{Group, User};
use super::error::ScimError;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The longest user name, display name or id Portcullis keeps.
const MAX_VALUE_LEN: usize = 1024;

fn time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn meta(kind: &str, base: &str, id: &str, created_ms: u64, modified_ms: u64) -> Value {
    json!({
        "resourceType": kind,
        "created": time(created_ms),
        "lastModified": time(modified_ms),
        "location": format!("{base}/{kind}s/{id}"),
    })
}

/// `base`: the absolute URL of `/.portcullis/scim/v2`.
pub fn user_json(u: &User, base: &str) -> Value {
    let mut v = json!({
        "schemas": [USER_SCHEMA],
        "id": u.id,
        "userName": u.user_name,
        "meta": meta("User", base, &u.id, u.created_ms, u.modified_ms),
    });
    if let Some(e) = &u.external_id {
        v["externalId"] = json!(e);
    }
    if let Some(d) = &u.display_name {
        v["displayName"] = json!(d);
    }
    if let Some(a) = u.active {
        v["active"] = json!(a);
    }
    v
}

pub fn group_json(g: &Group, base: &str, with_members: bool) -> Value {
    let mut v = json!({
        "schemas": [GROUP_SCHEMA],
        "id": g.id,
        "displayName": g.display_name,
        "meta": meta("Group", base, &g.id, g.created_ms, g.modified_ms),
    });
    if let Some(e) = &g.external_id {
        v["externalId"] = json!(e);
    }
    if with_members {
        let members: Vec<Value> = g
            .members
            .iter()
            .map(|id| {
                json!({
                    "value": id,
                    "$ref": format!("{base}/Users/{id}"),
                    "type": "User",
                })
            })
            .collect();
        v["members"] = Value::Array(members);
    }
    v
}

/// The member of `obj` named `name` in any letter case.
pub fn get_ci<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A resource body: a JSON object whose `schemas` names `schema`.
pub fn resource_object<'v>(
    body: &'v Value,
    schema: &str,
) -> Result<&'v Map<String, Value>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::InvalidSyntax("the request body must be a JSON object".into()))?;
    let named = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| s.as_str() == Some(schema)));
    if !named {
        return Err(ScimError::InvalidSyntax(format!(
            "`schemas` must list `{schema}`"
        )));
    }
    Ok(obj)
}

/// A string Portcullis keeps: not empty, short, no control characters
/// (a user name becomes a revocation's target and a header's value).
pub fn text(v: &Value, attr: &str) -> Result<String, ScimError> {
    match v.as_str() {
        Some(s)
            if !s.trim().is_empty()
                && s.len() <= MAX_VALUE_LEN
                && !s.chars().any(char::is_control) =>
        {
            Ok(s.to_string())
        }
        _ => Err(ScimError::InvalidValue(format!(
            "`{attr}` must be a non-empty string of at most {MAX_VALUE_LEN} bytes without control characters"
        ))),
    }
}

/// An optional string: `null` clears it.
pub fn optional_text(v: &Value, attr: &str) -> Result<Option<String>, ScimError> {
    if v.is_null() {
        return Ok(None);
    }
    text(v, attr).map(Some)
}

/// A boolean; Entra ID sends `"True"`/`"False"` strings in PATCH values.
pub fn boolean(v: &Value, attr: &str) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::InvalidValue(format!(
            "`{attr}` must be true or false"
        ))),
    }
}

/// The user ids of a `members` value: an array of `{"value": ID}` (a
/// single object is taken as an array of one).
pub fn member_ids(v: &Value) -> Result<Vec<String>, ScimError> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        Value::Null => Vec::new(),
        _ => {
            return Err(ScimError::InvalidValue(
                "`members` must be an array of objects with a `value` (the user's id)".into(),
            ));
        }
    };
    items
        .into_iter()
        .map(|m| {
            m.as_object()
                .and_then(|o| get_ci(o, "value"))
                .ok_or_else(|| {
                    ScimError::InvalidValue(
                        "each member must be an object with a `value` (the user's id)".into(),
                    )
                })
                .and_then(|id| text(id, "members.value"))
        })
        .collect()
}

/// What a POST or PUT of a User sets.
#[derive(Debug, PartialEq)]
pub struct UserInput {
    pub user_name: String,
    pub external_id: Option<String>,
    /// `None`: not given, which counts as active.
    pub active: Option<bool>,
    pub display_name: Option<String>,
}

impl UserInput {
    pub fn read(body: &Value) -> Result<UserInput, ScimError> {
        let obj = resource_object(body, USER_SCHEMA)?;
        let user_name = match get_ci(obj, "userName") {
            Some(v) => text(v, "userName")?,
            None => {
                return Err(ScimError::InvalidValue(
                    "`userName` is required: the name users sign in with".into(),
                ));
            }
        };
        Ok(UserInput {
            user_name,
            external_id: get_ci(obj, "externalId")
                .map(|v| optional_text(v, "externalId"))
                .transpose()?
                .flatten(),
            active: get_ci(obj, "active")
                .filter(|v| !v.is_null())
                .map(|v| boolean(v, "active"))
                .transpose()?,
            display_name: get_ci(obj, "displayName")
                .map(|v| optional_text(v, "displayName"))
                .transpose()?
                .flatten(),
        })
    }
}

/// What a POST or PUT of a Group sets.
#[derive(Debug, PartialEq)]
pub struct GroupInput {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<String>,
}

impl GroupInput {
    pub fn read(body: &Value) -> Result<GroupInput, ScimError> {
        let obj = resource_object(body, GROUP_SCHEMA)?;
        let display_name = match get_ci(obj, "displayName") {
            Some(v) => text(v, "displayName")?,
            None => {
                return Err(ScimError::InvalidValue(
                    "`displayName` is required: the group's name".into(),
                ));
            }
        };
        let mut members = get_ci(obj, "members")
            .map(member_ids)
            .transpose()?
            .unwrap_or_default();
        dedup(&mut members);
        Ok(GroupInput {
            display_name,
            external_id: get_ci(obj, "externalId")
                .map(|v| optional_text(v, "externalId"))
                .transpose()?
                .flatten(),
            members,
        })
    }
}

/// Keeps the first of each id.
pub fn dedup(ids: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_read_without_regard_to_case_and_extra_attributes_are_dropped() {
        let u = UserInput::read(&json!({
            "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "USERNAME": "alice@example.com",
            "externalId": "00u1",
            "Active": "False",
            "name": {"givenName": "Alice"},
            "emails": [{"value": "alice@example.com", "primary": true}],
        }))
        .unwrap();
        assert_eq!(
            u,
            UserInput {
                user_name: "alice@example.com".into(),
                external_id: Some("00u1".into()),
                active: Some(false),
                display_name: None,
            }
        );
    }

    #[test]
    fn bad_users_name_what_is_wrong() {
        let e = |v: Value| {
            let e = UserInput::read(&v).unwrap_err();
            (e.scim_type().unwrap(), e.to_string())
        };
        assert_eq!(e(json!([1])).0, "invalidSyntax");
        assert_eq!(e(json!({"userName": "a"})).0, "invalidSyntax");
        assert_eq!(e(json!({"schemas": [USER_SCHEMA]})).0, "invalidValue");
        assert_eq!(
            e(json!({"schemas": [USER_SCHEMA], "userName": "a\nb"})).0,
            "invalidValue"
        );
        assert_eq!(
            e(json!({"schemas": [USER_SCHEMA], "userName": "a", "active": "maybe"})),
            ("invalidValue", "`active` must be true or false".to_string())
        );
    }

    #[test]
    fn group_members_are_ids_each_once() {
        let g = GroupInput::read(&json!({
            "schemas": [GROUP_SCHEMA],
            "displayName": "admins",
            "members": [{"value": "u1", "display": "a"}, {"value": "u2"}, {"value": "u1"}],
        }))
        .unwrap();
        assert_eq!(g.members, ["u1", "u2"]);
        assert!(member_ids(&json!([{"display": "x"}])).is_err());
    }
}
