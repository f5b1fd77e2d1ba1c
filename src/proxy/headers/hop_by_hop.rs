//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and
//! are never passed on, in either direction.

use http::header::{self, HeaderMap, HeaderValue};

/// Removes the hop-by-hop headers and those named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // The listed names are removed by `&str` (looked up without building a
    // `HeaderName`); the values are cheap clones of the request's bytes.
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderValue> = headers
            .get_all(header::CONNECTION)
            .iter()
            .cloned()
            .collect();
        for value in &listed {
            let Ok(value) = value.to_str() else { continue };
            for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                headers.remove(name);
            }
        }
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic eA=="),
            ("upgrade", "h2c"),
            ("x-app", "kept"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        remove_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(http::HeaderName::as_str).collect();
        assert_eq!(left, vec!["x-app"]);
    }
}
