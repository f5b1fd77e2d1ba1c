//! Portcullis' cookies on the wire: reading the session (possibly split over
//! numbered chunks), writing and clearing it, and removing every Portcullis
//! cookie from the `Cookie` header before a request goes upstream.

use http::header::{COOKIE, HeaderMap, HeaderValue};

/// Browsers cap a cookie at about 4096 bytes including its attributes.
pub const CHUNK_BYTES: usize = 3800;
/// A session bigger than this many chunks is refused rather than sent.
pub const MAX_CHUNKS: usize = 8;

/// The raw `;`-separated pairs of every `Cookie` header, trimmed. Bytes,
/// not text: an app's cookie may carry UTF-8, and one such value must not
/// make the whole header (and the session in it) unreadable.
fn raw_pairs(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
}

/// Every `name=value` pair in the request's `Cookie` headers whose name and
/// value are text (all of Portcullis' own are).
pub fn request_cookies(headers: &HeaderMap) -> Vec<(&str, &str)> {
    raw_pairs(headers)
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            let name = std::str::from_utf8(&pair[..eq]).ok()?.trim();
            let value = std::str::from_utf8(&pair[eq + 1..]).ok()?.trim();
            Some((name, value))
        })
        .collect()
}

/// The session token: the cookie `name`, or `name_0`, `name_1`, … joined.
pub fn read_chunked(cookies: &[(&str, &str)], name: &str) -> Option<String> {
    if let Some((_, v)) = cookies.iter().find(|(n, _)| *n == name) {
        return Some((*v).to_string());
    }
    let mut out = String::new();
    for i in 0..MAX_CHUNKS {
        let chunk_name = format!("{name}_{i}");
        match cookies.iter().find(|(n, _)| *n == chunk_name) {
            Some((_, v)) => out.push_str(v),
            None => break,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Attributes shared by Portcullis' cookies.
#[derive(Debug, Clone, Copy)]
pub struct CookieAttrs {
    pub secure: bool,
    pub same_site_none: bool,
}

impl CookieAttrs {
    fn suffix(self) -> &'static str {
        match (self.secure, self.same_site_none) {
            (true, false) => "; Path=/; HttpOnly; Secure; SameSite=Lax",
            (true, true) => "; Path=/; HttpOnly; Secure; SameSite=None",
            // SameSite=None requires Secure; without it, Lax is what works.
            (false, _) => "; Path=/; HttpOnly; SameSite=Lax",
        }
    }
}

/// `Set-Cookie` value for one cookie.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, attrs: CookieAttrs) -> String {
    format!("{name}={value}; Max-Age={max_age_secs}{}", attrs.suffix())
}

/// `Set-Cookie` value that deletes a cookie.
pub fn clear_cookie(name: &str, attrs: CookieAttrs) -> String {
    format!("{name}=; Max-Age=0{}", attrs.suffix())
}

/// `Set-Cookie` values that store `token` under `name`, split when large,
/// and delete the request's chunks that the new value no longer uses.
pub fn write_chunked(
    cookies: &[(&str, &str)],
    name: &str,
    token: &str,
    max_age_secs: u64,
    attrs: CookieAttrs,
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let kept: Vec<String> = if token.len() <= CHUNK_BYTES {
        out.push(set_cookie(name, token, max_age_secs, attrs));
        vec![name.to_string()]
    } else {
        // A JWT is ASCII, so byte chunks are char boundaries.
        let chunks: Vec<&str> = token
            .as_bytes()
            .chunks(CHUNK_BYTES)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        if chunks.len() > MAX_CHUNKS {
            return None;
        }
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let n = format!("{name}_{i}");
                out.push(set_cookie(&n, c, max_age_secs, attrs));
                n
            })
            .collect()
    };
    for (n, _) in cookies {
        if is_session_cookie(n, name) && !kept.iter().any(|k| k == n) {
            out.push(clear_cookie(n, attrs));
        }
    }
    Some(out)
}

