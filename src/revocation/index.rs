//! The in-memory form of the list, built for the per-request check: one
//! comparison and at most three hash look-ups, whatever the list's size.

use std::collections::{HashMap, HashSet};

use super::Login;
use super::entry::{Entry, Target, fold_user};

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
    idp_sessions: HashMap<String, u64>,
    /// NameID value -> (Format, latest `at_ms`): one or two Formats per
    /// value at most in practice, so the scan is short.
    name_ids: HashMap<String, Vec<(Option<String>, u64)>>,
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
            Target::User(u) => latest(&mut self.users, &fold_user(u)),
            Target::Subject(s) => latest(&mut self.subjects, s),
            Target::IdpSession(s) => latest(&mut self.idp_sessions, s),
            Target::NameId { value, format } => {
                let formats = self.name_ids.entry(value.clone()).or_default();
                match formats.iter_mut().find(|(f, _)| f == format) {
                    Some((_, at)) => *at = (*at).max(e.at_ms),
                    None => formats.push((format.clone(), e.at_ms)),
                }
            }
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

    pub fn revokes(&self, l: &Login<'_>) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let before = |m: &HashMap<String, u64>, k: &str| m.get(k).is_some_and(|at| l.at_ms < *at);
        l.at_ms < self.all_before
            || l.sid.is_some_and(|s| self.sessions.contains(s))
            || before(&self.users, &fold_user(l.user))
            || before(&self.subjects, l.subject)
            || l.idp_session.is_some_and(|s| before(&self.idp_sessions, s))
            || l.name_id
                .is_some_and(|n| self.name_id_revoked(n, l.name_id_format, l.at_ms))
    }

    fn name_id_revoked(&self, value: &str, format: Option<&str>, at_ms: u64) -> bool {
        self.name_ids.get(value).is_some_and(|formats| {
            formats.iter().any(|(f, at)| {
                at_ms < *at
                    && match (f.as_deref(), format) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    }
            })
        })
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

    struct Owned(
        u64,
        Option<String>,
        String,
        String,
        Option<String>,
        Option<(String, Option<String>)>,
    );

    impl Owned {
        fn login(&self) -> Login<'_> {
            Login {
                at_ms: self.0,
                sid: self.1.as_deref(),
                user: &self.2,
                subject: &self.3,
                idp_session: self.4.as_deref(),
                name_id: self.5.as_ref().map(|(v, _)| v.as_str()),
                name_id_format: self.5.as_ref().and_then(|(_, f)| f.as_deref()),
            }
        }
    }

    fn session(user: &str, sub: &str, at_ms: u64, sid: &str) -> Owned {
        Owned(at_ms, Some(sid.into()), user.into(), sub.into(), None, None)
    }

    fn with_name_id(mut s: Owned, value: &str, format: Option<&str>) -> Owned {
        s.5 = Some((value.into(), format.map(str::to_string)));
        s
    }

    fn at_idp(mut s: Owned, isid: &str) -> Owned {
        s.4 = Some(isid.into());
        s
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
        let alice = session("alice", "sub-a", t - 1, "sid-a1");
        let bob = session("bob", "sub-b", t - 1, "sid-b1");
        let alice_later = session("alice", "sub-a", t + 1, "sid-a2");
        let mut i = Index::default();
        assert!(!i.revokes(&alice.login()));
        i.insert(&entry(Target::User("alice".into()), t));
        assert!(i.revokes(&alice.login()));
        assert!(!i.revokes(&bob.login()));
        assert!(
            !i.revokes(&alice_later.login()),
            "a login after the revocation"
        );

        let mut i = Index::default();
        i.insert(&entry(Target::Subject("sub-b".into()), t));
        assert!(!i.revokes(&alice.login()));
        assert!(i.revokes(&bob.login()));

        let mut i = Index::default();
        i.insert(&entry(Target::Session("sid-b1".into()), t));
        assert!(i.revokes(&bob.login()));
        assert!(
            !i.revokes(&session("bob", "sub-b", t - 1, "sid-b2").login()),
            "bob's other session"
        );

        let mut i = Index::default();
        i.insert(&entry(Target::All, t));
        assert!(i.revokes(&alice.login()) && i.revokes(&bob.login()));
        assert!(!i.revokes(&alice_later.login()));
        // Same millisecond as the revocation: it was made after it.
        assert!(!i.revokes(&session("carol", "sub-c", t, "sid-c").login()));
        // A cookie without a session id is still cut by the others.
        assert!(
            i.revokes(&Owned(t - 1000, None, "dave".into(), "sub-d".into(), None, None).login())
        );

        let mut i = Index::default();
        i.insert(&entry(Target::IdpSession("op-1".into()), t));
        let at_op1 = at_idp(session("alice", "sub-a", t - 1, "sid-a1"), "op-1");
        let at_op2 = at_idp(session("alice", "sub-a", t - 1, "sid-a3"), "op-2");
        assert!(i.revokes(&at_op1.login()));
        assert!(
            !i.revokes(&at_op2.login()),
            "alice's session at another IdP session"
        );
        assert!(
            !i.revokes(&alice.login()),
            "a session without an IdP session id"
        );
        assert!(
            !i.revokes(&at_idp(session("alice", "sub-a", t + 1, "sid-a4"), "op-1").login()),
            "a login after the revocation"
        );
    }

    #[test]
    fn user_names_compare_without_case() {
        let t = 1_764_000_000_500;
        let mut i = Index::default();
        i.insert(&entry(Target::User("Alice@Example.com".into()), t));
        assert!(i.revokes(&session("alice@example.com", "s", t - 1, "a").login()));
        assert!(i.revokes(&session("ALICE@example.COM", "s", t - 1, "b").login()));
        assert!(!i.revokes(&session("alice@example.org", "s", t - 1, "c").login()));
        let mut i = Index::default();
        i.insert(&entry(Target::User("bob@example.com".into()), t));
        assert!(i.revokes(&session("Bob@Example.com", "s", t - 1, "d").login()));
    }

    #[test]
    fn name_ids_match_value_and_format_as_issued() {
        const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
        const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
        let t = 1_764_000_000_500;
        let name_id = |value: &str, format: Option<&str>| Target::NameId {
            value: value.into(),
            format: format.map(str::to_string),
        };
        // The subject mapped from an attribute: the NameID is elsewhere.
        let mapped = with_name_id(
            session("alice", "alice", t - 1, "a1"),
            "_p1",
            Some(PERSISTENT),
        );
        let email = with_name_id(
            session("alice", "alice@example.com", t - 1, "a2"),
            "alice@example.com",
            Some(EMAIL),
        );
        let unformatted = with_name_id(session("carol", "carol", t - 1, "c"), "carol", None);
        let oidc_same_sub = session("alice", "_p1", t - 1, "o1");

        let mut i = Index::default();
        i.insert(&entry(name_id("_p1", Some(PERSISTENT)), t));
        assert!(i.revokes(&mapped.login()), "the NameID it was issued for");
        assert!(!i.revokes(&email.login()));
        assert!(!i.revokes(&oidc_same_sub.login()), "not a SAML NameID");

        let mut i = Index::default();
        i.insert(&entry(name_id("alice@example.com", Some(PERSISTENT)), t));
        assert!(!i.revokes(&email.login()), "same value, another Format");
        i.insert(&entry(name_id("alice@example.com", Some(EMAIL)), t));
        assert!(i.revokes(&email.login()));

        let mut i = Index::default();
        i.insert(&entry(name_id("alice@example.com", None), t));
        assert!(i.revokes(&email.login()), "no Format in the request");
        i.insert(&entry(name_id("carol", Some(EMAIL)), t));
        assert!(i.revokes(&unformatted.login()), "no Format in the session");
        assert!(
            !i.revokes(
                &with_name_id(session("carol", "carol", t + 1, "c2"), "carol", None).login()
            ),
            "a login after the revocation"
        );
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
