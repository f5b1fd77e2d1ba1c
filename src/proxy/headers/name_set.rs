//! A set of header names and name prefixes, matched the way a backend may
//! read them: ASCII case-insensitive and with `_` read as `-` (CGI, PHP,
//! WSGI and many Java helpers map `X_Foo` and `X-Foo` to the same variable).
//!
//! It runs on every header of every request, so lookups touch only the
//! candidates that can match: exact names are kept by length, prefixes by
//! first byte.

/// Canonical form of one byte of a header name: lower case, `_` as `-`.
fn canonical_byte(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// `name` read canonically, as an owned string (build time only).
pub(crate) fn canonical(name: &str) -> String {
    name.bytes().map(|b| canonical_byte(b) as char).collect()
}

/// `name` (any spelling) equals `canonical` (already canonical).
fn same(canonical: &[u8], name: &[u8]) -> bool {
    canonical.len() == name.len()
        && canonical
            .iter()
            .zip(name)
            .all(|(c, n)| *c == canonical_byte(*n))
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NameSet {
    /// `exact[n]`: the canonical names of length `n`.
    exact: Vec<Vec<Box<[u8]>>>,
    /// `prefixes[b]`: the canonical prefixes starting with byte `b`.
    prefixes: Vec<Vec<Box<[u8]>>>,
}

impl NameSet {
    pub(crate) fn new() -> NameSet {
        NameSet {
            exact: Vec::new(),
            prefixes: vec![Vec::new(); 256],
        }
    }

    pub(crate) fn insert_exact(&mut self, name: &str) {
        let name = canonical(name).into_bytes().into_boxed_slice();
        if self.exact.len() <= name.len() {
            self.exact.resize(name.len() + 1, Vec::new());
        }
        let bucket = &mut self.exact[name.len()];
        if !bucket.contains(&name) {
            bucket.push(name);
        }
    }

    /// Every name that starts with `prefix` (which must not be empty).
    pub(crate) fn insert_prefix(&mut self, prefix: &str) {
        let prefix = canonical(prefix).into_bytes().into_boxed_slice();
        let Some(first) = prefix.first() else { return };
        let bucket = &mut self.prefixes[usize::from(*first)];
        if !bucket.contains(&prefix) {
            bucket.push(prefix);
        }
    }

    /// `name` in any spelling is in the set.
    pub(crate) fn contains(&self, name: &[u8]) -> bool {
        if self
            .exact
            .get(name.len())
            .is_some_and(|bucket| bucket.iter().any(|e| same(e, name)))
        {
            return true;
        }
        let Some(first) = name.first() else {
            return false;
        };
        self.prefixes[usize::from(canonical_byte(*first))]
            .iter()
            .any(|p| p.len() <= name.len() && same(p, &name[..p.len()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix_in_any_spelling() {
        let mut s = NameSet::new();
        s.insert_exact("Remote-User");
        s.insert_prefix("X-WEBAUTH-");
        for yes in [
            "remote-user",
            "REMOTE_USER",
            "remote_user",
            "x-webauth-user",
            "X_WEBAUTH_EMAIL",
            "x_webauth-",
        ] {
            assert!(s.contains(yes.as_bytes()), "{yes}");
        }
        for no in [
            "remote-users",
            "remote-use",
            "x-webauth",
            "x-webauthx",
            "",
            "accept",
            "_",
        ] {
            assert!(!s.contains(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn a_prefix_starting_with_an_underscore_spelling_still_matches() {
        let mut s = NameSet::new();
        s.insert_prefix("-x-");
        assert!(s.contains(b"_x_y"));
        assert!(s.contains(b"-X-Y"));
    }
}
