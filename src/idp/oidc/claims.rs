//! ID token (and userinfo) claims -> the one [`Identity`] type, through the
//! operator's claim mapping. Paths may be dotted for nested claims.

use serde_json::Value;

use crate::config::oidc::Claims;
use crate::identity::Identity;

fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    // An exact key wins, so claims whose names contain dots (URIs) work.
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(claims, |v, key| v.get(key))
}

fn string(claims: &Value, path: &str) -> Option<String> {
    match lookup(claims, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(claims: &Value, path: &str) -> Vec<String> {
    match lookup(claims, path) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        // Some providers send a single group as a string, or a
        // comma-separated list.
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect(),
        _ => vec![],
    }
}

/// Drops `email` when the provider says it is not verified: an address the
/// user typed in must not become their identity or satisfy email rules.
pub fn distrust_unverified_email(claims: &mut Value) {
    let unverified = matches!(claims.get("email_verified"), Some(Value::Bool(false)))
        || matches!(claims.get("email_verified"), Some(Value::String(s)) if s == "false");
    if unverified && let Value::Object(map) = claims {
        map.remove("email");
    }
}

/// `None` when no claim yields a user name (the login must fail).
pub fn identity(claims: &Value, map: &Claims) -> Option<Identity> {
    let subject = string(claims, "sub")?;
    let user = map.user.iter().find_map(|p| string(claims, p))?;
    let extra = map
        .extra
        .iter()
        .filter_map(|(attr, path)| Some((attr.clone(), string(claims, path)?)))
        .collect();
    Some(Identity {
        subject,
        user,
        email: string(claims, &map.email),
        name: string(claims, &map.name),
        preferred_username: string(claims, "preferred_username"),
        groups: strings(claims, &map.groups),
        extra,
        // Chosen at login (`policy::roles`), after every IdP check.
        role: None,
    })
}

/// When the user signed in at the provider (`auth_time`, Unix seconds),
/// when the ID token says.
pub fn auth_time(claims: &Value) -> Option<u64> {
    // A whole number of seconds (OpenID Connect Core §2); anything else
    // is an unknown sign-in time, which no `max_auth_age` accepts.
    claims.get("auth_time")?.as_u64()
}

/// Entra ID's group overage: too many groups for a token, so the ID token
/// names a claim source (`_claim_names.groups`) instead of carrying the
/// configured groups claim. Logging the user in would silently drop every
/// group, so the callback refuses instead.
pub fn groups_overage(claims: &Value, map: &Claims) -> bool {
    lookup(claims, &map.groups).is_none()
        && claims
            .get("_claim_names")
            .and_then(|n| n.get(&map.groups).or_else(|| n.get("groups")))
            .is_some()
}

/// Adds the userinfo claims the ID token does not have.
pub fn merge_missing(id_token: &mut Value, userinfo: Value) {
    if let (Value::Object(base), Value::Object(more)) = (id_token, userinfo) {
        for (k, v) in more {
            base.entry(k).or_insert(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_mapping_and_fallbacks() {
        let m = Claims::default();
        let id = identity(&json!({"sub": "1", "preferred_username": "al", "email": "a@x", "name": "Al", "groups": ["g1", "g2"]}), &m).unwrap();
        assert_eq!(
            (id.user.as_str(), id.email.as_deref(), id.groups.len()),
            ("al", Some("a@x"), 2)
        );
        let id = identity(&json!({"sub": "1", "email": "a@x"}), &m).unwrap();
        assert_eq!(id.user, "a@x");
        let id = identity(&json!({"sub": "1"}), &m).unwrap();
        assert_eq!(id.user, "1");
        assert!(
            identity(&json!({"email": "a@x"}), &m).is_none(),
            "no sub, no identity"
        );
    }

    #[test]
    fn nested_and_uri_claims() {
        let mut m = Claims {
            groups: "realm_access.roles".into(),
            ..Claims::default()
        };
        m.extra
            .insert("tenant".into(), "https://example.com/claims/tenant".into());
        let id = identity(
            &json!({"sub": "1", "realm_access": {"roles": ["admin"]}, "https://example.com/claims/tenant": "t1"}),
            &m,
        )
        .unwrap();
        assert_eq!(id.groups, vec!["admin"]);
        assert_eq!(id.extra["tenant"], "t1");
    }

    #[test]
    fn auth_time_is_read_as_seconds_or_left_unknown() {
        assert_eq!(
            auth_time(&json!({"auth_time": 1_700_000_000})),
            Some(1_700_000_000)
        );
        assert_eq!(auth_time(&json!({"auth_time": 1_700_000_000.9})), None);
        assert_eq!(auth_time(&json!({"auth_time": -5})), None);
        assert_eq!(auth_time(&json!({"auth_time": "1700000000"})), None);
        assert_eq!(auth_time(&json!({})), None);
    }

    #[test]
    fn entra_group_overage_is_seen_and_groups_present_are_not_overage() {
        let m = Claims::default();
        let overage = json!({"sub": "1", "_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/1/getMemberObjects"}}});
        assert!(groups_overage(&overage, &m));
        assert!(!groups_overage(&json!({"sub": "1", "groups": ["g"]}), &m));
        assert!(
            !groups_overage(&json!({"sub": "1"}), &m),
            "no groups at all is not overage"
        );
    }

    #[test]
    fn unverified_email_is_not_trusted() {
        let m = Claims::default();
        let mut c = json!({"sub": "s1", "email": "ceo@corp.example", "email_verified": false});
        distrust_unverified_email(&mut c);
        let id = identity(&c, &m).unwrap();
        assert_eq!(id.email, None);
        assert_eq!(id.user, "s1", "not the unverified address either");
        let mut c = json!({"sub": "s1", "email": "a@x", "email_verified": true});
        distrust_unverified_email(&mut c);
        assert_eq!(identity(&c, &m).unwrap().email.as_deref(), Some("a@x"));
    }

    #[test]
    fn userinfo_fills_only_missing_claims() {
        let mut base = json!({"sub": "1", "email": "token@x"});
        merge_missing(
            &mut base,
            json!({"sub": "evil", "email": "userinfo@x", "groups": ["g"]}),
        );
        assert_eq!(base["sub"], "1");
        assert_eq!(base["email"], "token@x");
        assert_eq!(base["groups"], json!(["g"]));
    }
}
