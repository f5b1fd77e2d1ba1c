//! What a SCIM change means for sessions: a user deactivated or deleted
//! loses every session (`Target::User(userName)`), and so does a member
//! who leaves a group that an access rule names, or joins or leaves a
//! group that a role names (their role may change; roles are chosen at
//! login): they sign in again and bring their fresh groups. Only entries
//! are made here; they
//! go through `Revocations::add_many`, the one way into the list, which
//! audits each with source `scim`.

use std::collections::BTreeSet;

use crate::revocation::entry::Source;
use crate::revocation::{Entry, Target};

use super::directory::{Directory, Group, User};

/// The entries for a user's change from `before` to `after` (`None`: did
/// not exist / deleted). A user already inactive is not revoked again.
pub fn user_change(before: Option<&User>, after: Option<&User>, by: &str) -> Vec<Entry> {
    let was_active = before.is_none_or(User::is_active);
    let names: BTreeSet<&str> = match after {
        None => before.map(|u| u.user_name.as_str()).into_iter().collect(),
        Some(a) if !a.is_active() && was_active => [Some(a), before]
            .into_iter()
            .flatten()
            .map(|u| u.user_name.as_str())
            .collect(),
        Some(_) => BTreeSet::new(),
    };
    names.into_iter().map(|n| entry(n, by)).collect()
}

/// The groups whose membership matters to a session.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// Named by an access rule (`allowed_groups`, default and per path).
    pub access: Vec<String>,
    /// Named by a role (`roles[].groups`).
    pub roles: Vec<String>,
}

/// Whether `names` names `g`: its `displayName` or its `externalId` (Entra
/// ID's object id, which is what its group claim carries by default).
fn named(g: &Group, names: &[String]) -> bool {
    names
        .iter()
        .any(|a| *a == g.display_name || g.external_id.as_deref() == Some(a.as_str()))
}

/// The entries for a group's change: every member who was in it while it
/// granted access and no longer is (removed, group renamed or deleted),
/// and every member who joined or left it while a role names it.
/// `dir` is the directory after the change, to find the members' names.
pub fn group_change(
    before: Option<&Group>,
    after: Option<&Group>,
    watched: &Watched,
    dir: &Directory,
    by: &str,
) -> Vec<Entry> {
    let members = |g: Option<&Group>, names: &[String]| -> BTreeSet<String> {
        g.filter(|g| named(g, names))
            .map(|g| g.members.iter().cloned().collect())
            .unwrap_or_default()
    };
    let mut ids: BTreeSet<String> = members(before, &watched.access)
        .difference(&members(after, &watched.access))
        .cloned()
        .collect();
    ids.extend(
        members(before, &watched.roles)
            .symmetric_difference(&members(after, &watched.roles))
            .cloned(),
    );
    let mut names = BTreeSet::new();
    for id in &ids {
        if let Some(u) = dir.user(id) {
            names.insert(u.user_name.clone());
        } else {
            tracing::warn!(
                member = id.as_str(),
                "a member's access or role changed with a group, but no user with this SCIM id was provisioned: no session of theirs can be found to end"
            );
        }
    }
    names.iter().map(|n| entry(n, by)).collect()
}

