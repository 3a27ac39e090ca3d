//! Tenants and their SCIM tokens.

use actix_web::{HttpResponse, web};
use deprov_core::TenantName;
use deprov_store::Store;

use super::auth::Actor;
use super::extract::{Body, OptionalBody};
use super::problem::{AdminError, Problem};
use super::views::{
    CreateTenantRequest, CreatedTenantView, IssueTokenRequest, IssuedScimTokenView, TenantView,
    TokenView,
};
use crate::cli::scim_base_url;
use crate::config::Config;

fn view(config: &Config, t: deprov_store::tenants::Tenant) -> TenantView {
    TenantView {
        scim_base_url: scim_base_url(config, &t.name),
        tenant: t.name,
        tenant_id: t.id,
        created_at: t.created_at,
    }
}

/// List tenants.
#[utoipa::path(get, path = "/tenants", operation_id = "list_tenants", tag = "tenants",
    responses((status = 200, description = "Every tenant, by name", body = [TenantView])))]
pub async fn list(
    _actor: Actor,
    store: web::Data<Store>,
    config: web::Data<Config>,
) -> Result<web::Json<Vec<TenantView>>, AdminError> {
    let tenants = store.list_tenants().await?;
    Ok(web::Json(
        tenants.into_iter().map(|t| view(&config, t)).collect(),
    ))
}

/// Create a tenant and its first SCIM token (shown only in this answer).
#[utoipa::path(post, path = "/tenants", operation_id = "create_tenant", tag = "tenants",
    request_body = CreateTenantRequest,
    responses(
        (status = 201, description = "Created, with its first SCIM token", body = CreatedTenantView),
        (status = 400, description = "Not a valid tenant name", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant exists", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    actor: Actor,
    store: web::Data<Store>,
    config: web::Data<Config>,
    Body(req): Body<CreateTenantRequest>,
) -> Result<HttpResponse, AdminError> {
    let name =
        TenantName::parse(&req.name).map_err(|e| AdminError::invalid("name", e.to_string()))?;
    let created = store.create_tenant(&name, actor.as_str()).await?;
    Ok(HttpResponse::Created().json(CreatedTenantView {
        scim_base_url: scim_base_url(&config, created.tenant.name.as_str()),
        tenant: created.tenant.name,
        tenant_id: created.tenant.id,
        scim_token: created.token.token.expose().to_owned(),
        scim_token_id: created.token_id,
    }))
}

/// Show one tenant.
#[utoipa::path(get, path = "/tenants/{tenant}", operation_id = "show_tenant", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    _actor: Actor,
    store: web::Data<Store>,
    config: web::Data<Config>,
    tenant: web::Path<String>,
) -> Result<web::Json<TenantView>, AdminError> {
    let t = store.tenant(&tenant).await?;
    Ok(web::Json(view(&config, t)))
}

/// List a tenant's SCIM tokens (ids and hints, never values).
#[utoipa::path(get, path = "/tenants/{tenant}/tokens", operation_id = "list_scim_tokens", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The tenant's SCIM tokens, oldest first", body = [TokenView]),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_tokens(
    _actor: Actor,
    store: web::Data<Store>,
    tenant: web::Path<String>,
) -> Result<web::Json<Vec<TokenView>>, AdminError> {
    let tokens = store.list_scim_tokens(&tenant).await?;
    Ok(web::Json(tokens.into_iter().map(TokenView::from).collect()))
}

/// Issue another SCIM token for a tenant (for rotation: issue, reconfigure the identity
/// provider, revoke the old one). The value is shown only in this answer.
#[utoipa::path(post, path = "/tenants/{tenant}/tokens", operation_id = "issue_scim_token", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body(content = Option<IssueTokenRequest>, description = "Optional; an empty body is allowed"),
    responses(
        (status = 201, description = "The new token", body = IssuedScimTokenView),
        (status = 400, description = "Bad body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn issue_token(
    actor: Actor,
    store: web::Data<Store>,
    config: web::Data<Config>,
    tenant: web::Path<String>,
    OptionalBody(req): OptionalBody<IssueTokenRequest>,
) -> Result<HttpResponse, AdminError> {
    let (model, token) = store
        .issue_scim_token(&tenant, req.label.as_deref(), actor.as_str())
        .await?;
    Ok(HttpResponse::Created().json(IssuedScimTokenView {
        scim_base_url: scim_base_url(&config, &tenant),
        tenant: tenant.into_inner(),
        scim_token: token.token.expose().to_owned(),
        scim_token_id: model.id,
    }))
}

/// Revoke one SCIM token of a tenant. Revoking a revoked token changes nothing.
#[utoipa::path(post, path = "/tenants/{tenant}/tokens/{token_id}/revoke", operation_id = "revoke_scim_token", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant name"),
        ("token_id" = String, Path, description = "The token's id"),
    ),
    responses(
        (status = 200, description = "The revoked token", body = TokenView),
        (status = 404, description = "No such tenant, or no such token of it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_token(
    actor: Actor,
    store: web::Data<Store>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<TokenView>, AdminError> {
    let (tenant, token_id) = path.into_inner();
    let revoked = store
        .revoke_scim_token(&tenant, &token_id, actor.as_str())
        .await?;
    Ok(web::Json(revoked.into()))
}
