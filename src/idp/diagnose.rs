//! Login failures only the operator can fix (the client's registration,
//! scopes, audience, issuer, clocks, keys): the user gets the one-sentence
//! "sign-in is misconfigured" page with the request id, never the raw
//! protocol error; the audit line carries the reason and the exact fix.

use openidconnect::{ClaimsVerificationError, SignatureVerificationError};

use crate::config::oidc::Oidc;

/// `error` values of an authorization answer (RFC 6749 §4.1.2.1) that
/// come from the client's configuration, and their fix.
pub fn authorization_error(error: &str) -> Option<&'static str> {
    Some(match error {
        "invalid_scope" => {
            "the provider refuses a scope in oidc.scopes for this client: remove it, or allow it for the client at the provider"
        }
        "unauthorized_client" => {
            "the client may not use the authorization code flow: enable it (\"standard flow\" / \"authorization code\") for the client at the provider"
        }
        "unsupported_response_type" => {
            "the provider does not offer response_type=code to this client: enable the authorization code flow for it"
        }
        "invalid_request" => {
            "the provider refuses the authorization request: check that https://DOMAIN/.portcullis/oidc/callback is a registered redirect URI and oidc.extra_auth_params (`portcullis doctor` checks the redirect URI)"
        }
        _ => return None,
    })
}

/// `error` values of the token endpoint (RFC 6749 §5.2) that come from
/// the client's configuration.
pub fn token_error(error: &str) -> Option<&'static str> {
    Some(match error {
        "invalid_client" => {
            "the token endpoint refuses the client's credentials: check oidc.client_id, the secret (client_secret / client_secret_file) and oidc.token_endpoint_auth against the client at the provider"
        }
        "unauthorized_client" => {
            "the client may not use the authorization code grant: enable it for the client at the provider"
        }
        _ => return None,
    })
}

/// ID-token checks that fail for every user until the operator acts.
pub fn id_token_error(e: &ClaimsVerificationError, cfg: &Oidc) -> Option<String> {
    Some(match e {
        ClaimsVerificationError::InvalidAudience(_) => format!(
            "the ID token is not for client `{}`: set oidc.client_id to the client the provider issues tokens for",
            cfg.client_id
        ),
        ClaimsVerificationError::InvalidIssuer(_) => format!(
            "the ID token's issuer is not `{}`: set oidc.issuer exactly as the provider's discovery document writes it (`portcullis doctor` shows it)",
            cfg.issuer
        ),
        ClaimsVerificationError::Expired(_) => format!(
            "the ID token is expired or not yet valid by this machine's clock: synchronise the clocks (NTP, `timedatectl`); oidc.clock_skew is {} s",
            cfg.clock_skew.as_secs()
        ),
        ClaimsVerificationError::SignatureVerification(s) => match s {
            SignatureVerificationError::DisallowedAlg(_) => format!(
                "the provider signs ID tokens with an algorithm not in oidc.allowed_algorithms ({}): add it",
                cfg.allowed_algorithms.join(", ")
            ),
            SignatureVerificationError::NoMatchingKey => {
                "no key at the provider's jwks_uri verifies the ID token (certificate mismatch): check oidc.issuer / oidc.jwks_uri and the provider's signing keys".to_string()
            }
            _ => return None,
        },
        _ => return None,
    })
}