/// `Set-Cookie` values deleting every session cookie the request carries.
pub fn clear_chunked(cookies: &[(&str, &str)], name: &str, attrs: CookieAttrs) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (n, _) in cookies {
        // A browser may send a name twice (two paths): clear it once.
        let clear = clear_cookie(n, attrs);
        if is_session_cookie(n, name) && !out.contains(&clear) {
            out.push(clear);
        }
    }
    if out.is_empty() {
        out.push(clear_cookie(name, attrs));
    }
    out
}

fn is_session_cookie(cookie: &str, name: &str) -> bool {
    cookie == name
        || cookie
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|idx| !idx.is_empty() && idx.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a cookie is Portcullis' own: the session (any chunk, with or
/// without the `__Host-` prefix, so a planted unprefixed twin goes too) or an
/// internal cookie (`portcullis_…`, also with `__Host-` or `__Secure-`, as
/// the logout hint is written).
pub fn is_own_cookie(cookie: &str, session_base: &str) -> bool {
    let base = cookie
        .strip_prefix("__Host-")
        .or_else(|| cookie.strip_prefix("__Secure-"))
        .unwrap_or(cookie);
    is_session_cookie(base, session_base) || base.starts_with(super::INTERNAL_COOKIE_PREFIX)
}

/// Rewrites the `Cookie` header without Portcullis' cookies: the upstream
/// never sees a session token, and large sessions cannot overflow its
/// header limits.
pub fn strip_own_cookies(headers: &mut HeaderMap, session_base: &str) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for pair in raw_pairs(headers) {
        let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
        let own = std::str::from_utf8(name).is_ok_and(|n| is_own_cookie(n.trim(), session_base));
        if !own {
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            // Foreign pairs go on byte for byte.
            kept.extend_from_slice(pair);
        }
    }
    headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_bytes(&kept)
    {
        headers.insert(COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTRS: CookieAttrs = CookieAttrs {
        secure: true,
        same_site_none: false,
    };

    #[test]
    fn large_token_is_split_and_joined() {
        let token = "a".repeat(CHUNK_BYTES * 2 + 10);
        let set = write_chunked(&[], "__Host-s", &token, 60, ATTRS).unwrap();
        assert_eq!(set.len(), 3);
        let pairs: Vec<(String, String)> = set
            .iter()
            .map(|c| {
                let nv = c.split(';').next().unwrap();
                let (n, v) = nv.split_once('=').unwrap();
                (n.to_string(), v.to_string())
            })
            .collect();
        assert_eq!(pairs[0].0, "__Host-s_0");
        assert!(set.iter().all(|c| c.len() < 4096));
        let view: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(read_chunked(&view, "__Host-s").unwrap(), token);
    }

    #[test]
    fn the_largest_size_limit_is_every_chunk() {
        let yaml = |n: usize| {
            format!(
                "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\nsession:\n  max_cookie_bytes: {n}\n"
            )
        };
        let c = crate::config::from_yaml_str(&yaml(MAX_CHUNKS * CHUNK_BYTES)).unwrap();
        assert_eq!(c.session.max_cookie_bytes, MAX_CHUNKS * CHUNK_BYTES);
        assert!(crate::config::from_yaml_str(&yaml(MAX_CHUNKS * CHUNK_BYTES + 1)).is_err());
    }

    #[test]
    fn stale_chunks_are_cleared() {
        let old = [
            ("__Host-s_0", "x"),
            ("__Host-s_1", "y"),
            ("__Host-s_2", "z"),
            ("other", "1"),
        ];
        let set = write_chunked(&old, "__Host-s", "small", 60, ATTRS).unwrap();
        assert_eq!(
            set[0],
            "__Host-s=small; Max-Age=60; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
        let cleared: Vec<&String> = set.iter().filter(|c| c.contains("Max-Age=0")).collect();
        assert_eq!(cleared.len(), 3);
        assert!(!set.iter().any(|c| c.starts_with("other")));
    }

    #[test]
    fn oversized_session_is_refused() {
        let token = "a".repeat(CHUNK_BYTES * MAX_CHUNKS + 1);
        assert!(write_chunked(&[], "s", &token, 60, ATTRS).is_none());
    }

    #[test]
    fn own_cookies_are_stripped_others_kept() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static(
                "a=1; __Host-portcullis_session=tok; portcullis_session=planted",
            ),
        );
        h.append(COOKIE, HeaderValue::from_static("__Host-portcullis_session_0=x; __Host-portcullis_txn_ab=t; portcullis_other=x; b=2"));
        strip_own_cookies(&mut h, "portcullis_session");
        let all: Vec<_> = h.get_all(COOKIE).iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0], "a=1; b=2");
    }

    #[test]
    fn non_ascii_app_cookies_neither_hide_the_session_nor_get_lost() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_bytes(
                "name=Zo\u{eb}; flag; __Host-portcullis_session=tok".as_bytes(),
            )
            .unwrap(),
        );
        assert_eq!(
            read_chunked(&request_cookies(&h), "__Host-portcullis_session").as_deref(),
            Some("tok")
        );
        strip_own_cookies(&mut h, "portcullis_session");
        assert_eq!(
            h.get(COOKIE).unwrap().as_bytes(),
            "name=Zo\u{eb}; flag".as_bytes()
        );
    }

    #[test]
    fn custom_session_name_chunks_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("sid=1; sid_3=2; sid_x=3"));
        strip_own_cookies(&mut h, "sid");
        assert_eq!(h.get(COOKIE).unwrap(), "sid_x=3");
    }

    #[test]
    fn attributes_for_each_setting_exactly() {
        let lax = CookieAttrs {
            secure: true,
            same_site_none: false,
        };
        let none = CookieAttrs {
            secure: true,
            same_site_none: true,
        };
        let plain = CookieAttrs {
            secure: false,
            same_site_none: true,
        };
        assert_eq!(
            set_cookie("s", "v", 60, lax),
            "s=v; Max-Age=60; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
        assert_eq!(
            set_cookie("t", "v", 300, none),
            "t=v; Max-Age=300; Path=/; HttpOnly; Secure; SameSite=None"
        );
        // SameSite=None without Secure is dropped by browsers: Lax instead.
        assert_eq!(
            set_cookie("t", "v", 300, plain),
            "t=v; Max-Age=300; Path=/; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            clear_cookie("s", lax),
            "s=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn request_cookies_are_trimmed_pairs_and_skip_nameless_parts() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static(" a = 1 ;b=2=3;; flag ;c="));
        h.append(COOKIE, HeaderValue::from_static("d=4"));
        assert_eq!(
            request_cookies(&h),
            [("a", "1"), ("b", "2=3"), ("c", ""), ("d", "4")]
        );
    }

    #[test]
    fn chunks_are_read_in_order_up_to_a_gap_or_the_limit() {
        let v = |pairs: &[(&'static str, &'static str)]| read_chunked(pairs, "s");
        assert_eq!(v(&[("s_1", "b"), ("s_0", "a")]).as_deref(), Some("ab"));
        assert_eq!(
            v(&[("s_0", "a"), ("s_2", "c")]).as_deref(),
            Some("a"),
            "stops at the first missing chunk"
        );
        assert_eq!(v(&[("s_1", "b")]), None, "no chunk 0, no session");
        assert_eq!(
            v(&[("s", "whole"), ("s_0", "a")]).as_deref(),
            Some("whole"),
            "an unsplit cookie wins"
        );
        let many: Vec<(String, String)> = (0..=MAX_CHUNKS)
            .map(|i| (format!("s_{i}"), i.to_string()))
            .collect();
        let view: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            read_chunked(&view, "s").as_deref(),
            Some("01234567"),
            "at most {MAX_CHUNKS} chunks are joined"
        );
        assert_eq!(read_chunked(&[("s", "")], "s").as_deref(), Some(""));
        assert_eq!(read_chunked(&[("s_0", "")], "s"), None);
    }

    #[test]
    fn a_token_of_exactly_one_chunk_is_not_split() {
        let token = "a".repeat(CHUNK_BYTES);
        let set = write_chunked(&[], "s", &token, 60, ATTRS).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set[0].starts_with(&format!("s={token};")));
        let token = "a".repeat(CHUNK_BYTES + 1);
        let set = write_chunked(&[], "s", &token, 60, ATTRS).unwrap();
        let names: Vec<&str> = set.iter().map(|c| c.split('=').next().unwrap()).collect();
        assert_eq!(names, ["s_0", "s_1"]);
        // Exactly MAX_CHUNKS chunks still fit.
        let token = "a".repeat(CHUNK_BYTES * MAX_CHUNKS);
        assert_eq!(
            write_chunked(&[], "s", &token, 60, ATTRS).unwrap().len(),
            MAX_CHUNKS
        );
    }

    #[test]
    fn a_split_session_replaces_an_unsplit_one_and_keeps_its_own_chunks() {
        let token = "a".repeat(CHUNK_BYTES + 1);
        let old = [
            ("s", "old"),
            ("s_0", "x"),
            ("s_1", "y"),
            ("s_5", "z"),
            ("s_x", "app"),
        ];
        let set = write_chunked(&old, "s", &token, 60, ATTRS).unwrap();
        let cleared: Vec<&str> = set
            .iter()
            .filter(|c| c.contains("Max-Age=0"))
            .map(|c| c.split('=').next().unwrap())
            .collect();
        assert_eq!(cleared, ["s", "s_5"], "{set:?}");
    }

    #[test]
    fn logout_clears_every_chunk_once_or_the_name_itself() {
        let jar = [
            ("s_0", "a"),
            ("s_1", "b"),
            ("s_0", "dup"),
            ("s_x", "app"),
            ("o", "1"),
        ];
        let out = clear_chunked(&jar, "s", ATTRS);
        assert_eq!(
            out,
            [clear_cookie("s_0", ATTRS), clear_cookie("s_1", ATTRS)],
            "each chunk once; others untouched"
        );
        assert_eq!(
            clear_chunked(&[("o", "1")], "s", ATTRS),
            [clear_cookie("s", ATTRS)],
            "nothing to clear: the name itself, so a stale cookie elsewhere goes too"
        );
    }

    #[test]
    fn what_counts_as_our_cookie() {
        let mut failures = Vec::new();
        // Every `portcullis_` cookie is internal; a renamed session is
        // recognised by its name and numbered chunks only.
        for (cookie, base, own) in [
            ("portcullis_session", "portcullis_session", true),
            ("__Host-portcullis_session", "portcullis_session", true),
            ("portcullis_session_0", "portcullis_session", true),
            ("__Host-portcullis_session_12", "portcullis_session", true),
            ("portcullis_txn_ab12", "portcullis_session", true),
            ("__Host-portcullis_loop", "portcullis_session", true),
            (
                "__Secure-portcullis_logout_hint",
                "portcullis_session",
                true,
            ),
            ("portcullis_logout_hint", "sid", true),
            ("__Secure-app", "portcullis_session", false),
            ("xportcullis_session", "portcullis_session", false),
            ("__Host-app", "portcullis_session", false),
            ("sid", "sid", true),
            ("__Host-sid_3", "sid", true),
            ("sid_", "sid", false),
            ("sid_1a", "sid", false),
            ("sidx", "sid", false),
            ("xsid", "sid", false),
            ("portcullis_txn_1", "sid", true),
        ] {
            if is_own_cookie(cookie, base) != own {
                failures.push(cookie);
            }
        }
        assert!(failures.is_empty(), "misjudged: {failures:?}");
    }

    #[test]
    fn no_cookie_header_stays_none_and_all_ours_removes_it() {
        let mut h = HeaderMap::new();
        strip_own_cookies(&mut h, "portcullis_session");
        assert!(h.get(COOKIE).is_none());
        h.insert(
            COOKIE,
            HeaderValue::from_static("portcullis_session=t; portcullis_txn_1=x"),
        );
        strip_own_cookies(&mut h, "portcullis_session");
        assert!(h.get(COOKIE).is_none(), "no empty Cookie header upstream");
    }
}
