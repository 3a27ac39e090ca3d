//! Deliveries: the outbox, its dead letters, re-driving and cancelling.

use actix_web::web;
use deprov_store::Store;
use deprov_store::outbox::{CANCELLED, DEAD, DELIVERED, PENDING, RETRYING};

use super::auth::Actor;
use super::extract::Query;
use super::problem::{AdminError, Problem};
use super::tenant_id;
use super::views::{
    DeliveriesQuery, DeliveryPage, DeliveryView, RedriveResult, TenantFilter, page_bounds,
};

const STATUSES: [&str; 5] = [PENDING, RETRYING, DELIVERED, DEAD, CANCELLED];

/// List deliveries, newest first.
#[utoipa::path(get, path = "/deliveries", operation_id = "list_deliveries", tag = "deliveries",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "A page of deliveries and the total", body = DeliveryPage),
        (status = 400, description = "A bad query parameter; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    _actor: Actor,
    store: web::Data<Store>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<web::Json<DeliveryPage>, AdminError> {
    if let Some(s) = &q.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(AdminError::invalid(
            "status",
            format!("{s:?} is not one of {}", STATUSES.join(", ")),
        ));
    }
    let (limit, offset) = page_bounds(q.limit, q.offset)?;
    let tenant = tenant_id(&store, q.tenant.as_deref()).await?;
    let (total, rows) = store
        .list_deliveries(tenant.as_deref(), q.status.as_deref(), limit, offset)
        .await?;
    Ok(web::Json(DeliveryPage {
        total,
        items: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Show one delivery (its attempts are in its event's trail).
#[utoipa::path(get, path = "/deliveries/{id}", operation_id = "show_delivery", tag = "deliveries",
    params(("id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryView),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    _actor: Actor,
    store: web::Data<Store>,
    id: web::Path<String>,
) -> Result<web::Json<DeliveryView>, AdminError> {
    let d = store
        .delivery(&id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no delivery {:?}", id.as_str())))?;
    Ok(web::Json(d.into()))
}

/// Re-drive one dead letter: it is attempted again at once, and its maximum age counts
/// again from now.
#[utoipa::path(post, path = "/deliveries/{id}/retry", operation_id = "retry_delivery", tag = "deliveries",
    params(("id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 200, description = "The delivery, back in the queue", body = DeliveryView),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The delivery is not a dead letter", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn retry(
    actor: Actor,
    store: web::Data<Store>,
    id: web::Path<String>,
) -> Result<web::Json<DeliveryView>, AdminError> {
    let found = store
        .delivery(&id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no delivery {:?}", id.as_str())))?;
    let not_dead = || {
        AdminError::Conflict(format!(
            "delivery {} is {}; only dead letters are re-driven",
            found.id, found.status
        ))
    };
    if found.status != DEAD {
        return Err(not_dead());
    }
    if store.redrive(None, Some(&id), actor.as_str()).await? == 0 {
        return Err(not_dead());
    }
    store.outbox_wake().notify_one();
    let d = store
        .delivery(&id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no delivery {:?}", id.as_str())))?;
    Ok(web::Json(d.into()))
}

/// Re-drive every dead letter, or every one of a tenant.
#[utoipa::path(post, path = "/deliveries/retry-dead", operation_id = "retry_dead_deliveries", tag = "deliveries",
    params(TenantFilter),
    responses(
        (status = 200, description = "How many were re-driven", body = RedriveResult),
        (status = 400, description = "A bad query parameter; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn retry_dead(
    actor: Actor,
    store: web::Data<Store>,
    Query(q): Query<TenantFilter>,
) -> Result<web::Json<RedriveResult>, AdminError> {
    let tenant = tenant_id(&store, q.tenant.as_deref()).await?;
    let redriven = store
        .redrive(tenant.as_deref(), None, actor.as_str())
        .await?;
    if redriven > 0 {
        store.outbox_wake().notify_one();
    }
    Ok(web::Json(RedriveResult { redriven }))
}

/// Cancel a waiting (pending or retrying) delivery: it is never attempted again. An
/// attempt already in flight may still arrive; its outcome is recorded.
#[utoipa::path(post, path = "/deliveries/{id}/cancel", operation_id = "cancel_delivery", tag = "deliveries",
    params(("id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 200, description = "The cancelled delivery", body = DeliveryView),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The delivery is not waiting (delivered, dead or cancelled)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel(
    actor: Actor,
    store: web::Data<Store>,
    id: web::Path<String>,
) -> Result<web::Json<DeliveryView>, AdminError> {
    let d = store.cancel_delivery(&id, actor.as_str()).await?;
    Ok(web::Json(d.into()))
}
