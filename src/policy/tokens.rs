//! Bearer tokens (passthrough and SCIM): compared as SHA-256 hashes in constant time,
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

/// The bearer credentials in every copy of header `name`.
fn bearers<'h>(headers: &'h HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'h str> {
    headers.get_all(name).iter().filter_map(|v| {
        let (scheme, token) = v.to_str().ok()?.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    })
}

/// The configured token `presented` stands for, compared against every
/// entry so timing does not tell which one matched.
fn lookup<'a>(tokens: &'a [Token], presented: &str) -> Option<&'a Token> {
    let hash = sha256(presented);
    let mut found = None;
    for t in tokens {
        if bool::from(t.sha256.ct_eq(&hash)) && found.is_none() {
            found = Some(t);
        }
    }
    found
}

/// What the request carries in the way of passthrough tokens.
#[derive(Debug, Clone, Default)]
pub struct Presented<'a> {
    /// The token the request is let in with: the product header's first,
    /// else `Authorization`'s.
    pub matched: Option<TokenMatch<'a>>,
    /// Some `Authorization` value is a configured token, so `Authorization`
    /// must not leave the gate, whichever route the request takes.
    pub in_authorization: bool,
}

/// Looks at every copy of the product header and of `Authorization`.
pub fn presented<'a>(
    tokens: &'a [Token],
    headers: &HeaderMap,
    product_header: &HeaderName,
) -> Presented<'a> {
    let mut out = Presented::default();
    if tokens.is_empty() {
        return out;
    }
    for (name, source) in [
        (product_header, TokenSource::ProductHeader),
        (&AUTHORIZATION, TokenSource::Authorization),
    ] {
        for value in bearers(headers, name) {
            if let Some(token) = lookup(tokens, value) {
                if source == TokenSource::Authorization {
                    out.in_authorization = true;
                }
                if out.matched.is_none() {
                    out.matched = Some(TokenMatch { token, source });
                }
            }
        }
    }
    out
}

/// The configured token presented in `Authorization: Bearer` (the only
/// place a SCIM client puts it), compared like passthrough tokens.
pub fn in_authorization<'a>(tokens: &'a [Token], headers: &HeaderMap) -> Option<&'a Token> {
    bearers(headers, &AUTHORIZATION).find_map(|value| lookup(tokens, value))
}

/// The configured token presented in the product header or in
/// `Authorization: Bearer`, if any.
pub fn find<'a>(
    tokens: &'a [Token],
    headers: &HeaderMap,
    product_header: &HeaderName,
) -> Option<TokenMatch<'a>> {
    presented(tokens, headers, product_header).matched
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
    fn a_token_in_any_authorization_copy_is_seen() {
        let ph = HeaderName::from_static("x-portcullis-authorization");
        let t = tokens();
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, "Basic YXBwOnB3".parse().unwrap());
        h.append(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        let p = presented(&t, &h, &ph);
        assert!(p.in_authorization);
        assert_eq!(p.matched.unwrap().source, TokenSource::Authorization);
        // Let in by the product header, but the Authorization copy is a
        // token too: it must be removed all the same.
        let mut h = HeaderMap::new();
        h.insert(&ph, "Bearer s3cret".parse().unwrap());
        h.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        let p = presented(&t, &h, &ph);
        assert!(p.in_authorization);
        assert_eq!(p.matched.unwrap().source, TokenSource::ProductHeader);
        // The app's own credentials are not a token.
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Basic czNjcmV0".parse().unwrap());
        let p = presented(&t, &h, &ph);
        assert!(!p.in_authorization);
        assert!(p.matched.is_none());
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

    #[test]
    fn scim_token_is_read_from_authorization_only() {
        // The SCIM endpoint asks `in_authorization`: the configured token in
        // any `Authorization: Bearer` copy, never the product header.
        let ph = HeaderName::from_static("x-portcullis-authorization");
        let t = tokens();
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, "Basic YXBwOnB3".parse().unwrap());
        h.append(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(
            in_authorization(&t, &h).map(|t| t.name.as_str()),
            Some("prometheus")
        );
        let mut h = HeaderMap::new();
        h.insert(&ph, "Bearer s3cret".parse().unwrap());
        h.insert(AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(in_authorization(&t, &h).is_none());
    }
}
