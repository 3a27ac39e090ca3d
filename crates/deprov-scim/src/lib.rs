//! deprov's SCIM 2.0 service provider (RFC 7643, RFC 7644): the routes Okta and Entra ID
//! push users and groups to, mounted under `/scim/v2/{tenant}` by [`configure`].
//!
//! Module map:
//! - [`schema`]: the catalog of the documents in `schemas/` (attribute definitions);
//! - [`resource`]: request bodies to canonical resources and back (`meta`, projection);
//! - [`patch`]: the PATCH engine with the Okta and Entra dialects;
//! - [`filter`]: `scim_v2` filter ASTs to the store's resolved filters;
//! - [`error`]: the one SCIM error type and its rendering;
//! - `auth`, `request_id`, `discovery`, `routes`: the HTTP side, kept thin.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Unit tests fail by panicking; input paths never do.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auth;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod patch;
pub mod request_id;
pub mod resource;
pub mod routes;
pub mod schema;
mod store_errors;

#[cfg(test)]
mod fuzz_tests;

pub use error::{ScimError, ScimResult};

use actix_web::middleware::from_fn;
use actix_web::web;

/// What the SCIM endpoint needs from the server's configuration.
#[derive(Debug, Clone)]
pub struct ScimConfig {
    /// The public base URL without a trailing slash; `meta.location` and `Location` are
    /// built on it.
    pub public_url: String,
    pub limits: ScimLimits,
}

/// Bounds on SCIM input (mirrors the server configuration's `scim` section).
#[derive(Debug, Clone)]
pub struct ScimLimits {
    /// Largest page (`filter.maxResults`); larger `count`s are capped.
    pub max_results: u32,
    /// Largest request body in bytes.
    pub max_payload_bytes: usize,
    /// Most operations in one PATCH request.
    pub max_operations: usize,
    /// Longest filter expression, in bytes.
    pub max_filter_length: usize,
    /// Deepest nesting of a filter.
    pub max_filter_depth: usize,
    /// Most members added, removed or replaced by one request.
    pub max_members_per_request: usize,
}

impl Default for ScimLimits {
    fn default() -> Self {
        Self {
            max_results: 1000,
            max_payload_bytes: 2 * 1024 * 1024,
            max_operations: 1000,
            max_filter_length: 4096,
            max_filter_depth: 16,
            max_members_per_request: 5000,
        }
    }
}

/// The whole pattern of the SCIM route a request matched (`/scim/v2/{tenant}/Users/{id}`),
/// in the app data of each resource: a label for metrics that costs no allocation and no
/// second walk of actix's resource map, as `HttpRequest::match_pattern` would on every
/// request. Requests no resource took (404) have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutePattern(pub &'static str);

/// `web::resource(PATH)` under the SCIM scope, carrying its [`RoutePattern`].
macro_rules! resource {
    ($path:literal) => {
        web::resource($path).app_data(RoutePattern(concat!("/scim/v2/{tenant}", $path)))
    };
}

/// Mounts the SCIM endpoint under `/scim/v2/{tenant}`. The store must be registered as
/// `web::Data<deprov_store::Store>` by the application.
pub fn configure(cfg: &mut web::ServiceConfig, scim: ScimConfig) {
    use routes::{groups, method_not_allowed, not_found, search, users};
    let refuse = || web::to(method_not_allowed);
    cfg.service(
        // The prefix is repeated in `resource!`, which `concat!` needs as a literal.
        web::scope("/scim/v2/{tenant}")
            .app_data(web::Data::new(scim))
            .wrap(from_fn(request_id::middleware))
            .service(
                resource!("/Users")
                    .route(web::get().to(users::list))
                    .route(web::post().to(users::create))
                    .default_service(refuse()),
            )
            .service(
                resource!("/Users/.search")
                    .route(web::post().to(search::users))
                    .default_service(refuse()),
            )
            .service(
                resource!("/Users/{id}")
                    .route(web::get().to(users::get))
                    .route(web::put().to(users::replace))
                    .route(web::patch().to(users::patch))
                    .route(web::delete().to(users::delete))
                    .default_service(refuse()),
            )
            .service(
                resource!("/Groups")
                    .route(web::get().to(groups::list))
                    .route(web::post().to(groups::create))
                    .default_service(refuse()),
            )
            .service(
                resource!("/Groups/.search")
                    .route(web::post().to(search::groups))
                    .default_service(refuse()),
            )
            .service(
                resource!("/Groups/{id}")
                    .route(web::get().to(groups::get))
                    .route(web::put().to(groups::replace))
                    .route(web::patch().to(groups::patch))
                    .route(web::delete().to(groups::delete))
                    .default_service(refuse()),
            )
            .service(
                resource!("/.search")
                    .route(web::post().to(search::root))
                    .default_service(refuse()),
            )
            .service(
                resource!("/ServiceProviderConfig")
                    .route(web::get().to(discovery::get_service_provider_config))
                    .default_service(refuse()),
            )
            .service(
                resource!("/ResourceTypes")
                    .route(web::get().to(discovery::list_resource_types))
                    .default_service(refuse()),
            )
            .service(
                resource!("/ResourceTypes/{name}")
                    .route(web::get().to(discovery::get_resource_type))
                    .default_service(refuse()),
            )
            .service(
                resource!("/Schemas")
                    .route(web::get().to(discovery::list_schemas))
                    .default_service(refuse()),
            )
            .service(
                resource!("/Schemas/{urn}")
                    .route(web::get().to(discovery::get_schema))
                    .default_service(refuse()),
            )
            .default_service(web::to(not_found)),
    );
}
