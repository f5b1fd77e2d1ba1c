//! SCIM errors and their wire form (RFC 7644 §3.12): the HTTP status, the
//! `urn:ietf:params:scim:api:messages:2.0:Error` body with `status`, the
//! `scimType` where the RFC defines one, and a `detail` saying what was
//! wrong and what to do.

use http::StatusCode;
use serde_json::json;

use super::directory::DirectoryError;

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    #[error(
        "a SCIM call needs `Authorization: Bearer TOKEN` with a token whose hash is in `scim.tokens`"
    )]
    Unauthorized,
    /// The body is not JSON, or not the message the endpoint takes.
    #[error("{0}")]
    InvalidSyntax(String),
    #[error("{0}")]
    InvalidValue(String),
    #[error("{0}")]
    InvalidFilter(String),
    #[error("{0}")]
    InvalidPath(String),
    #[error("{0}")]
    Uniqueness(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the request body is larger than {0} bytes; send fewer members per call")]
    TooLarge(usize),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Directory(#[from] DirectoryError),
    #[error("the SCIM change was stored, but the sessions could not be revoked: {0}")]
    Revocation(#[from] crate::revocation::StoreError),
}

impl ScimError {
    pub fn status(&self) -> StatusCode {
        match self {
            ScimError::Unauthorized => StatusCode::UNAUTHORIZED,
            ScimError::InvalidSyntax(_)
            | ScimError::InvalidValue(_)
            | ScimError::InvalidFilter(_)
            | ScimError::InvalidPath(_) => StatusCode::BAD_REQUEST,
            ScimError::Uniqueness(_) => StatusCode::CONFLICT,
            ScimError::NotFound(_) => StatusCode::NOT_FOUND,
            ScimError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ScimError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ScimError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ScimError::Directory(_) | ScimError::Revocation(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 7644 §3.12 `scimType`, where one applies.
    pub fn scim_type(&self) -> Option<&'static str> {
        match self {
            ScimError::InvalidSyntax(_) => Some("invalidSyntax"),
            ScimError::InvalidValue(_) => Some("invalidValue"),
            ScimError::InvalidFilter(_) => Some("invalidFilter"),
            ScimError::InvalidPath(_) => Some("invalidPath"),
            ScimError::Uniqueness(_) => Some("uniqueness"),
            _ => None,
        }
    }

    /// The error body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status().as_u16().to_string(),
            "detail": self.to_string(),
        });
        if let Some(t) = self.scim_type() {
            body["scimType"] = json!(t);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_has_the_rfcs_fields() {
        let e = ScimError::Uniqueness("taken".into());
        assert_eq!(
            e.body(),
            json!({"schemas": [ERROR_SCHEMA], "status": "409", "scimType": "uniqueness", "detail": "taken"})
        );
        assert_eq!(ScimError::Unauthorized.body()["status"], "401");
        assert!(ScimError::Unauthorized.body().get("scimType").is_none());
    }
}
