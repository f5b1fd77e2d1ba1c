//! The login transaction cookie: what a started login must remember until
//! the IdP answers (return path, OIDC state/nonce/PKCE verifier, SAML
//! request id). One cookie per login, named by its random id, so logins in
//! several tabs do not clobber each other. Signed with the session key ring
//! (the browser can neither forge nor alter it), bound to this domain,
//! short-lived, and cleared on use.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::cookies::{self, CookieAttrs};
use super::{INTERNAL_COOKIE_PREFIX, KeyRing, now};
use crate::config::Config;
use crate::identity::IdpKind;

/// Distinguishes transaction tokens from session tokens: a transaction can
/// never pass as a session, nor the other way round.
const AUDIENCE_SUFFIX: &str = "#login-transaction";

/// Unfinished logins one browser may have at once.
pub const MAX_PENDING: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Random, 128 bits, hex; also the OIDC `state` / SAML `RelayState`.
    pub id: String,
    pub return_to: String,
    /// What the IdP's answer must be checked against, per login flavour.
    pub flow: LoginFlow,
    pub exp: u64,
}

/// The flavour-specific half of a login transaction: typed, so each IdP
/// module reads its own fields and a transaction of the other flavour
/// cannot be mistaken for one of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "idp", rename_all = "lowercase")]
pub enum LoginFlow {
    Oidc {
        /// The `nonce` the ID token must carry.
        nonce: String,
        /// The PKCE code verifier, when PKCE is on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pkce_verifier: Option<String>,
    },
    Saml {
        /// The AuthnRequest ID the Response's `InResponseTo` must name.
        request_id: String,
    },
}

impl LoginFlow {
    /// Which kind of login this transaction belongs to.
    pub fn idp(&self) -> IdpKind {
        match self {
            LoginFlow::Oidc { .. } => IdpKind::Oidc,
            LoginFlow::Saml { .. } => IdpKind::Saml,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    exp: u64,
    txn: Transaction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error(
        "the login transaction cookie is missing (it expired, was blocked by the browser, or the login was started elsewhere)"
    )]
    Missing,
    #[error("the login transaction cookie is invalid")]
    Invalid,
    #[error("the login took too long and its transaction expired")]
    Expired,
    #[error("the login transaction belongs to another domain")]
    WrongDomain,
}

pub struct Transactions {
    ring: Arc<KeyRing>,
    domain: String,
    lifetime: Duration,
    attrs: CookieAttrs,
    prefix: &'static str,
    validation: Validation,
}

impl Transactions {
    pub fn new(config: &Config, ring: Arc<KeyRing>) -> Transactions {
        let secure = config.session.secure_cookie;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.domain]);
        validation.set_audience(&[format!("{}{AUDIENCE_SUFFIX}", config.domain)]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 5;
        Transactions {
            ring,
            domain: config.domain.clone(),
            lifetime: config.login.transaction_lifetime,
            // The IdP may answer with a cross-site POST (SAML ACS, OIDC
            // form_post): a Lax cookie would not come with it.
            attrs: CookieAttrs {
                secure,
                same_site_none: secure,
            },
            prefix: if secure { "__Host-" } else { "" },
            validation,
        }
    }

    fn cookie_name(&self, id: &str) -> String {
        format!("{}{INTERNAL_COOKIE_PREFIX}txn_{id}", self.prefix)
    }

