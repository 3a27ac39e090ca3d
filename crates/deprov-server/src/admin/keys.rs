//! Signing keys of logout tokens.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use deprov_core::SigningAlgorithm;
use deprov_revocation::keys::KeyRing;

use super::auth::Actor;
use super::extract::Body;
use super::problem::{AdminError, Problem};
use super::views::{KeyView, RotateKeyRequest, RotationView};

/// List signing keys (public parts only), oldest first.
#[utoipa::path(get, path = "/keys", operation_id = "list_keys", tag = "keys",
    responses((status = 200, description = "Every signing key", body = [KeyView])))]
pub async fn list(
    _actor: Actor,
    keys: web::Data<Arc<KeyRing>>,
) -> Result<web::Json<Vec<KeyView>>, AdminError> {
    let list = keys.list().await?;
    Ok(web::Json(list.into_iter().map(KeyView::from).collect()))
}

/// Make a new default key for an algorithm. The old one is retired and stays in the JWKS
/// until every token it signed has expired.
#[utoipa::path(post, path = "/keys/rotate", operation_id = "rotate_key", tag = "keys",
    request_body = RotateKeyRequest,
    responses(
        (status = 201, description = "The new key and the retired ones", body = RotationView),
        (status = 400, description = "Not a supported algorithm", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another rotation of this algorithm won", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate(
    actor: Actor,
    keys: web::Data<Arc<KeyRing>>,
    Body(req): Body<RotateKeyRequest>,
) -> Result<HttpResponse, AdminError> {
    let alg =
        SigningAlgorithm::parse(&req.alg).map_err(|e| AdminError::invalid("alg", e.to_string()))?;
    let rotation = keys.rotate(alg, actor.as_str()).await?;
    Ok(HttpResponse::Created().json(RotationView::from(rotation)))
}
