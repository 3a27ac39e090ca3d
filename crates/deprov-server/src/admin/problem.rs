//! The admin API's errors: one enum, turned into an RFC 9457 problem document
//! (`application/problem+json`) in exactly one place ([`ResponseError`] below).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use deprov_revocation::keys::KeyError;
use deprov_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of problem documents (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `WWW-Authenticate` challenge of the admin API (RFC 6750 §3).
pub const CHALLENGE: &str = "Bearer realm=\"deprov-admin\"";

/// An RFC 9457 problem document. `type` is always `about:blank`, so `title` is the HTTP
/// status phrase and `detail` says what happened; a bad input also names its `field`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub type_: String,
    #[schema(example = "Bad Request")]
    pub title: String,
    #[schema(example = 400)]
    pub status: u16,
    #[schema(example = "backchannel_logout_uri: \"ftp://x\" must be an https URL")]
    pub detail: String,
    /// The request field (body member, query parameter) at fault, for 400 answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "backchannel_logout_uri")]
    pub field: Option<String>,
}

/// Everything an admin request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No bearer token, or not an admin token. `presented` says whether one was sent.
    #[error("a valid admin bearer token is required")]
    Unauthorized { presented: bool },
    /// Bad input: which field, and what is wrong with it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A body that is not JSON of the expected shape, where no single field is at fault.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// No route for this method and path.
    #[error("no route {method} {path}")]
    NoRoute { method: String, path: String },
    /// The path exists, not with this method; `allow` lists those it has.
    #[error("{path} does not take {method} (it takes {})", .allow.join(", "))]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: Vec<String>,
    },
    /// Anything unexpected: logged with its cause chain, answered without it.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AdminError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    fn problem(&self) -> Problem {
        let status = self.status_code();
        let (detail, field) = match self {
            Self::Invalid { field, .. } => (self.to_string(), Some(field.clone())),
            Self::Internal(_) => (
                "internal error; the server log has the cause".to_owned(),
                None,
            ),
            other => (other.to_string(), None),
        };
        Problem {
            type_: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            field,
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<KeyError> for AdminError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::UnknownKey(_) => Self::NotFound(e.to_string()),
            KeyError::AlreadyStored(_) => Self::Conflict(e.to_string()),
            KeyError::Store(s) => s.into(),
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Invalid { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) | Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(e) = self {
            tracing::error!(error = format!("{e:#}"), "admin API request failed");
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if let Self::MethodNotAllowed { allow, .. } = self
            && let Ok(value) = HeaderValue::from_str(&allow.join(", "))
        {
            res.insert_header((header::ALLOW, value));
        }
        if let Self::Unauthorized { presented } = self {
            // RFC 6750 §3.1: an error code only when a token was presented.
            let challenge = if *presented {
                "Bearer realm=\"deprov-admin\", error=\"invalid_token\""
            } else {
                CHALLENGE
            };
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            ));
        }
        res.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}