    /// Starts a transaction; returns it and the `Set-Cookie` value.
    pub fn begin(
        &self,
        return_to: &str,
        flow: LoginFlow,
    ) -> Result<(Transaction, String), TransactionError> {
        let exp = now() + self.lifetime.as_secs();
        let txn = Transaction {
            id: crate::random_id(16),
            return_to: return_to.to_string(),
            flow,
            exp,
        };
        let claims = Claims {
            iss: self.domain.clone(),
            aud: format!("{}{AUDIENCE_SUFFIX}", self.domain),
            exp,
            txn: txn.clone(),
        };
        let key = self.ring.active();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&key.secret))
            .map_err(|_| TransactionError::Invalid)?;
        let cookie = cookies::set_cookie(
            &self.cookie_name(&txn.id),
            &token,
            self.lifetime.as_secs(),
            self.attrs,
        );
        Ok((txn, cookie))
    }

    /// The transaction `id` from the request's cookies, verified.
    pub fn find(&self, jar: &[(&str, &str)], id: &str) -> Result<Transaction, TransactionError> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TransactionError::Missing);
        }
        let name = self.cookie_name(id);
        let token = jar
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or(TransactionError::Missing)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| TransactionError::Invalid)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|k| self.ring.get(k))
            .ok_or(TransactionError::Invalid)?;
        let claims = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&key.secret),
            &self.validation,
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TransactionError::Expired,
                K::InvalidIssuer | K::InvalidAudience => TransactionError::WrongDomain,
                _ => TransactionError::Invalid,
            }
        })?
        .claims;
        // The name and the signed content must agree: no swapping cookies.
        if claims.txn.id != id {
            return Err(TransactionError::Invalid);
        }
        Ok(claims.txn)
    }

    /// When a browser already holds [`MAX_PENDING`] unfinished logins (tabs
    /// restored, logins abandoned), `Set-Cookie` values deleting them all, so
    /// transaction cookies cannot pile up past header limits. Those logins
    /// then start over.
    pub fn evict_if_crowded(&self, jar: &[(&str, &str)]) -> Vec<String> {
        let prefix = format!("{}{INTERNAL_COOKIE_PREFIX}txn_", self.prefix);
        let pending: Vec<&str> = jar
            .iter()
            .filter_map(|(n, _)| n.strip_prefix(prefix.as_str()))
            .collect();
        if pending.len() < MAX_PENDING {
            return vec![];
        }
        pending.iter().map(|id| self.clear(id)).collect()
    }

    /// `Set-Cookie` value deleting transaction `id` (after use).
    pub fn clear(&self, id: &str) -> String {
        cookies::clear_cookie(&self.cookie_name(id), self.attrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txns(domain: &str, ring: Arc<KeyRing>) -> Transactions {
        let c = crate::config::from_yaml_str(&format!(
            "domain: {domain}\nupstream:\n  url: http://127.0.0.1:1\n"
        ))
        .unwrap();
        Transactions::new(&c, ring)
    }

    fn oidc_flow() -> LoginFlow {
        LoginFlow::Oidc {
            nonce: "n".into(),
            pkce_verifier: None,
        }
    }

    fn saml_flow() -> LoginFlow {
        LoginFlow::Saml {
            request_id: "_r".into(),
        }
    }

    fn cookie_pair(set_cookie: &str) -> (String, String) {
        let nv = set_cookie.split(';').next().unwrap();
        let (n, v) = nv.split_once('=').unwrap();
        (n.to_string(), v.to_string())
    }

    #[test]
    fn round_trip_and_cross_site_attributes() {
        let t = txns("a.example.com", Arc::new(KeyRing::generate()));
        let (txn, set) = t.begin("/x", oidc_flow()).unwrap();
        assert_eq!(txn.id.len(), 32);
        assert!(set.starts_with("__Host-portcullis_txn_"));
        assert!(
            set.contains("SameSite=None") && set.contains("Secure") && set.contains("HttpOnly")
        );
        let (n, v) = cookie_pair(&set);
        let found = t.find(&[(&n, &v)], &txn.id).unwrap();
        assert_eq!(found, txn);
        assert!(t.clear(&txn.id).contains("Max-Age=0"));
    }

    #[test]
    fn each_flavour_comes_back_typed() {
        let t = txns("a.example.com", Arc::new(KeyRing::generate()));
        let flows = [
            LoginFlow::Oidc {
                nonce: "nonce-1".into(),
                pkce_verifier: Some("verifier-1".into()),
            },
            LoginFlow::Oidc {
                nonce: "nonce-2".into(),
                pkce_verifier: None,
            },
            LoginFlow::Saml {
                request_id: "_req-3".into(),
            },
        ];
        for flow in flows {
            let (txn, set) = t.begin("/back", flow.clone()).unwrap();
            let (n, v) = cookie_pair(&set);
            let found = t.find(&[(&n, &v)], &txn.id).unwrap();
            assert_eq!(found.flow, flow);
            assert_eq!(found.return_to, "/back");
        }
    }

    #[test]
    fn flavours_serialise_tagged_by_idp() {
        let oidc = LoginFlow::Oidc {
            nonce: "n".into(),
            pkce_verifier: Some("p".into()),
        };
        assert_eq!(
            serde_json::to_string(&oidc).unwrap(),
            r#"{"idp":"oidc","nonce":"n","pkce_verifier":"p"}"#
        );
        assert_eq!(oidc.idp(), IdpKind::Oidc);
        let saml: LoginFlow = serde_json::from_str(r#"{"idp":"saml","request_id":"_r"}"#).unwrap();
        assert_eq!(
            saml,
            LoginFlow::Saml {
                request_id: "_r".into()
            }
        );
        assert_eq!(saml.idp(), IdpKind::Saml);
        // A SAML transaction lacking its request id, or an unknown flavour,
        // does not decode: the ACS never sees a half transaction.
        assert!(serde_json::from_str::<LoginFlow>(r#"{"idp":"saml"}"#).is_err());
        assert!(serde_json::from_str::<LoginFlow>(r#"{"idp":"cas","request_id":"_r"}"#).is_err());
        assert!(serde_json::from_str::<LoginFlow>(r#"{"idp":"oidc"}"#).is_err());
    }

    #[test]
    fn two_tabs_do_not_clobber() {
        let t = txns("a.example.com", Arc::new(KeyRing::generate()));
        let (a, sa) = t.begin("/a", oidc_flow()).unwrap();
        let (b, sb) = t.begin("/b", oidc_flow()).unwrap();
        let (na, va) = cookie_pair(&sa);
        let (nb, vb) = cookie_pair(&sb);
        let jar = [(na.as_str(), va.as_str()), (nb.as_str(), vb.as_str())];
        assert_eq!(t.find(&jar, &a.id).unwrap().return_to, "/a");
        assert_eq!(t.find(&jar, &b.id).unwrap().return_to, "/b");
    }

    #[test]
    fn refuses_swapped_foreign_and_missing() {
        let ring = Arc::new(KeyRing::generate());
        let t = txns("a.example.com", ring.clone());
        let other = txns("b.example.com", ring);
        let (a, sa) = t.begin("/a", saml_flow()).unwrap();
        let (b, sb) = t.begin("/b", saml_flow()).unwrap();
        let (_, va) = cookie_pair(&sa);
        let (nb, _) = cookie_pair(&sb);
        // a's value under b's name.
        assert_eq!(
            t.find(&[(nb.as_str(), va.as_str())], &b.id),
            Err(TransactionError::Invalid)
        );
        // Minted for another domain with the same keys.
        let (o, so) = other.begin("/", saml_flow()).unwrap();
        let (_, vo) = cookie_pair(&so);
        let name = format!("__Host-portcullis_txn_{}", o.id);
        assert_eq!(
            t.find(&[(name.as_str(), vo.as_str())], &o.id),
            Err(TransactionError::WrongDomain)
        );
        assert_eq!(t.find(&[], &a.id), Err(TransactionError::Missing));
        assert_eq!(t.find(&[], "../etc"), Err(TransactionError::Missing));
    }

    #[test]
    fn crowded_transactions_are_evicted() {
        let t = txns("a.example.com", Arc::new(KeyRing::generate()));
        // The README promises 4 unfinished logins per browser.
        let cookies: Vec<(String, String)> = (0..4)
            .map(|_| cookie_pair(&t.begin("/", oidc_flow()).unwrap().1))
            .collect();
        let jar: Vec<(&str, &str)> = cookies
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert!(t.evict_if_crowded(&jar[..3]).is_empty());
        let cleared = t.evict_if_crowded(&jar);
        assert_eq!(cleared.len(), 4);
        assert!(cleared.iter().all(|c| c.contains("Max-Age=0")));
    }

    #[test]
    fn a_transaction_is_not_a_session() {
        let ring = Arc::new(KeyRing::generate());
        let c = crate::config::from_yaml_str(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\n",
        )
        .unwrap();
        let t = Transactions::new(&c, ring.clone());
        let s = super::super::Sessions::new(&c, ring);
        let (_, set) = t.begin("/", oidc_flow()).unwrap();
        let (_, v) = cookie_pair(&set);
        assert!(s.decode(&v).is_err());
    }

    /// A transaction token signed with `ring`'s active key, with `exp`.
    fn token_with_exp(t: &Transactions, ring: &KeyRing, id: &str, exp: u64) -> String {
        let claims = Claims {
            iss: t.domain.clone(),
            aud: format!("{}{AUDIENCE_SUFFIX}", t.domain),
            exp,
            txn: Transaction {
                id: id.into(),
                return_to: "/".into(),
                flow: oidc_flow(),
                exp,
            },
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(ring.active().kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&ring.active().secret),
        )
        .unwrap()
    }

    #[test]
    fn an_expired_transaction_is_refused_after_the_leeway() {
        let ring = Arc::new(KeyRing::generate());
        let t = txns("a.example.com", ring.clone());
        let id = "ab".repeat(16);
        let name = t.cookie_name(&id);
        let at = |exp: u64| {
            let tok = token_with_exp(&t, &ring, &id, exp);
            t.find(&[(name.as_str(), tok.as_str())], &id).map(|x| x.id)
        };
        assert_eq!(at(now() + 60), Ok(id.clone()));
        assert_eq!(at(now() - 2), Ok(id.clone()), "within 5 s of leeway");
        assert_eq!(at(now() - 30), Err(TransactionError::Expired));
    }

    #[test]
    fn lives_for_the_configured_lifetime() {
        let c = crate::config::from_yaml_str(
            "domain: a.example.com\nupstream:\n  url: http://127.0.0.1:1\nlogin:\n  transaction_lifetime: 7m\n",
        )
        .unwrap();
        let t = Transactions::new(&c, Arc::new(KeyRing::generate()));
        let before = now();
        let (txn, set) = t.begin("/", oidc_flow()).unwrap();
        assert!(set.contains("; Max-Age=420;"), "{set}");
        assert!(
            (before + 420..=now() + 420).contains(&txn.exp),
            "{}",
            txn.exp
        );
    }

    #[test]
    fn signed_by_another_ring_or_tampered_is_invalid() {
        let ring = Arc::new(KeyRing::generate());
        let t = txns("a.example.com", ring.clone());
        let stranger = KeyRing::generate();
        let id = "cd".repeat(16);
        let name = t.cookie_name(&id);
        let foreign = token_with_exp(&t, &stranger, &id, now() + 60);
        assert_eq!(
            t.find(&[(name.as_str(), foreign.as_str())], &id),
            Err(TransactionError::Invalid),
            "a kid not in the ring"
        );
        // Our kid, another key's signature.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.json");
        stranger.write(&file).unwrap();
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        json["keys"][0]["kid"] = ring.active().kid.as_str().into();
        std::fs::write(&file, json.to_string()).unwrap();
        let forged_ring = KeyRing::load(&file).unwrap();
        let forged = token_with_exp(&t, &forged_ring, &id, now() + 60);
        assert_eq!(
            t.find(&[(name.as_str(), forged.as_str())], &id),
            Err(TransactionError::Invalid)
        );
        assert_eq!(
            t.find(&[(name.as_str(), "not-a-jwt")], &id),
            Err(TransactionError::Invalid)
        );
    }

    #[test]
    fn ids_are_32_hex_digits_and_odd_ones_are_never_looked_up() {
        let t = txns("a.example.com", Arc::new(KeyRing::generate()));
        let (txn, _) = t.begin("/", oidc_flow()).unwrap();
        assert!(txn.id.bytes().all(|b| b.is_ascii_hexdigit()));
        let (other, _) = t.begin("/", oidc_flow()).unwrap();
        assert_ne!(txn.id, other.id);
        for odd in ["", "g1", "ab/cd", &"a".repeat(65)] {
            let name = t.cookie_name(odd);
            assert_eq!(
                t.find(&[(name.as_str(), "x")], odd),
                Err(TransactionError::Missing),
                "{odd:?}"
            );
        }
        // 64 hex digits is still an id (then judged by its cookie).
        let long = "a".repeat(64);
        let name = t.cookie_name(&long);
        assert_eq!(
            t.find(&[(name.as_str(), "x")], &long),
            Err(TransactionError::Invalid)
        );
    }

    #[test]
    fn plain_http_transactions_have_no_prefix_and_are_lax() {
        let c = crate::config::from_yaml_str(
            "domain: localhost:8080\nscheme: http\nupstream:\n  url: http://127.0.0.1:1\nsession:\n  secure_cookie: false\n",
        )
        .unwrap();
        let t = Transactions::new(&c, Arc::new(KeyRing::generate()));
        let (txn, set) = t.begin("/", oidc_flow()).unwrap();
        assert!(
            set.starts_with(&format!("portcullis_txn_{}=", txn.id)),
            "{set}"
        );
        assert!(set.ends_with("; Path=/; HttpOnly; SameSite=Lax"), "{set}");
        assert_eq!(
            t.clear(&txn.id),
            format!(
                "portcullis_txn_{}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax",
                txn.id
            )
        );
    }

    #[test]
    fn only_transaction_cookies_count_towards_the_crowd() {
        let t = txns("a.example.com", Arc::new(KeyRing::generate()));
        let jar = [
            ("__Host-portcullis_session", "s"),
            ("__Host-portcullis_loop", "1"),
            ("__Host-portcullis_txn_aa", "1"),
            ("__Host-portcullis_txn_bb", "1"),
            ("__Host-portcullis_txn_cc", "1"),
            ("portcullis_txn_dd", "unprefixed: not this gate's"),
            ("app", "1"),
        ];
        assert!(t.evict_if_crowded(&jar).is_empty(), "three of ours");
        let mut jar = jar.to_vec();
        jar.push(("__Host-portcullis_txn_ee", "1"));
        let cleared = t.evict_if_crowded(&jar);
        let names: Vec<&str> = cleared
            .iter()
            .map(|c| c.split('=').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "__Host-portcullis_txn_aa",
                "__Host-portcullis_txn_bb",
                "__Host-portcullis_txn_cc",
                "__Host-portcullis_txn_ee"
            ]
        );
    }
}
