//! A set of header names and name prefixes, matched the way a backend may
//! read them: ASCII case-insensitive and with `_` read as `-` (CGI, PHP,
//! WSGI and many Java helpers map `X_Foo` and `X-Foo` to the same variable).
//!
//! It runs on every header of every request, so a name is compared only
//! with the candidates that can match: exact names of its length (kept side
//! by side in one buffer), and prefixes sharing its first and third bytes
//! (`x-w…`, `x-a…`: the second byte of most prefixes is `-`). Lookups take
//! names in lower case, as `HeaderName` keeps them.

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

/// `name` (lower case, any `_`/`-`) starts with `prefix` (canonical). An
/// inline loop rather than canonicalising first and calling `memcmp`: most
/// candidates differ in their first bytes.
#[inline]
fn starts_with(name: &[u8], prefix: &[u8]) -> bool {
    prefix.len() <= name.len()
        && prefix
            .iter()
            .zip(name)
            .all(|(p, n)| p == n || (*p == b'-' && *n == b'_'))
}

/// Prefix bucket of a canonical name or prefix of at least three bytes.
fn bucket(first: u8, third: u8) -> usize {
    usize::from(first.wrapping_mul(31) ^ third)
}

#[derive(Debug, Clone)]
pub(crate) struct NameSet {
    /// `exact[n]`: the canonical names of length `n`, concatenated.
    exact: Vec<Vec<u8>>,
    /// Canonical prefixes of three bytes or more, by [`bucket`].
    prefixes: Vec<Vec<Box<[u8]>>>,
    /// Canonical prefixes of one or two bytes (an operator's `X*`).
    short_prefixes: Vec<Box<[u8]>>,
}

impl NameSet {
    pub(crate) fn new() -> NameSet {
        NameSet {
            exact: Vec::new(),
            prefixes: vec![Vec::new(); 256],
            short_prefixes: Vec::new(),
        }
    }

    pub(crate) fn insert_exact(&mut self, name: &str) {
        let name = canonical(name).into_bytes();
        if name.is_empty() || self.contains_exact(&name) {
            return;
        }
        if self.exact.len() <= name.len() {
            self.exact.resize(name.len() + 1, Vec::new());
        }
        self.exact[name.len()].extend_from_slice(&name);
    }

    /// Every name that starts with `prefix` (which must not be empty).
    pub(crate) fn insert_prefix(&mut self, prefix: &str) {
        let prefix = canonical(prefix).into_bytes().into_boxed_slice();
        let list = match *prefix {
            [] => return,
            [first, _, third, ..] => &mut self.prefixes[bucket(first, third)],
            _ => &mut self.short_prefixes,
        };
        if !list.contains(&prefix) {
            list.push(prefix);
        }
    }

    fn contains_exact(&self, name: &[u8]) -> bool {
        match self.exact.get(name.len()) {
            Some(names) if !name.is_empty() => names
                .chunks_exact(name.len())
                .any(|candidate| starts_with(name, candidate)),
            _ => false,
        }
    }

    /// `name` (lower case, `_` or `-`) is in the set.
    pub(crate) fn contains(&self, name: &[u8]) -> bool {
        if self.contains_exact(name) {
            return true;
        }
        if let [first, _, third, ..] = *name
            && self.prefixes[bucket(canonical_byte(first), canonical_byte(third))]
                .iter()
                .any(|p| starts_with(name, p))
        {
            return true;
        }
        self.short_prefixes.iter().any(|p| starts_with(name, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(s: &NameSet, name: &str) -> bool {
        s.contains(name.to_ascii_lowercase().as_bytes())
    }

    #[test]
    fn exact_and_prefix_in_any_spelling() {
        let mut s = NameSet::new();
        s.insert_exact("Remote-User");
        s.insert_exact("remote_user");
        s.insert_prefix("X-WEBAUTH-");
        for yes in [
            "remote-user",
            "REMOTE_USER",
            "remote_user",
            "x-webauth-user",
            "X_WEBAUTH_EMAIL",
            "x_webauth-",
        ] {
            assert!(contains(&s, yes), "{yes}");
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
            assert!(!contains(&s, no), "{no}");
        }
    }

    #[test]
    fn short_prefixes_and_long_names() {
        let mut s = NameSet::new();
        s.insert_prefix("z");
        s.insert_prefix("-x");
        let long = format!("x-{}", "a".repeat(100));
        s.insert_exact(&long);
        assert!(contains(&s, "z"));
        assert!(contains(&s, "Zeta"));
        assert!(contains(&s, "_x_y"));
        assert!(contains(&s, &long.to_ascii_uppercase().replace('-', "_")));
        assert!(!contains(&s, &format!("{long}a")));
        assert!(!contains(&s, "x-z"));
    }

    #[test]
    fn an_empty_prefix_matches_nothing() {
        // Were it kept, every header would start with it.
        let mut s = NameSet::new();
        s.insert_prefix("");
        s.insert_prefix("_");
        assert!(!contains(&s, "accept"));
        assert!(!contains(&s, "x-forwarded-user"));
        assert!(contains(&s, "-x"), "`_` is a prefix of one byte, `-`");
    }

    #[test]
    fn a_long_prefix_is_filed_under_its_first_and_third_bytes() {
        // Only the candidates of one bucket are compared on the request path.
        let mut s = NameSet::new();
        s.insert_prefix("X-WebAuth-");
        s.insert_prefix("X-WebAuth-");
        assert!(s.short_prefixes.is_empty());
        assert_eq!(s.prefixes[bucket(b'x', b'w')].len(), 1, "once");
        let filed: usize = s.prefixes.iter().map(Vec::len).sum();
        assert_eq!(filed, 1);
    }

    #[test]
    fn a_name_in_two_spellings_is_kept_once() {
        // Every kept copy is compared on every request.
        let mut s = NameSet::new();
        s.insert_exact("Remote-User");
        s.insert_exact("remote_user");
        s.insert_exact("");
        assert_eq!(s.exact[11], b"remote-user");
        assert!(
            s.exact
                .iter()
                .enumerate()
                .all(|(n, v)| n == 11 || v.is_empty())
        );
    }

    #[test]
    fn prefixes_that_differ_in_the_third_byte_never_share_a_bucket() {
        // `x-a…`, `x-w…`: a name is compared with its own bucket only.
        let mut s = NameSet::new();
        for c in 'a'..='z' {
            s.insert_prefix(&format!("x-{c}-"));
        }
        let used = s.prefixes.iter().filter(|b| !b.is_empty()).count();
        assert_eq!(used, 26);
        assert!(contains(&s, "X_Q_Anything"));
    }
}
