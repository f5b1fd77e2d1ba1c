//! The in-memory form of the list, built for the per-request check: one
//! comparison and at most three hash look-ups, whatever the list's size.

use std::collections::{HashMap, HashSet};

use super::entry::{Entry, Target};
use crate::session::SessionClaims;

#[derive(Debug, Default)]
pub struct Index {
    /// Every entry in force, in the order it arrived.
    entries: Vec<Entry>,
    /// (target, at_ms) of the entries: the same revocation twice is one.
    known: HashSet<(Target, u64)>,
    sessions: HashSet<String>,
    /// The latest `at_ms` per user name / subject.
    users: HashMap<String, u64>,
    subjects: HashMap<String, u64>,
    /// Sessions that logged in before this are revoked (0: none).
    all_before: u64,
}

impl Index {
    /// Adds an entry; `false` when it is already there.
    pub fn insert(&mut self, e: &Entry) -> bool {
        if !self.known.insert((e.target.clone(), e.at_ms)) {
            return false;
        }
        self.index(e);
        self.entries.push(e.clone());
        true
    }

    fn index(&mut self, e: &Entry) {
        let latest = |m: &mut HashMap<String, u64>, k: &str| {
            let at = m.entry(k.to_string()).or_insert(0);
            *at = (*at).max(e.at_ms);
        };
        match &e.target {
            Target::Session(s) => {
                self.sessions.insert(s.clone());
            }
            Target::User(u) => latest(&mut self.users, u),
            Target::Subject(s) => latest(&mut self.subjects, s),
            Target::All => self.all_before = self.all_before.max(e.at_ms),
        }
    }

    /// Drops entries that can no longer match a living session; returns
    /// how many went.
    pub fn prune(&mut self, lifetime_secs: u64, now_ms: u64) -> usize {
        let before = self.entries.len();
        if !self
            .entries
            .iter()
            .any(|e| e.expired(lifetime_secs, now_ms))
        {
            return 0;
        }
        let kept: Vec<Entry> = std::mem::take(&mut self.entries)
            .into_iter()
            .filter(|e| !e.expired(lifetime_secs, now_ms))
            .collect();
        *self = Index::default();
        for e in &kept {
            self.insert(e);
        }
        before - self.entries.len()
    }

    pub fn revokes(&self, c: &SessionClaims) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let login = c.login_ms();
        let before = |m: &HashMap<String, u64>, k: &str| m.get(k).is_some_and(|at| login < *at);
        login < self.all_before
            || c.sid.as_ref().is_some_and(|s| self.sessions.contains(s))
            || before(&self.users, &c.user)
            || before(&self.subjects, &c.sub)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::entry::Source;
    use crate::session::sid;

    fn claims(user: &str, sub: &str, login_ms: u64) -> SessionClaims {
        SessionClaims {
            iss: "a".into(),
            aud: "a".into(),
            sub: sub.into(),
            user: user.into(),
            email: None,
            name: None,
            preferred_username: None,
            groups: vec![],
            extra: Default::default(),
            idp: crate::identity::IdpKind::Oidc,
            sub_fmt: None,
            sid: Some(sid::new(login_ms)),
            idp_sid: None,
            name_id: None,
            auth_time: login_ms / 1000,
            iat: login_ms / 1000,
            exp: login_ms / 1000 + 3600,
        }
    }

    fn entry(target: Target, at_ms: u64) -> Entry {
        Entry {
            target,
            at_ms,
            source: Source::Cli,
            by: "test".into(),
        }
    }

    #[test]
    fn each_kind_cuts_exactly_what_it_names() {
        let t = 1_764_000_000_500;
        let alice = claims("alice", "sub-a", t - 1);
        let bob = claims("bob", "sub-b", t - 1);
        let alice_later = claims("alice", "sub-a", t + 1);
        let mut i = Index::default();
        assert!(!i.revokes(&alice));
        i.insert(&entry(Target::User("alice".into()), t));
        assert!(i.revokes(&alice));
        assert!(!i.revokes(&bob));
        assert!(!i.revokes(&alice_later), "a login after the revocation");

        let mut i = Index::default();
        i.insert(&entry(Target::Subject("sub-b".into()), t));
        assert!(!i.revokes(&alice));
        assert!(i.revokes(&bob));

        let mut i = Index::default();
        i.insert(&entry(Target::Session(bob.sid.clone().unwrap()), t));
        assert!(i.revokes(&bob));
        assert!(
            !i.revokes(&claims("bob", "sub-b", t - 1)),
            "bob's other session"
        );

        let mut i = Index::default();
        i.insert(&entry(Target::All, t));
        assert!(i.revokes(&alice) && i.revokes(&bob));
        assert!(!i.revokes(&alice_later));
        // Same millisecond as the revocation: it was made after it.
        assert!(!i.revokes(&claims("carol", "sub-c", t)));
    }

    #[test]
    fn a_cookie_without_a_session_id_is_judged_by_its_login_second() {
        let t = 1_764_000_000_500;
        let mut old = claims("alice", "sub-a", t);
        old.sid = None;
        old.auth_time = t / 1000 - 1;
        let mut i = Index::default();
        i.insert(&entry(Target::All, t));
        assert!(i.revokes(&old));
    }

    #[test]
    fn duplicates_are_one_and_expired_entries_go() {
        let mut i = Index::default();
        let e = entry(Target::User("alice".into()), 1_000_000);
        assert!(i.insert(&e));
        assert!(!i.insert(&e));
        i.insert(&entry(Target::All, 9_000_000));
        assert_eq!(i.len(), 2);
        // lifetime 3600 s: the first ends at 1000+3600+5 s, the second later.
        assert_eq!(i.prune(3600, 4_606_000), 1);
        assert_eq!(i.len(), 1);
        assert!(i.users.is_empty());
        assert_eq!(i.all_before, 9_000_000);
    }
}
