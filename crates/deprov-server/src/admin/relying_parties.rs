//! Relying parties of a tenant: the applications that receive back-channel logouts.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use deprov_revocation::keys::KeyRing;
use deprov_store::Store;

use super::auth::Actor;
use super::extract::Body;
use super::problem::{AdminError, Problem};
use super::views::{PatchRelyingPartyRequest, RelyingPartyRequest, RelyingPartyView};
use crate::config::Config;

/// List a tenant's relying parties.
#[utoipa::path(get, path = "/tenants/{tenant}/relying-parties", operation_id = "list_relying_parties", tag = "relying parties",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The tenant's relying parties, by client_id", body = [RelyingPartyView]),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    _actor: Actor,
    store: web::Data<Store>,
    tenant: web::Path<String>,
) -> Result<web::Json<Vec<RelyingPartyView>>, AdminError> {
    let rps = store.list_relying_parties(&tenant).await?;
    Ok(web::Json(rps.into_iter().map(Into::into).collect()))
}

/// Register a relying party (the same checks as `deprov rp add`).
#[utoipa::path(post, path = "/tenants/{tenant}/relying-parties", operation_id = "create_relying_party", tag = "relying parties",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = RelyingPartyRequest,
    responses(
        (status = 201, description = "Registered", body = RelyingPartyView),
        (status = 400, description = "A field is not acceptable; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant has a relying party with this client_id", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    actor: Actor,
    store: web::Data<Store>,
    config: web::Data<Config>,
    keys: web::Data<Arc<KeyRing>>,
    tenant: web::Path<String>,
    Body(req): Body<RelyingPartyRequest>,
) -> Result<HttpResponse, AdminError> {
    let new = req
        .validate(&config)
        .map_err(|e| AdminError::invalid(e.field, e.message))?;
    let alg = new.alg;
    let rp = store
        .add_relying_party(&tenant, new, actor.as_str())
        .await?;
    // Its key exists (and is published) before the first logout token needs it.
    keys.ensure_key(alg).await?;
    Ok(HttpResponse::Created().json(RelyingPartyView::from(rp)))
}

/// Show one relying party, by id or client_id.
#[utoipa::path(get, path = "/tenants/{tenant}/relying-parties/{rp}", operation_id = "show_relying_party", tag = "relying parties",
    params(
        ("tenant" = String, Path, description = "Tenant name"),
        ("rp" = String, Path, description = "The relying party's id or client_id"),
    ),
    responses(
        (status = 200, description = "The relying party", body = RelyingPartyView),
        (status = 404, description = "No such tenant, or no such relying party of it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    _actor: Actor,
    store: web::Data<Store>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<RelyingPartyView>, AdminError> {
    let (tenant, rp) = path.into_inner();
    Ok(web::Json(store.relying_party(&tenant, &rp).await?.into()))
}

/// Enable or disable a relying party. A disabled one is sent nothing: no delivery is
/// enqueued for it, and those already waiting are cancelled when next claimed.
#[utoipa::path(patch, path = "/tenants/{tenant}/relying-parties/{rp}", operation_id = "patch_relying_party", tag = "relying parties",
    params(
        ("tenant" = String, Path, description = "Tenant name"),
        ("rp" = String, Path, description = "The relying party's id or client_id"),
    ),
    request_body = PatchRelyingPartyRequest,
    responses(
        (status = 200, description = "The relying party as it is now", body = RelyingPartyView),
        (status = 400, description = "A field is not acceptable; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or no such relying party of it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch(
    actor: Actor,
    store: web::Data<Store>,
    path: web::Path<(String, String)>,
    Body(req): Body<PatchRelyingPartyRequest>,
) -> Result<web::Json<RelyingPartyView>, AdminError> {
    let (tenant, rp) = path.into_inner();
    let updated = store
        .set_relying_party_enabled(&tenant, &rp, req.enabled, actor.as_str())
        .await?;
    Ok(web::Json(updated.into()))
}

/// Remove a relying party, by id or client_id. Its deliveries keep their record.
#[utoipa::path(delete, path = "/tenants/{tenant}/relying-parties/{rp}", operation_id = "delete_relying_party", tag = "relying parties",
    params(
        ("tenant" = String, Path, description = "Tenant name"),
        ("rp" = String, Path, description = "The relying party's id or client_id"),
    ),
    responses(
        (status = 200, description = "The removed relying party", body = RelyingPartyView),
        (status = 404, description = "No such tenant, or no such relying party of it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    actor: Actor,
    store: web::Data<Store>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<RelyingPartyView>, AdminError> {
    let (tenant, rp) = path.into_inner();
    let removed = store
        .remove_relying_party(&tenant, &rp, actor.as_str())
        .await?;
    Ok(web::Json(removed.into()))
}
