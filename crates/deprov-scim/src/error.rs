//! The one SCIM error type and the one place it becomes an HTTP response
//! (RFC 7644 §3.12).
//!
//! Every failure of a SCIM request — bad JSON, an unknown attribute, a wrong token, a
//! missing resource, a store failure — ends up as a [`ScimError`], and
//! [`ScimError::error_response`] renders all of them the same way:
//! `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400",
//! "scimType":"invalidPath","detail":"…"}` with `Content-Type: application/scim+json`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use deprov_store::StoreError;
use scim_v2::models::errors::{ScimHttpError, ScimType};

/// The media type of every SCIM response body (RFC 7644 §3.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// A SCIM error: an HTTP status, an optional RFC 7644 §3.12 `scimType`, and a detail for
/// the client. Internal causes are logged where they happen and never put in `detail`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {}: {detail}", scim_type.as_ref().map(ScimType::as_str).unwrap_or("-"))]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<ScimType>,
    pub detail: String,
}

pub type ScimResult<T> = Result<T, ScimError>;

impl ScimError {
    pub fn new(status: StatusCode, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    /// 400 with a `scimType` (RFC 7644 Table 9).
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidFilter, detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidPath, detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidValue, detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidSyntax, detail)
    }

    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::Mutability, detail)
    }

    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::NoTarget, detail)
    }

    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::TooMany, detail)
    }

    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some(ScimType::Uniqueness), detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid SCIM token of this tenant is required (Authorization: Bearer <token>, or HTTP Basic with the token as password)",
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            "this method is not supported on this endpoint",
        )
    }

    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            "the resource has changed: its version does not match If-Match",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("the request body is larger than {limit} bytes"),
        )
    }

    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            format!("content type {got:?} is not accepted; send application/scim+json"),
        )
    }

    /// 500 for a failure that is not the client's. The cause is logged here, with the
    /// request's span, and never sent.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "SCIM request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "internal error; the request id identifies it in the server log",
        )
    }

    /// The RFC 7644 §3.12 body.
    pub fn body(&self) -> ScimHttpError {
        ScimHttpError {
            scim_type: self.scim_type.clone(),
            detail: Some(self.detail.clone()),
            status: self.status.as_u16().to_string(),
            ..ScimHttpError::default()
        }
    }
}

impl ResponseError for ScimError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE));
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3 and RFC 7617 §2: one challenge per accepted scheme.
            response.append_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"deprov\""),
            ));
            response.append_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"deprov\", charset=\"UTF-8\""),
            ));
        }
        match serde_json::to_vec(&self.body()) {
            Ok(bytes) => response.body(bytes),
            Err(_) => response.finish(),
        }
    }
}

/// A scim_v2 validation failure names the attribute by its wire path and carries the
/// `scimType` RFC 7644 §3.12 expects.
impl From<scim_v2::ValidationError> for ScimError {
    fn from(err: scim_v2::ValidationError) -> Self {
        ScimError::bad_request(err.scim_type(), err.to_string())
    }
}

/// Store errors that mean something to a SCIM client become 4xx; the rest are 500s.
impl From<StoreError> for ScimError {
    fn from(err: StoreError) -> Self {
        crate::store_errors::translate(err)
    }
}
