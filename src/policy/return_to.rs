//! The place a browser returns to after login or logout: always a path on
//! this origin, never another site (open redirects are phishing tools).

use percent_encoding::percent_decode_str;

/// A same-origin path for `raw`, or `/` when `raw` could lead elsewhere.
///
/// Accepted: a path starting with a single `/`, or an absolute URL whose
/// origin is exactly `origin` (reduced to its path). Refused: `//host`,
/// `/\host`, `https:host`, any backslash, control character or
/// whitespace (a browser drops tabs and newlines, so `/\t/host` is
/// `//host`), and the percent-encoded forms of those; paths under the
/// reserved prefix (which would loop).
pub fn safe_return_path(raw: Option<&str>, origin: &str) -> String {
    raw.and_then(|r| check(r.trim(), origin))
        .unwrap_or_else(|| "/".to_string())
}

fn check(raw: &str, origin: &str) -> Option<String> {
    let path = if raw.starts_with('/') {
        raw.to_string()
    } else {
        let url = url::Url::parse(raw).ok()?;
        if url.origin().ascii_serialization() != origin {
            return None;
        }
        let mut p = url.path().to_string();
        if let Some(q) = url.query() {
            p.push('?');
            p.push_str(q);
        }
        p
    };
    // Look at the decoded forms too: an app may decode once more.
    let mut view = path.clone();
    for _ in 0..3 {
        if !is_plain_path(&view) {
            return None;
        }
        let next = percent_decode_str(&view).decode_utf8().ok()?.into_owned();
        if next == view {
            break;
        }
        view = next;
    }
    if !is_plain_path(&view) {
        return None;
    }
    // A path the normaliser will not vouch for cannot route to the reserved
    // prefix either, so only a clean one needs the loop check.
    if let Some(norm) = super::path::normalise(path.split('?').next().unwrap_or("/"))
        && norm.starts_with(crate::RESERVED_PREFIX)
        && path != crate::RESUBMIT_PATH
    {
        return None;
    }
    Some(path)
}

fn is_plain_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.chars().any(|c| c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::safe_return_path;

    const ORIGIN: &str = "https://app.example.com";

    fn r(s: &str) -> String {
        safe_return_path(Some(s), ORIGIN)
    }

    #[test]
    fn keeps_same_origin_paths() {
        assert_eq!(r("/dashboards/1?from=now-1h"), "/dashboards/1?from=now-1h");
        assert_eq!(r("https://app.example.com/x?y=1"), "/x?y=1");
        assert_eq!(r("/wiki/Caf%C3%A9"), "/wiki/Caf%C3%A9");
        assert_eq!(safe_return_path(None, ORIGIN), "/");
    }

    #[test]
    fn refuses_open_redirects() {
        for evil in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https:evil.example",
            "https://evil.example/",
            "http://app.example.com/",
            "https://app.example.com.evil.example/",
            "https://app.example.com@evil.example/",
            "%2F%2Fevil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "javascript:alert(1)",
            "/\t/evil.example",
            " //evil.example",
            "/.portcullis/login",
        ] {
            assert_eq!(r(evil), "/", "{evil}");
        }
    }

    #[test]
    fn refuses_whitespace_and_control_characters_each_on_its_own() {
        // Control but not whitespace, whitespace but not control, and both;
        // raw and percent-encoded (an app may decode once more).
        let mut kept = Vec::new();
        for evil in [
            "/a\u{0}b",
            "/a\u{7f}b",
            "/a%00b",
            "/a%01b",
            "/a b",
            "/a\u{2028}b",
            "/a%E2%80%A8b",
            "/a\nb",
            "/a%0Ab",
        ] {
            if r(evil) != "/" {
                kept.push(evil);
            }
        }
        assert!(kept.is_empty(), "kept: {kept:?}");
    }
}
