//! Admin tokens stored in the database (the configured `DEPROV_ADMIN_TOKEN` is not among
//! them: it is changed in the configuration).

use actix_web::{HttpResponse, web};
use deprov_store::Store;

use super::auth::Actor;
use super::extract::OptionalBody;
use super::problem::{AdminError, Problem};
use super::views::{IssueTokenRequest, IssuedAdminTokenView, TokenView};

/// List stored admin tokens (ids and hints, never values).
#[utoipa::path(get, path = "/admin-tokens", operation_id = "list_admin_tokens", tag = "admin tokens",
    responses((status = 200, description = "Every stored admin token, oldest first", body = [TokenView])))]
pub async fn list(
    _actor: Actor,
    store: web::Data<Store>,
) -> Result<web::Json<Vec<TokenView>>, AdminError> {
    let tokens = store.list_admin_tokens().await?;
    Ok(web::Json(tokens.into_iter().map(TokenView::from).collect()))
}

/// Issue an admin token. The value is shown only in this answer.
#[utoipa::path(post, path = "/admin-tokens", operation_id = "issue_admin_token", tag = "admin tokens",
    request_body(content = Option<IssueTokenRequest>, description = "Optional; an empty body is allowed"),
    responses(
        (status = 201, description = "The new token", body = IssuedAdminTokenView),
        (status = 400, description = "Bad body", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn issue(
    actor: Actor,
    store: web::Data<Store>,
    OptionalBody(req): OptionalBody<IssueTokenRequest>,
) -> Result<HttpResponse, AdminError> {
    let (model, token) = store
        .issue_admin_token(req.label.as_deref(), actor.as_str())
        .await?;
    Ok(HttpResponse::Created().json(IssuedAdminTokenView {
        admin_token: token.token.expose().to_owned(),
        id: model.id,
        hint: model.hint,
        label: model.label,
        created_at: model.created_at,
    }))
}

/// Revoke a stored admin token (it may be the one making this request).
#[utoipa::path(post, path = "/admin-tokens/{id}/revoke", operation_id = "revoke_admin_token", tag = "admin tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, description = "The revoked token", body = TokenView),
        (status = 404, description = "No such admin token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    actor: Actor,
    store: web::Data<Store>,
    id: web::Path<String>,
) -> Result<web::Json<TokenView>, AdminError> {
    let revoked = store.revoke_admin_token(&id, actor.as_str()).await?;
    Ok(web::Json(revoked.into()))
}
