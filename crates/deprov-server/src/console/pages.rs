//! The console's pages. Each handler reads through the same store and key-ring calls as the
//! admin API (and the CLI), and every change goes through the same audited store
//! functions, with the signed-in operator's admin identity as the actor.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use deprov_core::{SigningAlgorithm, TenantName};
use deprov_revocation::keys::KeyRing;
use deprov_store::outbox::{DEAD, EventTrail};
use deprov_store::targets::RelyingParty;
use deprov_store::{Store, now_millis};
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleError;
use super::html::{badge, bar_chart, csrf_field, duration, flash, page, render, time, time_opt};
use super::session::{CsrfForm, NoFields, Session};
use crate::admin::views::{MAX_LIMIT, RelyingPartyRequest};
use crate::cli::scim_base_url;
use crate::config::Config;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const PAGE: u64 = 50;
/// How far back the last success and last failure of a target are looked for.
const SEEN_DAYS: i64 = 30;

/// `?offset=…&msg=…` of list pages.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    msg: Option<String>,
}

/// The fixed texts a redirect may ask a page to show.
fn message(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "redriven" => "The dead letter is back in the queue; the worker attempts it at once.",
        "redriven-all" => "Every dead letter is back in the queue.",
        "nothing" => "There was nothing to re-drive.",
        "enabled" => "The target is enabled.",
        "disabled" => "The target is disabled: nothing is sent to it.",
        "removed" => "The target is removed; its deliveries keep their record.",
        "added" => "The target is registered.",
        "updated" => {
            "The target's settings are saved; waiting deliveries use them at their next attempt."
        }
        "revoked" => "The SCIM token is revoked.",
        _ => return None,
    })
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}

fn ok(body: Markup) -> HttpResponse {
    render(StatusCode::OK, body)
}

/// Path segments built from stored values (tenant names, ids, client_ids) are escaped.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn tenant_names(store: &Store) -> Result<HashMap<String, String>, ConsoleError> {
    Ok(store
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect())
}

/// Every relying party of every tenant.
async fn all_targets(store: &Store) -> Result<Vec<RelyingParty>, ConsoleError> {
    let mut out = Vec::new();
    for t in store.list_tenants().await? {
        out.extend(store.list_relying_parties(&t.name).await?);
    }
    Ok(out)
}

/// Every tenant's targets at OpenID Providers (RFC 7009 clients, Global Token Revocation,
/// provider admin APIs).
async fn all_op_targets(
    store: &Store,
) -> Result<Vec<deprov_store::op_targets::Target>, ConsoleError> {
    let kinds = deprov_store::op_targets::op_kinds();
    let mut out = Vec::new();
    for t in store.list_tenants().await? {
        out.extend(store.list_targets(&t.name, &kinds).await?);
    }
    Ok(out)
}

fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.0} %", r * 100.0))
        .unwrap_or_else(|| "—".to_owned())
}

// ---- overview --------------------------------------------------------------------------

