//! Passthrough bearer tokens: compared as SHA-256 hashes in constant time,
//! so neither the token nor timing reveals anything; never logged.

use http::{HeaderMap, HeaderName, header::AUTHORIZATION};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Token;

/// Where the presented token came from; it is removed from the request
/// before forwarding either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Authorization,
    ProductHeader,
}

/// A token that matched a configured one.
#[derive(Debug, Clone)]
pub struct TokenMatch<'a> {
    pub token: &'a Token,
    pub source: TokenSource,
}

pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn bearer(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The configured token presented in the product header or in
/// `Authorization: Bearer`, if any.
pub fn find<'a>(
    tokens: &'a [Token],
    headers: &HeaderMap,
    product_header: &HeaderName,
) -> Option<TokenMatch<'a>> {
    if tokens.is_empty() {
        return None;
    }
    for (name, source) in [
        (product_header, TokenSource::ProductHeader),
        (&AUTHORIZATION, TokenSource::Authorization),
    ] {
        if let Some(presented) = bearer(headers, name) {
            let hash = sha256(&presented);
            // Compare against every entry so timing does not tell which.
            let mut found = None;
            for t in tokens {
                if bool::from(t.sha256.ct_eq(&hash)) && found.is_none() {
                    found = Some(t);
                }
            }
            if let Some(token) = found {
                return Some(TokenMatch { token, source });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Vec<Token> {
        vec![Token {
            name: "prometheus".into(),
            sha256: sha256("s3cret"),
            groups: vec![],
        }]
    }

    #[test]
    fn matches_either_header() {
        let ph = HeaderName::from_static("x-portcullis-authorization");
        let t = tokens();
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(
            find(&t, &h, &ph).unwrap().source,
            TokenSource::Authorization
        );
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Bearer app-token".parse().unwrap());
        h.insert(&ph, "bearer s3cret".parse().unwrap());
        assert_eq!(
            find(&t, &h, &ph).unwrap().source,
            TokenSource::ProductHeader
        );
    }

    #[test]
    fn wrong_or_non_bearer_is_no_match() {
        let ph = HeaderName::from_static("x-portcullis-authorization");
        let t = tokens();
        for v in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
        ] {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, v.parse().unwrap());
            assert!(find(&t, &h, &ph).is_none(), "{v}");
        }
    }
}
