//! Path normalisation for rule matching (passthrough and access rules). Auth bypasses through path rules are
//! the most common CVE class for gates like this one, so a path that could be
//! read two ways by the upstream is never treated as matching a rule.

/// The normalised form of a request path, or `None` when it carries an
/// encoding that upstreams disagree on: an encoded separator, NUL, `%` or
/// `;` (`%2F`, `%5C`, `%00`, `%25` for double decoding, `%3B` for stacks
/// that decode before stripping `;params`), a non-ASCII byte or escape
/// (overlong UTF-8), a bad escape, or a segment with trailing dots or spaces
/// that Windows would trim (`..%20`, `admin.`). Such a path never matches a
/// passthrough rule and must be authenticated.
///
/// Steps: `\` read as `/`; percent-escapes of unreserved characters decoded;
/// `;params` dropped from each segment (as Tomcat and Jetty do); empty, `.`
/// and `..` segments resolved. The query is never part of the input.
pub fn normalise(raw_path: &str) -> Option<String> {
    let decoded = decode_unreserved(raw_path)?;
    let unified = decoded.replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in unified.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        if seg != "." && seg != ".." && (seg.ends_with('.') || seg.ends_with("%20")) {
            return None;
        }
        trailing_slash = false;
        match seg {
            "" | "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(unified.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Some(out)
}

/// Whether `raw_path` is already its own normal form. Only such a path can
/// match a passthrough rule or name an own endpoint: any other (dot
/// segments, `//`, `\`, `;params`, escaped unreserved characters,
/// lower-case hex, or no normal form at all) is judged as protected, and
/// since the raw path is what the app receives, no router behind Portcullis
/// can read an anonymous request as another path than the one the rule
/// matched.
pub fn is_canonical(raw_path: &str) -> bool {
    normalise(raw_path).is_some_and(|n| n == raw_path)
}

fn decode_unreserved(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            let v = u8::from_str_radix(s, 16).ok()?;
            match v {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(v as char);
                }
                // Separators, NUL, `%`, `;` and non-ASCII in disguise:
                // upstreams decode them differently, so refuse to guess.
                b'/' | b'\\' | 0 | b'%' | b';' | 0x80..=0xff => return None,
                _ => {
                    out.push('%');
                    out.push_str(&s.to_ascii_uppercase());
                }
            }
            i += 3;
        } else {
            if !(0x20..0x7f).contains(&b) {
                return None;
            }
            out.push(b as char);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{is_canonical, normalise};

    #[test]
    fn resolves_dot_segments_and_slashes() {
        assert_eq!(normalise("/public/../admin").unwrap(), "/admin");
        assert_eq!(normalise("/public/./x").unwrap(), "/public/x");
        assert_eq!(normalise("//public///x").unwrap(), "/public/x");
        assert_eq!(normalise("/../../etc").unwrap(), "/etc");
        assert_eq!(normalise("/public/").unwrap(), "/public/");
        assert_eq!(normalise("/public/x/..").unwrap(), "/public/");
        assert_eq!(normalise("").unwrap(), "/");
    }

    #[test]
    fn decodes_unreserved_only() {
        assert_eq!(normalise("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(normalise("/public/%2E%2E/admin").unwrap(), "/admin");
        assert_eq!(normalise("/%70ublic/x").unwrap(), "/public/x");
        assert_eq!(normalise("/a%20b").unwrap(), "/a%20b");
        assert_eq!(normalise("/a%3fb").unwrap(), "/a%3Fb");
    }

    #[test]
    fn refuses_encoded_separators_and_bad_escapes() {
        assert_eq!(normalise("/public%2F..%2Fadmin"), None);
        assert_eq!(normalise("/public%2f..%2fadmin"), None);
        assert_eq!(normalise("/public%5C..%5Cadmin"), None);
        assert_eq!(normalise("/public/%00"), None);
        assert_eq!(normalise("/public/%zz"), None);
        assert_eq!(normalise("/public/%2"), None);
    }

    #[test]
    fn refuses_what_other_parsers_decode_differently() {
        for p in [
            "/public/%252e%252e/admin",
            "/public/..%3B/admin",
            "/public/..%3b/admin",
            "/public/%c0%ae%c0%ae/admin",
            "/public/..%20/admin",
            "/public/admin.",
            "/public/.../admin",
            "/public/caf\u{e9}",
        ] {
            assert_eq!(normalise(p), None, "{p}");
        }
    }

    #[test]
    fn canonical_means_unchanged_by_normalising() {
        for p in ["/", "/public/x", "/public/", "/a%20b", "/a%3Fb", "/x/y.css"] {
            assert!(is_canonical(p), "{p}");
        }
        for p in [
            "/public/../admin",
            "/public/./x",
            "//public/x",
            "/public//x",
            "/public\\x",
            "/public;a=1/x",
            "/public/x;",
            "/%70ublic/x",
            "/a%3fb",
            "/public/x/..",
            "/public/%2e",
            "/public%2Fx",
            "/public/admin.",
            "/public/%zz",
            "",
        ] {
            assert!(!is_canonical(p), "{p}");
        }
    }

    #[test]
    fn strips_matrix_params_and_backslashes() {
        assert_eq!(normalise("/public/..;/admin").unwrap(), "/admin");
        assert_eq!(normalise("/public;x=1/file").unwrap(), "/public/file");
        assert_eq!(normalise("/public\\..\\admin").unwrap(), "/admin");
    }
}
