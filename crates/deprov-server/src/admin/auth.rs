//! Admin authentication: `Authorization: Bearer <token>`, where the token is the configured
//! `DEPROV_ADMIN_TOKEN` or a live stored `deprov_admin_…` token.
//!
//! A middleware on the `/admin/v1` scope authenticates every request before anything else
//! (before a body is read or a query parsed, so an anonymous caller learns nothing from
//! validation errors) and leaves the [`Actor`] in the request; handlers take the [`Actor`]
//! for their audit records. The extractor fails closed: a handler reached without the
//! middleware answers 401.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use deprov_core::TokenHash;
use deprov_store::Store;

use super::problem::AdminError;
use crate::config::Config;

/// Who is making an admin request, as written in the audit log: `admin:<token hint>`, or
/// `admin:DEPROV_ADMIN_TOKEN` for the configured token (whose characters are never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromRequest for Actor {
    type Error = AdminError;
    type Future = Ready<Result<Self, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Actor>()
                .cloned()
                .ok_or(AdminError::Unauthorized { presented: false }),
        )
    }
}

/// The bearer token of a request, if it carries one.
fn bearer(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Which admin token authenticated a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AdminCredential {
    /// The configured `DEPROV_ADMIN_TOKEN`.
    Configured,
    /// A stored `deprov_admin_…` token, by id (it can be revoked).
    Stored(String),
}

/// Who `presented` is and by which token, or `None`. Shared with the web console's
/// sign-in, so that both accept exactly the same tokens.
pub(crate) async fn authenticate(
    config: &Config,
    store: &Store,
    presented: &str,
) -> Result<Option<(Actor, AdminCredential)>, AdminError> {
    if let Some(configured) = &config.admin_token {
        // Both sides hashed first, so the comparison is constant-time over equal lengths.
        if TokenHash::of(presented).matches(&TokenHash::of(configured.expose())) {
            return Ok(Some((
                Actor("admin:DEPROV_ADMIN_TOKEN".to_owned()),
                AdminCredential::Configured,
            )));
        }
    }
    Ok(store.authenticate_admin(presented).await?.map(|t| {
        (
            Actor(format!("admin:{}", t.hint)),
            AdminCredential::Stored(t.id),
        )
    }))
}

/// The middleware: answers 401 unless the request carries an admin token.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(presented) = bearer(&req) else {
        return Err(AdminError::Unauthorized { presented: false }.into());
    };
    let (Some(config), Some(store)) = (
        req.app_data::<web::Data<Config>>(),
        req.app_data::<web::Data<Store>>(),
    ) else {
        return Err(AdminError::Internal(anyhow::anyhow!(
            "the admin API is mounted without its configuration or store"
        ))
        .into());
    };
    match authenticate(config, store, &presented).await? {
        Some((actor, _)) => {
            req.extensions_mut().insert(actor);
            next.call(req).await
        }
        None => Err(AdminError::Unauthorized { presented: true }.into()),
    }
}
