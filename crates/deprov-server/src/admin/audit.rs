//! The audit log: who changed what, when.

use actix_web::web;
use deprov_store::Store;

use super::auth::Actor;
use super::extract::Query;
use super::problem::{AdminError, Problem};
use super::tenant_id;
use super::views::{AuditPage, AuditQuery, page_bounds};

/// List audit records, newest first.
#[utoipa::path(get, path = "/audit", operation_id = "list_audit_records", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of audit records and the total", body = AuditPage),
        (status = 400, description = "A bad query parameter; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    _actor: Actor,
    store: web::Data<Store>,
    Query(q): Query<AuditQuery>,
) -> Result<web::Json<AuditPage>, AdminError> {
    let (limit, offset) = page_bounds(q.limit, q.offset)?;
    let tenant = tenant_id(&store, q.tenant.as_deref()).await?;
    let (total, rows) = store.audit_page(tenant.as_deref(), limit, offset).await?;
    Ok(web::Json(AuditPage {
        total,
        items: rows.into_iter().map(Into::into).collect(),
    }))
}
