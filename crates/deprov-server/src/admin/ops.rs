//! Targets at OpenID Providers and authorization servers of a tenant (`deprov op …`):
//! RFC 7009 revocation clients, Global Token Revocation endpoints, provider admin APIs.
//! Secrets go in, never out: every view shows `"[sealed]"` in their place.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use deprov_revocation::keys::KeyRing;
use deprov_store::Store;
use deprov_store::grants::GrantInfo;
use deprov_store::op_targets::{KIND_OAUTH_REVOCATION, op_kinds};

use super::auth::Actor;
use super::extract::Body;
use super::problem::{AdminError, Problem};
use crate::config::Config;
use crate::ops::{OpContext, OpTargetRequest, OpTargetView};

/// List a tenant's OP targets.
#[utoipa::path(get, path = "/tenants/{tenant}/ops", operation_id = "list_ops", tag = "ops",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The tenant's OP targets, by kind and client_id", body = [OpTargetView]),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    _actor: Actor,
    store: web::Data<Store>,
    config: web::Data<Config>,
    tenant: web::Path<String>,
) -> Result<web::Json<Vec<OpTargetView>>, AdminError> {
    let public_url = config.public_url();
    let targets = store.list_targets(&tenant, &op_kinds()).await?;
    Ok(web::Json(
        targets
            .into_iter()
            .map(|t| OpTargetView::of(t, &public_url))
            .collect(),
    ))
}

/// Register an OP target (the same checks as `deprov op add`). For `oauth_revocation`
/// the answer carries, once, the `grants_api_secret` the application authenticates with.
#[utoipa::path(post, path = "/tenants/{tenant}/ops", operation_id = "create_op", tag = "ops",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = OpTargetRequest,
    responses(
        (status = 201, description = "Registered", body = OpTargetView),
        (status = 400, description = "A field is not acceptable; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant has a target of this kind with this client_id", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    actor: Actor,
    store: web::Data<Store>,
    config: web::Data<Config>,
    keys: web::Data<Arc<KeyRing>>,
    tenant: web::Path<String>,
    Body(req): Body<OpTargetRequest>,
) -> Result<HttpResponse, AdminError> {
    let tenant_row = store.tenant(&tenant).await?;
    let prepared = req.prepare(OpContext {
        kek: keys.kek(),
        policy: config.address_policy(),
        tenant_id: &tenant_row.id,
    })?;
    let target = store
        .add_target(&tenant, prepared.target, prepared.audit, actor.as_str())
        .await?;
    let mut view = OpTargetView::of(target, &config.public_url());
    view.grants_api_secret = prepared.grants_api_secret.map(|s| s.expose().to_owned());
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(view))
}

/// Show one OP target, by id or client_id.
#[utoipa::path(get, path = "/tenants/{tenant}/ops/{op}", operation_id = "show_op", tag = "ops",
    params(
        ("tenant" = String, Path, description = "Tenant name"),
        ("op" = String, Path, description = "The target's id or client_id"),
    ),
    responses(
        (status = 200, description = "The OP target", body = OpTargetView),
        (status = 404, description = "No such tenant, or no such target of it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The client_id names targets of several kinds: use the id", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    _actor: Actor,
    store: web::Data<Store>,
    config: web::Data<Config>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<OpTargetView>, AdminError> {
    let (tenant, op) = path.into_inner();
    let target = store.find_target(&tenant, &op_kinds(), &op).await?;
    Ok(web::Json(OpTargetView::of(target, &config.public_url())))
}

/// What PATCH may change on an OP target.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchOpRequest {
    pub enabled: bool,
}

/// Enable or disable an OP target. A disabled one is sent nothing: no delivery is enqueued
/// for it, and those already waiting are cancelled when next claimed. Its grants are kept.
#[utoipa::path(patch, path = "/tenants/{tenant}/ops/{op}", operation_id = "patch_op", tag = "ops",
    params(
        ("tenant" = String, Path, description = "Tenant name"),
        ("op" = String, Path, description = "The target's id or client_id"),
    ),
    request_body = PatchOpRequest,
    responses(
        (status = 200, description = "The target as it is now", body = OpTargetView),
        (status = 400, description = "A field is not acceptable; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or no such target of it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch(
    actor: Actor,
    store: web::Data<Store>,
    config: web::Data<Config>,
    path: web::Path<(String, String)>,
    Body(req): Body<PatchOpRequest>,
) -> Result<web::Json<OpTargetView>, AdminError> {
    let (tenant, op) = path.into_inner();
    let updated = store
        .set_target_enabled(&tenant, &op_kinds(), &op, req.enabled, actor.as_str())
        .await?;
    Ok(web::Json(OpTargetView::of(updated, &config.public_url())))
}

/// Remove an OP target, by id or client_id. Its grants are deleted with it (deprov could
/// no longer authenticate to revoke them); its deliveries keep their record.
#[utoipa::path(delete, path = "/tenants/{tenant}/ops/{op}", operation_id = "delete_op", tag = "ops",
    params(
        ("tenant" = String, Path, description = "Tenant name"),
        ("op" = String, Path, description = "The target's id or client_id"),
    ),
    responses(
        (status = 200, description = "The removed target", body = OpTargetView),
        (status = 404, description = "No such tenant, or no such target of it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The client_id names targets of several kinds: use the id", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    actor: Actor,
    store: web::Data<Store>,
    config: web::Data<Config>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<OpTargetView>, AdminError> {
    let (tenant, op) = path.into_inner();
    let removed = store
        .remove_target(&tenant, &op_kinds(), &op, actor.as_str())
        .await?;
    Ok(web::Json(OpTargetView::of(removed, &config.public_url())))
}

/// The grants an `oauth_revocation` target holds: metadata only, never a token.
#[utoipa::path(get, path = "/tenants/{tenant}/ops/{op}/grants", operation_id = "list_op_grants", tag = "ops",
    params(
        ("tenant" = String, Path, description = "Tenant name"),
        ("op" = String, Path, description = "The target's id or client_id"),
    ),
    responses(
        (status = 200, description = "The grants held for this client, oldest first", body = [GrantView]),
        (status = 404, description = "No such tenant, or no such oauth_revocation target of it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn grants(
    _actor: Actor,
    store: web::Data<Store>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<Vec<GrantView>>, AdminError> {
    let (tenant, op) = path.into_inner();
    let target = store
        .find_target(&tenant, &[KIND_OAUTH_REVOCATION], &op)
        .await?;
    let grants = store.client_grants(&target.id, None).await?;
    Ok(web::Json(
        grants
            .iter()
            .map(|g| GrantView::from(GrantInfo::of(g, &target.client_id)))
            .collect(),
    ))
}

/// A grant deprov holds, without its token.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct GrantView {
    pub id: String,
    pub client_id: String,
    /// The user as the client named it.
    pub sub: String,
    /// The SCIM id of that user.
    pub user_id: String,
    pub token_type_hint: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub last_attempt_at: Option<i64>,
    /// Why the last revocation attempt failed, if it did.
    pub last_error: Option<String>,
}

impl From<GrantInfo> for GrantView {
    fn from(g: GrantInfo) -> Self {
        Self {
            id: g.id,
            client_id: g.client_id,
            sub: g.sub,
            user_id: g.user_id,
            token_type_hint: g.token_type_hint,
            expires_at: g.expires_at,
            created_at: g.created_at,
            last_attempt_at: g.last_attempt_at,
            last_error: g.last_error,
        }
    }
}
