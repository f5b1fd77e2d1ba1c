//! Why an OpenID Connect callback did not sign the browser in: one variant
//! per check of `/.portcullis/oidc/callback`, in the order the callback
//! runs them. `Display` is the audit reason (never a token or code); the
//! page the user sees comes from [`CallbackError::page_kind`] and
//! [`CallbackError::user_detail`].

use crate::pages::PageKind;
use crate::session::TransactionError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The request itself is unusable (wrong method, form too large).
    #[error("{0}")]
    Request(&'static str),
    /// The transaction cookie named by `state` is a SAML login's.
    #[error("transaction belongs to another login kind")]
    OtherLoginKind,
    /// No live login transaction of this browser matches `state`.
    #[error("state/transaction check failed: {0}")]
    Transaction(TransactionError),
    /// The provider answered with an OAuth error instead of a code.
    /// `error` is kept short for the log; `description` is shown.
    #[error("provider returned error `{error}`")]
    Provider { error: String, description: String },
    /// Neither a code nor an error.
    #[error("callback without code")]
    NoCode,
    /// The login transaction holds no nonce (only a bug could sign one):
    /// never compared with a token's, which could be empty too.
    #[error("the sign-in transaction carries no nonce")]
    NoNonce,
    /// The discovery document is not loaded (the provider was never
    /// reached and no cache exists).
    #[error("provider not loaded")]
    ProviderNotLoaded,
    /// The discovery document names no token endpoint.
    #[error("token endpoint not configured: {0}")]
    NoTokenEndpoint(String),
    /// The token endpoint refused the code (reused, expired, wrong PKCE
    /// verifier, wrong client credentials).
    #[error("token endpoint refused the code: {0}")]
    CodeRefused(String),
    /// The token endpoint could not be reached.
    #[error("token endpoint unreachable: {0}")]
    TokenEndpointUnreachable(String),
    /// The token endpoint's answer is not a token response.
    #[error("token endpoint answer not understood: {0}")]
    TokenAnswer(String),
    /// The token response carries no ID token.
    #[error("token response without an ID token")]
    NoIdToken,
    /// The ID token failed a check: signature, algorithm, iss, aud, azp,
    /// exp, iat or nonce.
    #[error("ID token refused: {0}")]
    IdToken(String),
    /// `oidc.userinfo` is on but the provider names no userinfo endpoint.
    #[error("userinfo not configured: {0}")]
    NoUserinfoEndpoint(String),
    /// The userinfo request failed.
    #[error("userinfo failed: {0}")]
    Userinfo(String),
    /// No claim of the mapping holds a user name.
    #[error("ID token has no claim usable as the user name")]
    NoUserName,
    /// A failure only the operator can fix (see `idp::diagnose`): the
    /// user sees the "misconfigured" page, the audit reason the fix.
    #[error("{what}; operator fix: {fix}")]
    Misconfigured { what: String, fix: String },
    /// Entra ID group overage: the ID token points at `_claim_names.groups`
    /// instead of carrying the groups.
    #[error(
        "the ID token carries no groups but a group overage reference (_claim_names.groups); operator fix: in Entra ID emit groups as app roles, or set the token's groups claim to \"groups assigned to the application\" and assign only the groups this application needs"
    )]
    GroupOverage,
    /// The email's domain is not one of `oidc.allowed_email_domains`.
    #[error("email domain not in oidc.allowed_email_domains")]
    EmailDomain,
}

impl CallbackError {
    /// The page shown for it.
    pub fn page_kind(&self) -> PageKind {
        match self {
            CallbackError::Request(_) => PageKind::BadRequest,
            CallbackError::Provider { error, .. } if error == "access_denied" => {
                PageKind::Forbidden
            }
            CallbackError::EmailDomain => PageKind::Forbidden,
            CallbackError::Misconfigured { .. } | CallbackError::GroupOverage => {
                PageKind::Misconfigured
            }
            CallbackError::ProviderNotLoaded | CallbackError::TokenEndpointUnreachable(_) => {
                PageKind::IdpUnavailable
            }
            _ => PageKind::LoginFailed,
        }
    }

    /// What the page says beyond its kind's text, for the user.
    pub fn user_detail(&self) -> Option<String> {
        match self {
            CallbackError::Transaction(_) => Some(
                "This sign-in answer does not belong to a sign-in started in this browser, or it took too long. Open the application's address again to start over.".into(),
            ),
            CallbackError::GroupOverage => Some(
                "You are a member of more groups than the identity provider puts in a sign-in token, so this application cannot see your groups. Ask the administrator of this application to limit the groups sent for it.".into(),
            ),
            CallbackError::Provider { description, .. } => {
                Some(format!("The identity provider said: {description}"))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_page_and_audit_reason() {
        let denied = CallbackError::Provider {
            error: "access_denied".into(),
            description: "User cancelled".into(),
        };
        assert_eq!(denied.page_kind(), PageKind::Forbidden);
        assert_eq!(
            denied.to_string(),
            "provider returned error `access_denied`"
        );
        assert_eq!(
            denied.user_detail().as_deref(),
            Some("The identity provider said: User cancelled")
        );
        let other = CallbackError::Provider {
            error: "server_error".into(),
            description: "server_error".into(),
        };
        assert_eq!(other.page_kind(), PageKind::LoginFailed);
        assert_eq!(
            CallbackError::Request("callback with an unexpected method").page_kind(),
            PageKind::BadRequest
        );
        assert_eq!(
            CallbackError::TokenEndpointUnreachable("x".into()).page_kind(),
            PageKind::IdpUnavailable
        );
        assert_eq!(CallbackError::EmailDomain.page_kind(), PageKind::Forbidden);
        assert_eq!(CallbackError::NoCode.user_detail(), None);
        assert_eq!(
            CallbackError::Transaction(TransactionError::Missing).to_string(),
            format!(
                "state/transaction check failed: {}",
                TransactionError::Missing
            )
        );
    }
}
