//! De-provisioning events and their trails.

use actix_web::web;
use deprov_store::Store;

use super::auth::Actor;
use super::extract::Query;
use super::problem::{AdminError, Problem};
use super::tenant_id;
use super::views::{EventPage, EventTrailView, EventsQuery, page_bounds};

/// List events, newest first.
#[utoipa::path(get, path = "/events", operation_id = "list_events", tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events and the total", body = EventPage),
        (status = 400, description = "A bad query parameter; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    _actor: Actor,
    store: web::Data<Store>,
    Query(q): Query<EventsQuery>,
) -> Result<web::Json<EventPage>, AdminError> {
    let (limit, offset) = page_bounds(q.limit, q.offset)?;
    let tenant = tenant_id(&store, q.tenant.as_deref()).await?;
    let (total, rows) = store.events_page(tenant.as_deref(), limit, offset).await?;
    Ok(web::Json(EventPage {
        total,
        items: rows.into_iter().map(Into::into).collect(),
    }))
}

/// One event's whole trail: the SCIM request, each delivery and each attempt.
#[utoipa::path(get, path = "/events/{id}", operation_id = "show_event", tag = "events",
    params(("id" = String, Path, description = "The event's id")),
    responses(
        (status = 200, description = "The event's trail", body = EventTrailView),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    _actor: Actor,
    store: web::Data<Store>,
    id: web::Path<String>,
) -> Result<web::Json<EventTrailView>, AdminError> {
    let trail = store
        .event_trail(&id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no event {:?}", id.as_str())))?;
    Ok(web::Json(EventTrailView::from(&trail)))
}
