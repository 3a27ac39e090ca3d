//! `POST /.search` (RFC 7644 §3.4.3), per resource type and at the root.

use actix_web::{HttpRequest, HttpResponse, web};
use deprov_core::scim::ListQuery;

use super::{ListParams, list_response, read_json};
use crate::auth::Scim;
use crate::error::ScimResult;
use crate::schema::catalog;

async fn params(scim: &Scim, req: &HttpRequest, payload: web::Payload) -> ScimResult<ListParams> {
    let body = read_json(req, payload, scim.config.limits.max_payload_bytes).await?;
    ListParams::from_search(&body)
}

pub async fn users(
    scim: Scim,
    req: HttpRequest,
    payload: web::Payload,
) -> ScimResult<HttpResponse> {
    let p = params(&scim, &req, payload).await?;
    super::users::search_with(&scim, &p).await
}

pub async fn groups(
    scim: Scim,
    req: HttpRequest,
    payload: web::Payload,
) -> ScimResult<HttpResponse> {
    let p = params(&scim, &req, payload).await?;
    super::groups::search_with(&scim, &p).await
}

/// The root search spans Users, then Groups. A type whose schema does not know an
/// attribute of the filter contributes nothing; a filter no type understands is a 400.
/// Results are paged over the concatenation (each type in its own stable order).
pub async fn root(scim: Scim, req: HttpRequest, payload: web::Payload) -> ScimResult<HttpResponse> {
    let p = params(&scim, &req, payload).await?;
    let cat = catalog()?;
    let limits = &scim.config.limits;
    let users = p.resolve(&cat.user, limits);
    let groups = p.resolve(&cat.group, limits);
    let (start, count) = match (&users, &groups) {
        (Ok((q, _)), _) | (_, Ok((q, _))) => (q.start_index, q.count),
        (Err(e), Err(_)) => return Err(e.clone()),
    };
    let mut total = 0u64;
    let mut resources: Vec<String> = Vec::new();
    // Position of the first resource of the current type in the concatenation (1-based).
    let mut offset = 1u64;
    if let Ok((q, projection)) = &users {
        let (t, page) = scim
            .store
            .list_users(&scim.tenant.id, &part(q, start, count, offset))
            .await?;
        for r in page {
            resources.push(super::users::represent(&scim, r, projection)?);
        }
        total += t;
        offset += t;
    }
    if let Ok((q, projection)) = &groups {
        let remaining = count.saturating_sub(resources.len() as u64);
        let include = projection.wants("members");
        let (t, page) = scim
            .store
            .list_groups(&scim.tenant.id, &part(q, start, remaining, offset), include)
            .await?;
        for r in page {
            resources.push(super::json_text(&super::groups::represent(
                &scim, r, projection,
            )?));
        }
        total += t;
    }
    Ok(list_response(total, start, resources))
}

/// One type's part of a page over the concatenation: at most `count` of its records
/// from position `start` of the whole, the type's first record being at `offset`.
fn part(q: &ListQuery, start: u64, count: u64, offset: u64) -> ListQuery {
    let mut query = q.clone();
    query.start_index = if start < offset {
        1
    } else {
        start - offset + 1
    };
    query.count = count;
    query
}
