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
        .map(|p| p.trim_ascii())
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
    let mut out: Vec<String> = cookies
        .iter()
        .filter(|(n, _)| is_session_cookie(n, name))
        .map(|(n, _)| clear_cookie(n, attrs))
        .collect();
    if out.is_empty() {
        out.push(clear_cookie(name, attrs));
    }
    out.dedup();
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
/// internal cookie (`portcullis_…`).
pub fn is_own_cookie(cookie: &str, session_base: &str) -> bool {
    let base = cookie.strip_prefix("__Host-").unwrap_or(cookie);
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
}