/// `GET /console`: the queue, events over the last day and week, the health of targets.
pub async fn overview(
    session: Session,
    store: web::Data<Store>,
) -> Result<HttpResponse, ConsoleError> {
    let now = now_millis();
    let stats = store.queue_stats().await?;
    // Whole hours and whole days (UTC), the current one last.
    let hour_start = now - now.rem_euclid(HOUR_MS) - 23 * HOUR_MS;
    let day_start = now - now.rem_euclid(DAY_MS) - 6 * DAY_MS;
    let by_hour = store.event_histogram(hour_start, HOUR_MS, 24).await?;
    let by_day = store.event_histogram(day_start, DAY_MS, 7).await?;
    let hour_labels: Vec<String> = (0..24)
        .map(|i| {
            let t = hour_start + i * HOUR_MS;
            if i % 3 == 2 || i == 23 {
                chrono::DateTime::from_timestamp_millis(t)
                    .map(|d| d.format("%H:00").to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .collect();
    let day_labels: Vec<String> = (0..7)
        .map(|i| {
            chrono::DateTime::from_timestamp_millis(day_start + i * DAY_MS)
                .map(|d| d.format("%a %d").to_string())
                .unwrap_or_default()
        })
        .collect();
    let health: HashMap<String, deprov_store::console::TargetHealth> = store
        .target_health(now - 7 * DAY_MS, now - SEEN_DAYS * DAY_MS)
        .await?
        .into_iter()
        .map(|h| (h.target_id.clone(), h))
        .collect();
    let targets = all_targets(&store).await?;
    let names = tenant_names(&store).await?;
    let (_, recent) = store.events_page(None, 10, 0).await?;
    let body = html! {
        h1 { "Overview" }
        div.cards {
            div.card { div.n #pending { (stats.pending) } div.l { "deliveries pending" } }
            div.card.warn[stats.retrying > 0] { div.n #retrying { (stats.retrying) } div.l { "retrying" } }
            div.card.bad[stats.dead > 0] { div.n #dead { (stats.dead) } div.l { a href="/console/dead-letters" { "dead letters" } } }
            div.card { div.n #oldest { (stats.oldest_waiting_ms.map(duration).unwrap_or_else(|| "—".to_owned())) } div.l { "oldest waiting delivery" } }
            div.card { div.n { (stats.delivered) } div.l { "delivered" } }
        }
        h2 { "De-provisioning events" }
        div.charts {
            div.chart {
                h3 { "Last 24 hours " span.muted { "(" (by_hour.iter().sum::<u64>()) ", per hour, UTC)" } }
                (bar_chart(&by_hour, &hour_labels, "Events per hour, last 24 hours"))
            }
            div.chart {
                h3 { "Last 7 days " span.muted { "(" (by_day.iter().sum::<u64>()) ", per day, UTC)" } }
                (bar_chart(&by_day, &day_labels, "Events per day, last 7 days"))
            }
        }
        h2 { "Targets" }
        @if targets.is_empty() {
            p.muted { "No target yet. " a href="/console/targets" { "Register one." } }
        } @else {
            table #target-health {
                thead { tr { th { "Tenant" } th { "Client" } th { "State" } th { "Last success (30 d)" } th { "Last failure (30 d)" } th.num { "Attempts (7 d)" } th.num { "Failure rate (7 d)" } } }
                tbody {
                    @for rp in &targets {
                        @let h = health.get(&rp.id).cloned().unwrap_or_default();
                        tr {
                            td { (rp.tenant) }
                            td { a href={ "/console/targets/" (seg(&rp.tenant)) "/" (seg(&rp.id)) } { (rp.client_id) } }
                            td { (badge(if rp.enabled { "enabled" } else { "disabled" })) }
                            td { (time_opt(h.last_success_at)) }
                            td { (time_opt(h.last_failure_at)) }
                            td.num { (h.attempts) }
                            td.num { (percent(h.failure_rate())) }
                        }
                    }
                }
            }
        }
        h2 { "Latest events " a.muted href="/console/events" { "(all)" } }
        (events_table(&recent, &names))
    };
    Ok(ok(page(&session, "/console", "Overview", body)))
}

fn events_table(
    events: &[deprov_store::outbox::EventSummary],
    names: &HashMap<String, String>,
) -> Markup {
    html! {
        @if events.is_empty() {
            p.muted { "No de-provisioning event yet." }
        } @else {
            table.events {
                thead { tr { th { "When" } th { "Tenant" } th { "Kind" } th { "User" } th.num { "Delivered" } th.num { "Dead" } th { "" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (time(e.occurred_at)) }
                            td { (names.get(&e.tenant_id).map_or(e.tenant_id.as_str(), String::as_str)) }
                            td { (e.kind) @if let Some(g) = &e.group_display_name { " " span.muted { "(" (g) ")" } } }
                            td { (e.user_name.as_deref().unwrap_or(&e.user_id)) }
                            td.num { (e.delivered) " / " (e.deliveries) }
                            td.num { @if e.dead > 0 { span.badge.dead { (e.dead) } } @else { "0" } }
                            td { a.trail href={ "/console/events/" (seg(&e.id)) } { "trail →" } }
                        }
                    }
                }
            }
        }
    }
}

fn pager(base: &str, offset: u64, shown: usize, total: u64) -> Markup {
    let shown = u64::try_from(shown).unwrap_or(0);
    html! {
        div.pager {
            span.muted { (offset.min(total) + u64::from(shown > 0)) "–" (offset + shown) " of " (total) }
            @if offset > 0 { a href={ (base) "?offset=" (offset.saturating_sub(PAGE)) } { "← newer" } }
            @if offset + shown < total { a href={ (base) "?offset=" (offset + PAGE) } { "older →" } }
        }
    }
}

// ---- events ----------------------------------------------------------------------------

/// `GET /console/events`
pub async fn events(
    session: Session,
    store: web::Data<Store>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let offset = q.offset.unwrap_or(0);
    let (total, rows) = store.events_page(None, PAGE, offset).await?;
    let names = tenant_names(&store).await?;
    let body = html! {
        h1 { "De-provisioning events" }
        (events_table(&rows, &names))
        (pager("/console/events", offset, rows.len(), total))
    };
    Ok(ok(page(&session, "/console/events", "Events", body)))
}

/// `GET /console/events/{id}`: the whole trail, from the SCIM request to every attempt.
pub async fn event(
    session: Session,
    store: web::Data<Store>,
    id: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let trail = store
        .event_trail(&id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no event {:?}", id.as_str())))?;
    let names = tenant_names(&store).await?;
    let body = html! {
        (flash(message(q.msg.as_deref())))
        (trail_body(&session, &trail, &names))
    };
    Ok(ok(page(&session, "/console/events", "Event trail", body)))
}

fn trail_body(session: &Session, trail: &EventTrail, names: &HashMap<String, String>) -> Markup {
    let e = &trail.event;
    let user = &e.user_snapshot;
    let user_name = user.get("userName").and_then(|v| v.as_str());
    let external_id = user.get("externalId").and_then(|v| v.as_str());
    html! {
        h1 { "Event trail" }
        dl.kv {
            dt { "Event" } dd.mono { (e.id) }
            dt { "Tenant" } dd { (names.get(&e.tenant_id).map_or(e.tenant_id.as_str(), String::as_str)) }
            dt { "Kind" } dd { strong #event-kind { (e.kind) } @if let Some(g) = &e.group_display_name { " from group " (g) } }
            dt { "User" } dd { (user_name.unwrap_or("—")) " " span.muted.mono { "id " (e.user_id) @if let Some(x) = external_id { ", externalId " (x) } } }
        }
        ol.timeline #trail {
            li {
                strong { "SCIM request" } " " span.muted { (time(e.occurred_at)) }
                dl.kv {
                    dt { "Request" } dd.mono { (e.scim_method) " " (e.scim_path) }
                    dt { "Request id" } dd.mono { (e.request_id) }
                }
            }
            li {
                strong { "Event recorded" } " " span.muted { (time(e.occurred_at)) }
                p.muted {
                    @match trail.deliveries.len() {
                        0 => { "No target subscribed: nothing to deliver." }
                        1 => { "1 delivery enqueued in the same transaction." }
                        n => { (n) " deliveries enqueued in the same transaction." }
                    }
                }
            }
            @for d in &trail.deliveries {
                li class=(d.delivery.status) {
                    strong { "Delivery to " (d.client_id.as_deref().unwrap_or("(removed target)")) } " "
                    (badge(&d.delivery.status))
                    " " span.muted { (d.delivery.target_kind) ", created " (time(d.delivery.created_at)) }
                    @if let Some(done) = d.delivery.completed_at {
                        span.muted { ", settled after " (duration(done - e.occurred_at)) }
                    }
                    @if let Some(err) = &d.delivery.last_error { p { "Last error: " code { (err) } } }
                    @if d.delivery.status == DEAD {
                        form.inline method="post" action={ "/console/deliveries/" (seg(&d.delivery.id)) "/retry" } {
                            (csrf_field(session))
                            input type="hidden" name="back" value={ "/console/events/" (seg(&e.id)) };
                            button.secondary type="submit" { "Re-drive" }
                        }
                    }
                    @if d.attempts.is_empty() {
                        p.muted { "No attempt yet." }
                    } @else {
                        table.attempts {
                            thead { tr { th.num { "#" } th { "Started" } th.num { "After event" } th.num { "Latency" } th.num { "HTTP" } th { "Outcome" } th { "Error / response" } } }
                            tbody {
                                @for a in &d.attempts {
                                    tr {
                                        td.num { (a.attempt_no) }
                                        td { (time(a.started_at)) }
                                        td.num { "+" (duration(a.started_at - e.occurred_at)) }
                                        td.num { (a.latency_ms) " ms" }
                                        td.num { (a.http_status.map(|s| s.to_string()).unwrap_or_else(|| "—".to_owned())) }
                                        td { (badge(&a.outcome)) }
                                        td {
                                            @if let Some(err) = &a.error { code { (err) } br; }
                                            @if let Some(x) = &a.response_excerpt { span.muted { "body: " } code { (x) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---- dead letters ----------------------------------------------------------------------

/// `GET /console/dead-letters`
pub async fn dead_letters(
    session: Session,
    store: web::Data<Store>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let offset = q.offset.unwrap_or(0);
    let (total, rows) = store
        .list_deliveries(None, Some(DEAD), PAGE, offset)
        .await?;
    let names = tenant_names(&store).await?;
    let clients: HashMap<String, String> = all_targets(&store)
        .await?
        .into_iter()
        .map(|rp| (rp.id, rp.client_id))
        .collect();
    let body = html! {
        h1 { "Dead letters" }
        (flash(message(q.msg.as_deref())))
        @if rows.is_empty() {
            p.muted #no-dead { "No dead letter." }
        } @else {
            form method="post" action="/console/dead-letters/retry-all" {
                (csrf_field(&session))
                button type="submit" { "Re-drive all (" (total) ")" }
            }
            p {}
            table #dead-letters {
                thead { tr { th { "Dead since" } th { "Tenant" } th { "Target" } th.num { "Attempts" } th { "Last error" } th { "" } } }
                tbody {
                    @for d in &rows {
                        tr {
                            td { (time_opt(d.completed_at)) }
                            td { (names.get(&d.tenant_id).map_or(d.tenant_id.as_str(), String::as_str)) }
                            td { (clients.get(&d.target_id).map_or("(removed)", String::as_str)) }
                            td.num { (d.attempt_count) }
                            td { code { (d.last_error.as_deref().unwrap_or("")) } }
                            td {
                                a href={ "/console/events/" (seg(&d.event_id)) } { "trail" } " "
                                form.inline method="post" action={ "/console/deliveries/" (seg(&d.id)) "/retry" } {
                                    (csrf_field(&session))
                                    button.secondary type="submit" { "Re-drive" }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/console/dead-letters", offset, rows.len(), total))
        }
    };
    Ok(ok(page(
        &session,
        "/console/dead-letters",
        "Dead letters",
        body,
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct RetryForm {
    /// The console page to return to (only `/console/…` paths are followed).
    #[serde(default)]
    back: Option<String>,
}

/// `POST /console/deliveries/{id}/retry`: re-drive one dead letter.
pub async fn retry(
    store: web::Data<Store>,
    id: web::Path<String>,
    CsrfForm { session, form }: CsrfForm<RetryForm>,
) -> Result<HttpResponse, ConsoleError> {
    let found = store
        .delivery(&id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no delivery {:?}", id.as_str())))?;
    if found.status != DEAD || store.redrive(None, Some(&id), &session.actor).await? == 0 {
        return Err(ConsoleError::Conflict(format!(
            "delivery {} is {}; only dead letters are re-driven",
            found.id, found.status
        )));
    }
    store.outbox_wake().notify_one();
    let back = form
        .back
        .filter(|b| {
            // A console path of plain characters only: never another site, never a header
            // injection.
            b.starts_with("/console/")
                && !b.contains("//")
                && b.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'-' | b'_' | b'.'))
        })
        .map(|b| format!("{b}?msg=redriven"))
        .unwrap_or_else(|| "/console/dead-letters?msg=redriven".to_owned());
    Ok(see_other(&back))
}

/// `POST /console/dead-letters/retry-all`
pub async fn retry_all(
    store: web::Data<Store>,
    CsrfForm { session, .. }: CsrfForm<NoFields>,
) -> Result<HttpResponse, ConsoleError> {
    let n = store.redrive(None, None, &session.actor).await?;
    if n > 0 {
        store.outbox_wake().notify_one();
    }
    Ok(see_other(if n > 0 {
        "/console/dead-letters?msg=redriven-all"
    } else {
        "/console/dead-letters?msg=nothing"
    }))
}

// ---- targets ---------------------------------------------------------------------------

/// `GET /console/targets`: every relying party, and the form to register one.
pub async fn targets(
    session: Session,
    store: web::Data<Store>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let targets = all_targets(&store).await?;
    let ops = all_op_targets(&store).await?;
    let tenants = store.list_tenants().await?;
    let body = html! {
        h1 { "Targets" }
        (flash(message(q.msg.as_deref())))
        @if targets.is_empty() {
            p.muted { "No target yet." }
        } @else {
            table #targets {
                thead { tr { th { "Tenant" } th { "Client" } th { "Back-channel logout URI" } th { "Subject" } th { "Alg" } th { "State" } } }
                tbody {
                    @for rp in &targets {
                        tr {
                            td { (rp.tenant) }
                            td { a href={ "/console/targets/" (seg(&rp.tenant)) "/" (seg(&rp.id)) } { (rp.client_id) } }
                            td.mono { (rp.config.backchannel_logout_uri) }
                            td.mono { (rp.config.subject) }
                            td { (rp.config.alg) }
                            td { (badge(if rp.enabled { "enabled" } else { "disabled" })) }
                        }
                    }
                }
            }
        }
        h2 { "OpenID Provider targets" }
        p.muted { "Token revocation (RFC 7009), Global Token Revocation and provider admin APIs; registered with " code { "deprov op add" } " or the admin API. Their secrets are never shown." }
        @if ops.is_empty() {
            p.muted { "No OpenID Provider target yet." }
        } @else {
            table #op-targets {
                thead { tr { th { "Tenant" } th { "Kind" } th { "Client" } th { "Reaches" } th { "State" } th {} } }
                tbody {
                    @for op in &ops {
                        tr {
                            td { (op.tenant) }
                            td.mono { (op.kind) }
                            td { (op.client_id) }
                            td { @if op.groups.is_empty() { "all users" } @else { "members of " (op.groups.join(", ")) } }
                            td { (badge(if op.enabled { "enabled" } else { "disabled" })) }
                            td {
                                form.inline method="post" action={ "/console/ops/" (seg(&op.tenant)) "/" (seg(&op.id)) "/" (if op.enabled { "disable" } else { "enable" }) } {
                                    (csrf_field(&session))
                                    button type="submit" { (if op.enabled { "Disable" } else { "Enable" }) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Register a relying party" }
        form.stack method="post" action="/console/targets" {
            (csrf_field(&session))
            label for="tenant" { "Tenant" }
            select #tenant name="tenant" required {
                @for t in &tenants { option value=(t.name) { (t.name) } }
            }
            label for="client_id" { "client_id (the aud of its logout tokens)" }
            input #client_id name="client_id" required;
            label for="uri" { "Back-channel logout URI" }
            input #uri name="backchannel_logout_uri" type="url" required placeholder="https://app.example.com/backchannel-logout";
            label for="subject" { "Subject (SCIM attribute that becomes sub)" }
            input #subject name="subject" value="externalId|id";
            label for="alg" { "Signing algorithm" }
            select #alg name="alg" { option { "RS256" } option { "ES256" } option { "EdDSA" } }
            button type="submit" { "Register" }
        }
    };
    Ok(ok(page(&session, "/console/targets", "Targets", body)))
}

#[derive(Debug, Deserialize)]
pub struct AddTargetForm {
    tenant: String,
    client_id: String,
    backchannel_logout_uri: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    alg: Option<String>,
}

/// `POST /console/targets`: the same checks as the admin API and `deprov rp add`.
pub async fn add_target(
    store: web::Data<Store>,
    config: web::Data<Config>,
    keys: web::Data<Arc<KeyRing>>,
    CsrfForm { session, form }: CsrfForm<AddTargetForm>,
) -> Result<HttpResponse, ConsoleError> {
    let req = RelyingPartyRequest {
        client_id: form.client_id,
        backchannel_logout_uri: form.backchannel_logout_uri,
        subject: form
            .subject
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "externalId|id".to_owned()),
        groups: Vec::new(),
        alg: form.alg.unwrap_or_else(|| "RS256".to_owned()),
        require_sid: false,
        issuer: None,
        kid: None,
        enabled: true,
    };
    let new = req
        .validate(&config)
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    let alg = new.alg;
    let rp = store
        .add_relying_party(&form.tenant, new, &session.actor)
        .await?;
    keys.ensure_key(alg).await?;
    Ok(see_other(&format!(
        "/console/targets/{}/{}?msg=added",
        seg(&rp.tenant),
        seg(&rp.id)
    )))
}

/// `GET /console/targets/{tenant}/{rp}`
pub async fn target(
    session: Session,
    store: web::Data<Store>,
    path: web::Path<(String, String)>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let (tenant, id) = path.into_inner();
    let rp = store.relying_party(&tenant, &id).await?;
    let health = store
        .target_health(now_millis() - 7 * DAY_MS, now_millis() - SEEN_DAYS * DAY_MS)
        .await?
        .into_iter()
        .find(|h| h.target_id == rp.id)
        .unwrap_or_default();
    Ok(ok(page(
        &session,
        "/console/targets",
        "Target",
        target_body(&session, &rp, &health, message(q.msg.as_deref()), None),
    )))
}

fn target_body(
    session: &Session,
    rp: &RelyingParty,
    health: &deprov_store::console::TargetHealth,
    msg: Option<&'static str>,
    test: Option<Markup>,
) -> Markup {
    let base = format!("/console/targets/{}/{}", seg(&rp.tenant), seg(&rp.id));
    html! {
        h1 { "Target " (rp.client_id) }
        (flash(msg))
        @if let Some(t) = test { (t) }
        dl.kv {
            dt { "Tenant" } dd { (rp.tenant) }
            dt { "Id" } dd.mono { (rp.id) }
            dt { "client_id" } dd.mono { (rp.client_id) }
            dt { "Back-channel logout URI" } dd.mono { (rp.config.backchannel_logout_uri) }
            dt { "Subject" } dd.mono { (rp.config.subject) }
            dt { "Algorithm" } dd { (rp.config.alg) @if let Some(k) = &rp.config.kid { " (key " code { (k) } ")" } }
            dt { "Issuer" } dd.mono { (rp.config.issuer.as_deref().unwrap_or("deprov's public URL")) }
            dt { "Requires sid" } dd { (rp.config.require_sid) }
            dt { "Groups" } dd { @if rp.groups.is_empty() { span.muted { "none" } } @else { (rp.groups.join(", ")) } }
            dt { "State" } dd { (badge(if rp.enabled { "enabled" } else { "disabled" })) }
            dt { "Last success (30 days)" } dd { (time_opt(health.last_success_at)) }
            dt { "Last failure (30 days)" } dd { (time_opt(health.last_failure_at)) }
            dt { "Failure rate (7 days)" } dd { (percent(health.failure_rate())) " of " (health.attempts) " attempts" }
            dt { "Registered" } dd { (time(rp.created_at)) ", updated " (time(rp.updated_at)) }
        }
        p {
            form.inline method="post" action={ (base) "/test" } {
                (csrf_field(session))
                button type="submit" { "Send a test logout" }
            }
            " "
            form.inline method="post" action={ (base) "/enabled" } {
                (csrf_field(session))
                input type="hidden" name="enabled" value=(if rp.enabled { "false" } else { "true" });
                button.secondary type="submit" { (if rp.enabled { "Disable" } else { "Enable" }) }
            }
            " "
            form.inline method="post" action={ (base) "/remove" } {
                (csrf_field(session))
                label { input type="checkbox" name="confirm" value="yes" required; " sure" }
                " "
                button.danger type="submit" { "Remove" }
            }
        }
        p.muted { "A test logout is signed like a real one, for the synthetic subject deprov-console-test, and sent once; it is not a delivery and is not retried." }
        h2 { "Edit" }
        form.stack #edit method="post" action={ (base) "/edit" } {
            (csrf_field(session))
            label for="uri" { "Back-channel logout URI" }
            input #uri name="backchannel_logout_uri" type="url" required value=(rp.config.backchannel_logout_uri);
            label for="subject" { "Subject (SCIM attribute that becomes sub)" }
            input #subject name="subject" required value=(rp.config.subject);
            label for="alg" { "Signing algorithm" }
            select #alg name="alg" {
                @for alg in ["RS256", "ES256", "EdDSA"] {
                    option selected[rp.config.alg == alg] { (alg) }
                }
            }
            label { input type="checkbox" name="require_sid" value="true" checked[rp.config.require_sid]; " requires sid" }
            label for="issuer" { "Issuer (empty: deprov's public URL)" }
            input #issuer name="issuer" value=(rp.config.issuer.as_deref().unwrap_or(""));
            label for="kid" { "Key id (empty: the algorithm's default key)" }
            input #kid name="kid" value=(rp.config.kid.as_deref().unwrap_or(""));
            button type="submit" { "Save" }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct EditTargetForm {
    backchannel_logout_uri: String,
    subject: String,
    alg: String,
    #[serde(default)]
    require_sid: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `POST /console/targets/{tenant}/{rp}/edit`: the checks of registration, applied to the
/// new settings; client_id, groups and state are kept.
pub async fn edit_target(
    store: web::Data<Store>,
    config: web::Data<Config>,
    keys: web::Data<Arc<KeyRing>>,
    path: web::Path<(String, String)>,
    CsrfForm { session, form }: CsrfForm<EditTargetForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (tenant, id) = path.into_inner();
    let rp = store.relying_party(&tenant, &id).await?;
    let settings = RelyingPartyRequest {
        client_id: rp.client_id.clone(),
        backchannel_logout_uri: form.backchannel_logout_uri,
        subject: form.subject,
        groups: rp.groups.clone(),
        alg: form.alg,
        require_sid: form.require_sid.as_deref() == Some("true"),
        issuer: non_empty(form.issuer),
        kid: non_empty(form.kid),
        enabled: rp.enabled,
    }
    .validate(&config)
    .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    let alg = settings.alg;
    let updated = store
        .update_relying_party(&tenant, &rp.id, &settings, &session.actor)
        .await?;
    if updated.config.kid.is_none() {
        keys.ensure_key(alg).await?;
    }
    Ok(see_other(&format!(
        "/console/targets/{}/{}?msg=updated",
        seg(&updated.tenant),
        seg(&updated.id)
    )))
}

#[derive(Debug, Deserialize)]
pub struct EnabledForm {
    enabled: bool,
}

/// `POST /console/targets/{tenant}/{rp}/enabled`
pub async fn set_enabled(
    store: web::Data<Store>,
    path: web::Path<(String, String)>,
    CsrfForm { session, form }: CsrfForm<EnabledForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (tenant, id) = path.into_inner();
    let rp = store
        .set_relying_party_enabled(&tenant, &id, form.enabled, &session.actor)
        .await?;
    Ok(see_other(&format!(
        "/console/targets/{}/{}?msg={}",
        seg(&rp.tenant),
        seg(&rp.id),
        if rp.enabled { "enabled" } else { "disabled" }
    )))
}

#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    confirm: Option<String>,
}

impl ConfirmForm {
    /// Destructive forms carry a ticked confirmation box (HTML `required` asks for it
    /// without script; this is the check that counts).
    fn confirmed(&self) -> Result<(), ConsoleError> {
        if self.confirm.as_deref() == Some("yes") {
            Ok(())
        } else {
            Err(ConsoleError::BadRequest(
                "tick the confirmation box first; nothing was changed".to_owned(),
            ))
        }
    }
}

/// `POST /console/targets/{tenant}/{rp}/remove` (with the confirmation box ticked).
pub async fn remove(
    store: web::Data<Store>,
    path: web::Path<(String, String)>,
    CsrfForm { session, form }: CsrfForm<ConfirmForm>,
) -> Result<HttpResponse, ConsoleError> {
    form.confirmed()?;
    let (tenant, id) = path.into_inner();
    store
        .remove_relying_party(&tenant, &id, &session.actor)
        .await?;
    Ok(see_other("/console/targets?msg=removed"))
}

/// `POST /console/targets/{tenant}/{rp}/test`: one signed logout token for a synthetic
/// subject, POSTed once; the answer is shown.
pub async fn test_logout(
    store: web::Data<Store>,
    config: web::Data<Config>,
    keys: web::Data<Arc<KeyRing>>,
    path: web::Path<(String, String)>,
    CsrfForm { session, .. }: CsrfForm<NoFields>,
) -> Result<HttpResponse, ConsoleError> {
    let (tenant, id) = path.into_inner();
    let rp = store.relying_party(&tenant, &id).await?;
    let outcome = super::test_logout::send(&config, keys.get_ref().clone(), &rp).await;
    tracing::info!(actor = %session.actor, client_id = %rp.client_id, status = ?outcome.status, "console test logout sent");
    let health = store
        .target_health(now_millis() - 7 * DAY_MS, now_millis() - SEEN_DAYS * DAY_MS)
        .await?
        .into_iter()
        .find(|h| h.target_id == rp.id)
        .unwrap_or_default();
    let result = html! {
        section.flash.error[!outcome.success()] #test-result {
            strong { "Test logout: " }
            @match outcome.status {
                Some(s) => { "HTTP " (s) }
                None => { "no answer" }
            }
            " in " (format!("{:.1}", outcome.latency_ms)) " ms"
            @if let Some(e) = &outcome.error { br; "Error: " code { (e) } }
            @if let Some(b) = &outcome.body_excerpt { br; "Body: " code { (b) } }
        }
    };
    Ok(ok(page(
        &session,
        "/console/targets",
        "Target",
        target_body(&session, &rp, &health, None, Some(result)),
    )))
}

// ---- tenants ---------------------------------------------------------------------------

/// `GET /console/tenants`
pub async fn tenants(
    session: Session,
    store: web::Data<Store>,
    config: web::Data<Config>,
) -> Result<HttpResponse, ConsoleError> {
    let tenants = store.list_tenants().await?;
    let body = html! {
        h1 { "Tenants" }
        table #tenants {
            thead { tr { th { "Name" } th { "SCIM base URL" } th { "Created" } } }
            tbody {
                @for t in &tenants {
                    tr {
                        td { a href={ "/console/tenants/" (seg(&t.name)) } { (t.name) } }
                        td.mono { (scim_base_url(&config, &t.name)) }
                        td { (time(t.created_at)) }
                    }
                }
            }
        }
        h2 { "Create a tenant" }
        form.stack method="post" action="/console/tenants" {
            (csrf_field(&session))
            label for="name" { "Name (lower-case letters, digits, -)" }
            input #name name="name" required pattern="[a-z0-9-]+";
            button type="submit" { "Create" }
        }
    };
    Ok(ok(page(&session, "/console/tenants", "Tenants", body)))
}

#[derive(Debug, Deserialize)]
pub struct CreateTenantForm {
    name: String,
}

/// A secret shown once, with the warning that it will not be shown again.
fn secret_once(what: &str, base_url: &str, token: &str) -> Markup {
    html! {
        div.secret #new-secret {
            p { strong { "New " (what) " — copy it now, it is not shown again." } }
            dl.kv {
                dt { "SCIM base URL" } dd.mono { (base_url) }
                dt { "SCIM token" } dd.mono { (token) }
            }
        }
    }
}

/// `POST /console/tenants`: the new tenant's first SCIM token is shown once, in this answer.
pub async fn create_tenant(
    store: web::Data<Store>,
    config: web::Data<Config>,
    CsrfForm { session, form }: CsrfForm<CreateTenantForm>,
) -> Result<HttpResponse, ConsoleError> {
    let name = TenantName::parse(form.name.trim())
        .map_err(|e| ConsoleError::BadRequest(format!("name: {e}")))?;
    let created = store.create_tenant(&name, &session.actor).await?;
    let tenant = created.tenant.name.clone();
    let body = html! {
        h1 { "Tenant " (tenant) " created" }
        (secret_once("tenant", &scim_base_url(&config, &tenant), created.token.token.expose()))
        p { a href={ "/console/tenants/" (seg(&tenant)) } { "Go to the tenant" } }
    };
    Ok(ok(page(
        &session,
        "/console/tenants",
        "Tenant created",
        body,
    )))
}

/// `GET /console/tenants/{tenant}`: its SCIM tokens (hints only), issue and revoke.
pub async fn tenant(
    session: Session,
    store: web::Data<Store>,
    config: web::Data<Config>,
    name: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let t = store.tenant(&name).await?;
    let tokens = store.list_scim_tokens(&t.name).await?;
    let base = format!("/console/tenants/{}", seg(&t.name));
    let body = html! {
        h1 { "Tenant " (t.name) }
        (flash(message(q.msg.as_deref())))
        dl.kv {
            dt { "SCIM base URL" } dd.mono { (scim_base_url(&config, &t.name)) }
            dt { "Id" } dd.mono { (t.id) }
            dt { "Created" } dd { (time(t.created_at)) }
        }
        h2 { "SCIM tokens" }
        p.muted { "To rotate: issue a new token, configure it in the identity provider, then revoke the old one." }
        table #tokens {
            thead { tr { th { "Hint" } th { "Label" } th { "Created" } th { "Revoked" } th { "" } } }
            tbody {
                @for tok in &tokens {
                    tr {
                        td.mono { (tok.hint) }
                        td { (tok.label.as_deref().unwrap_or("")) }
                        td { (time(tok.created_at)) }
                        td { (time_opt(tok.revoked_at)) }
                        td {
                            @if tok.revoked_at.is_none() {
                                form.inline method="post" action={ (base) "/tokens/" (seg(&tok.id)) "/revoke" } {
                                    (csrf_field(&session))
                                    label { input type="checkbox" name="confirm" value="yes" required; " sure" }
                                    " "
                                    button.danger type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Issue a SCIM token" }
        form.stack method="post" action={ (base) "/tokens" } {
            (csrf_field(&session))
            label for="label" { "Label (optional, e.g. okta-prod)" }
            input #label name="label";
            button type="submit" { "Issue" }
        }
    };
    Ok(ok(page(&session, "/console/tenants", "Tenant", body)))
}

#[derive(Debug, Deserialize)]
pub struct IssueTokenForm {
    #[serde(default)]
    label: Option<String>,
}

/// `POST /console/tenants/{tenant}/tokens`: the value is shown once, in this answer.
pub async fn issue_token(
    store: web::Data<Store>,
    config: web::Data<Config>,
    name: web::Path<String>,
    CsrfForm { session, form }: CsrfForm<IssueTokenForm>,
) -> Result<HttpResponse, ConsoleError> {
    let label = form.label.filter(|l| !l.trim().is_empty());
    let (_, token) = store
        .issue_scim_token(&name, label.as_deref(), &session.actor)
        .await?;
    let body = html! {
        h1 { "SCIM token issued for " (name.as_str()) }
        (secret_once("SCIM token", &scim_base_url(&config, &name), token.token.expose()))
        p { a href={ "/console/tenants/" (seg(&name)) } { "Back to the tenant" } }
    };
    Ok(ok(page(
        &session,
        "/console/tenants",
        "SCIM token issued",
        body,
    )))
}

/// `POST /console/tenants/{tenant}/tokens/{id}/revoke`
pub async fn revoke_token(
    store: web::Data<Store>,
    path: web::Path<(String, String)>,
    CsrfForm { session, .. }: CsrfForm<NoFields>,
) -> Result<HttpResponse, ConsoleError> {
    let (tenant, id) = path.into_inner();
    store
        .revoke_scim_token(&tenant, &id, &session.actor)
        .await?;
    Ok(see_other(&format!(
        "/console/tenants/{}?msg=revoked",
        seg(&tenant)
    )))
}

// ---- keys ------------------------------------------------------------------------------

/// `GET /console/keys`
pub async fn keys(
    session: Session,
    keys: web::Data<Arc<KeyRing>>,
) -> Result<HttpResponse, ConsoleError> {
    let list = keys.list().await?;
    let body = html! {
        h1 { "Signing keys" }
        p.muted { "Public parts only. A rotated key stays in the JWKS until every token it signed has expired." }
        table #keys {
            thead { tr { th { "kid" } th { "Alg" } th { "Status" } th { "Source" } th { "Created" } th { "Retired" } } }
            tbody {
                @for k in &list {
                    tr {
                        td.mono { (k.kid) }
                        td { (k.alg) }
                        td { (badge(&k.status)) }
                        td { (k.source) }
                        td { (time(k.created_at)) }
                        td { (time_opt(k.retired_at)) }
                    }
                }
            }
        }
        h2 { "Rotate" }
        form.stack method="post" action="/console/keys/rotate" {
            (csrf_field(&session))
            label for="alg" { "Algorithm" }
            select #alg name="alg" { option { "RS256" } option { "ES256" } option { "EdDSA" } }
            button type="submit" { "Rotate" }
        }
    };
    Ok(ok(page(&session, "/console/keys", "Keys", body)))
}

#[derive(Debug, Deserialize)]
pub struct RotateForm {
    alg: String,
}

/// `POST /console/keys/rotate`
pub async fn rotate(
    keys: web::Data<Arc<KeyRing>>,
    CsrfForm { session, form }: CsrfForm<RotateForm>,
) -> Result<HttpResponse, ConsoleError> {
    let alg = SigningAlgorithm::parse(&form.alg)
        .map_err(|e| ConsoleError::BadRequest(format!("alg: {e}")))?;
    keys.rotate(alg, &session.actor).await?;
    Ok(see_other("/console/keys"))
}

// ---- audit -----------------------------------------------------------------------------

/// `GET /console/audit`
pub async fn audit(
    session: Session,
    store: web::Data<Store>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let offset = q.offset.unwrap_or(0);
    let (total, rows) = store.audit_page(None, PAGE.min(MAX_LIMIT), offset).await?;
    let body = html! {
        h1 { "Audit log" }
        table #audit {
            thead { tr { th { "When" } th { "Actor" } th { "Action" } th { "Subject" } th { "Detail" } } }
            tbody {
                @for a in &rows {
                    tr {
                        td.nowrap { (time(a.occurred_at)) }
                        td.mono { (a.actor) }
                        td.mono { (a.action) }
                        td.mono.wrap { (a.subject_type) " " (a.subject_id.as_deref().unwrap_or("")) }
                        td.mono.wrap { (a.detail.to_string()) }
                    }
                }
            }
        }
        (pager("/console/audit", offset, rows.len(), total))
    };
    Ok(ok(page(&session, "/console/audit", "Audit", body)))
}

/// `POST /console/ops/{tenant}/{op}/enable|disable`: as `PATCH /admin/v1/tenants/{t}/ops/{op}`
/// (grants are kept; deliveries to a disabled target are cancelled when due).
pub async fn set_op_enabled(
    store: web::Data<Store>,
    path: web::Path<(String, String, String)>,
    CsrfForm { session, .. }: CsrfForm<NoFields>,
) -> Result<HttpResponse, ConsoleError> {
    let (tenant, op, action) = path.into_inner();
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return Err(ConsoleError::NotFound(format!("no action {action:?}"))),
    };
    store
        .set_target_enabled(
            &tenant,
            &deprov_store::op_targets::op_kinds(),
            &op,
            enabled,
            &session.actor,
        )
        .await?;
    Ok(see_other("/console/targets"))
}
