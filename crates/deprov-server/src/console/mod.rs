//! The web console at `/console`: server-rendered HTML (maud), a stylesheet, no JavaScript.
//!
//! An operator signs in with an admin token ([`session`]) and gets the overview (queue,
//! events per hour and per day, health of each target), event trails, targets (register,
//! edit, enable or disable, remove, send a test logout), dead letters (re-drive one or all),
//! tenants and their SCIM tokens, signing keys, and the audit log ([`pages`]). The pages
//! read and change state through the same store and key-ring calls as the admin API and
//! the CLI, and every change is audited as the signed-in admin.
//!
//! Defences: sessions in the database (hash only), HttpOnly + `SameSite=Strict` (+ `Secure`
//! on https) cookie, CSRF token and `Origin` check on every POST ([`session::CsrfForm`]),
//! a strict Content-Security-Policy (no script at all, styles only from this origin), no
//! framing, no referrer to other sites, no caching.

pub mod html;
pub mod pages;
pub mod session;
pub mod test_logout;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError, web};
use maud::html;

use crate::admin::problem::AdminError;

/// Where the console is mounted.
pub const BASE_PATH: &str = "/console";

/// What a console request can fail with; each renders as a small HTML page, except
/// [`ConsoleError::SignIn`], which sends the browser to the sign-in page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("sign-in required")]
    SignIn,
    /// A form without a valid CSRF token, or from another origin: nothing was changed.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// Store and key errors mean the same here as in the admin API: reuse its translation.
impl From<AdminError> for ConsoleError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(m) => Self::NotFound(m),
            AdminError::Conflict(m) => Self::Conflict(m),
            AdminError::Internal(e) => Self::Internal(e),
            other => Self::BadRequest(other.to_string()),
        }
    }
}

impl From<deprov_store::StoreError> for ConsoleError {
    fn from(e: deprov_store::StoreError) -> Self {
        AdminError::from(e).into()
    }
}

impl From<deprov_revocation::keys::KeyError> for ConsoleError {
    fn from(e: deprov_revocation::keys::KeyError) -> Self {
        AdminError::from(e).into()
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn => StatusCode::SEE_OTHER,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let Self::SignIn = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, HeaderValue::from_static("/console/login")))
                .finish();
        }
        let detail = match self {
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "console request failed");
                "Internal error; the server log has the cause.".to_owned()
            }
            other => other.to_string(),
        };
        let title = status.canonical_reason().unwrap_or("Error");
        html::render(
            status,
            html::page_bare(
                title,
                html! {
                    main {
                        h1 { (status.as_u16()) " " (title) }
                        p.flash.error #error { (detail) }
                        p { a href="/console" { "Back to the console" } }
                    }
                },
            ),
        )
    }
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(html::CSS)
}

async fn not_found() -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::NotFound("no such console page".to_owned()))
}

/// Mounts the console (when enabled). Needs the same app data as the admin API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use pages as p;
    cfg.service(
        web::scope(BASE_PATH)
            .app_data(web::PayloadConfig::new(session::MAX_FORM_BYTES))
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add((
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; style-src 'self'; img-src 'self'; \
                         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                    ))
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    // Not `no-referrer`: with it, browsers send `Origin: null` on form posts,
                    // which the origin check must refuse. Other sites still see nothing.
                    .add((header::REFERRER_POLICY, "same-origin"))
                    .add((header::CACHE_CONTROL, "no-store")),
            )
            .route("", web::get().to(p::overview))
            .route("/", web::get().to(p::overview))
            .route("/static/console.css", web::get().to(stylesheet))
            .route("/login", web::get().to(session::sign_in_form))
            .route("/login", web::post().to(session::sign_in))
            .route("/logout", web::post().to(session::sign_out))
            .route("/events", web::get().to(p::events))
            .route("/events/{id}", web::get().to(p::event))
            .route("/dead-letters", web::get().to(p::dead_letters))
            .route("/dead-letters/retry-all", web::post().to(p::retry_all))
            .route("/deliveries/{id}/retry", web::post().to(p::retry))
            .route("/targets", web::get().to(p::targets))
            .route("/targets", web::post().to(p::add_target))
            .route("/targets/{tenant}/{rp}", web::get().to(p::target))
            .route(
                "/targets/{tenant}/{rp}/edit",
                web::post().to(p::edit_target),
            )
            .route(
                "/targets/{tenant}/{rp}/enabled",
                web::post().to(p::set_enabled),
            )
            .route("/targets/{tenant}/{rp}/remove", web::post().to(p::remove))
            .route(
                "/targets/{tenant}/{rp}/test",
                web::post().to(p::test_logout),
            )
            .route(
                "/ops/{tenant}/{op}/{action}",
                web::post().to(p::set_op_enabled),
            )
            .route("/tenants", web::get().to(p::tenants))
            .route("/tenants", web::post().to(p::create_tenant))
            .route("/tenants/{tenant}", web::get().to(p::tenant))
            .route("/tenants/{tenant}/tokens", web::post().to(p::issue_token))
            .route(
                "/tenants/{tenant}/tokens/{id}/revoke",
                web::post().to(p::revoke_token),
            )
            .route("/keys", web::get().to(p::keys))
            .route("/keys/rotate", web::post().to(p::rotate))
            .route("/audit", web::get().to(p::audit))
            .default_service(web::to(not_found)),
    );
}