fn entry(user_name: &str, by: &str) -> Entry {
    Entry {
        target: Target::User(user_name.to_string()),
        at_ms: crate::clock::now_ms(),
        source: Source::Scim,
        by: by.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, name: &str, active: bool) -> User {
        User {
            id: id.into(),
            user_name: name.into(),
            external_id: None,
            active: Some(active),
            display_name: None,
            created_ms: 0,
            modified_ms: 0,
        }
    }

    fn targets(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| e.target.value().to_string())
            .collect()
    }

    #[test]
    fn deactivation_and_deletion_revoke_the_user_once() {
        let on = user("1", "alice", true);
        let off = user("1", "alice", false);
        assert_eq!(
            targets(&user_change(Some(&on), Some(&off), "scim:okta")),
            ["alice"]
        );
        assert!(
            user_change(Some(&off), Some(&off), "x").is_empty(),
            "already inactive"
        );
        assert!(
            user_change(Some(&off), Some(&on), "x").is_empty(),
            "reactivated"
        );
        assert_eq!(
            targets(&user_change(None, Some(&off), "x")),
            ["alice"],
            "created inactive"
        );
        assert!(user_change(None, Some(&on), "x").is_empty());
        assert_eq!(
            targets(&user_change(Some(&off), None, "x")),
            ["alice"],
            "deleted"
        );
        let renamed = user("1", "alice2", false);
        assert_eq!(
            targets(&user_change(Some(&on), Some(&renamed), "x")),
            ["alice", "alice2"]
        );
        let e = &user_change(Some(&on), None, "scim:okta")[0];
        assert_eq!((e.source, e.by.as_str()), (Source::Scim, "scim:okta"));
    }

    #[test]
    fn leaving_a_group_that_grants_access_revokes_only_the_leavers() {
        let dir = Directory {
            users: vec![user("u1", "alice", true), user("u2", "bob", true)],
            groups: vec![],
        };
        let g = |name: &str, ext: Option<&str>, members: &[&str]| Group {
            id: "g".into(),
            display_name: name.into(),
            external_id: ext.map(Into::into),
            members: members.iter().map(ToString::to_string).collect(),
            created_ms: 0,
            modified_ms: 0,
        };
        let allowed = Watched {
            access: vec!["admins".to_string(), "0f1e-entra-object-id".to_string()],
            roles: vec![],
        };
        let before = g("admins", None, &["u1", "u2", "u9"]);
        let after = g("admins", None, &["u1"]);
        assert_eq!(
            targets(&group_change(
                Some(&before),
                Some(&after),
                &allowed,
                &dir,
                "x"
            )),
            ["bob"]
        );
        assert_eq!(
            targets(&group_change(Some(&before), None, &allowed, &dir, "x")),
            ["alice", "bob"]
        );
        let renamed = g("former-admins", None, &["u1", "u2"]);
        assert_eq!(
            targets(&group_change(
                Some(&before),
                Some(&renamed),
                &allowed,
                &dir,
                "x"
            )),
            ["alice", "bob"]
        );
        let other = g("staff", None, &["u1", "u2"]);
        assert!(
            group_change(
                Some(&other),
                Some(&g("staff", None, &[])),
                &allowed,
                &dir,
                "x"
            )
            .is_empty()
        );
        let entra = g("Admins (Entra)", Some("0f1e-entra-object-id"), &["u2"]);
        let entra_after = g("Admins (Entra)", Some("0f1e-entra-object-id"), &[]);
        assert_eq!(
            targets(&group_change(
                Some(&entra),
                Some(&entra_after),
                &allowed,
                &dir,
                "x"
            )),
            ["bob"]
        );
    }

    #[test]
    fn joining_or_leaving_a_group_a_role_names_revokes_the_member() {
        let dir = Directory {
            users: vec![
                user("u1", "alice", true),
                user("u2", "bob", true),
                user("u3", "carol", true),
            ],
            groups: vec![],
        };
        let g = |name: &str, members: &[&str]| Group {
            id: "g".into(),
            display_name: name.into(),
            external_id: None,
            members: members.iter().map(ToString::to_string).collect(),
            created_ms: 0,
            modified_ms: 0,
        };
        let watched = Watched {
            access: vec![],
            roles: vec!["editors".to_string()],
        };
        // carol joins, bob leaves, alice stays: both changed roles.
        let before = g("editors", &["u1", "u2"]);
        let after = g("editors", &["u1", "u3"]);
        assert_eq!(
            targets(&group_change(
                Some(&before),
                Some(&after),
                &watched,
                &dir,
                "x"
            )),
            ["bob", "carol"]
        );
        // A group created with members a role names: each may rank higher.
        assert_eq!(
            targets(&group_change(None, Some(&after), &watched, &dir, "x")),
            ["alice", "carol"]
        );
        // A group no role names changes nobody's role.
        assert!(
            group_change(
                Some(&g("staff", &["u1"])),
                Some(&g("staff", &[])),
                &watched,
                &dir,
                "x"
            )
            .is_empty()
        );
        // Joining a group only an access rule names grants more, so no
        // session needs to end.
        let access_only = Watched {
            access: vec!["editors".to_string()],
            roles: vec![],
        };
        assert_eq!(
            targets(&group_change(
                Some(&before),
                Some(&after),
                &access_only,
                &dir,
                "x"
            )),
            ["bob"]
        );
    }
}
