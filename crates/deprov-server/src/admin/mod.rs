//! The admin API, `/admin/v1`: tenants and their SCIM tokens, relying parties, OP targets
//! and the grants they hold (metadata only), events and
//! their trails, deliveries (re-drive, cancel), signing keys, admin tokens and the audit
//! log, for an operator holding an admin token ([`auth`]). JSON in and out; every error is
//! an RFC 9457 problem document ([`problem`]); every change is audited as
//! `admin:<token hint>`.
//!
//! Its OpenAPI 3 document is generated from the handlers' `#[utoipa::path]` attributes and
//! served at `/admin/v1/openapi.json` (without authentication: it holds no data). One list,
//! [`admin_routes!`] below, registers every route with actix *and* names every handler in
//! the document, and [`ROUTES`] exposes it, so a test can check that the document's
//! (method, path) pairs are exactly the registered ones and that each answers.

pub mod admin_tokens;
pub mod audit;
pub mod auth;
pub mod deliveries;
pub mod events;
pub mod extract;
pub mod keys;
pub mod ops;
pub mod problem;
pub mod relying_parties;
pub mod tenants;
pub mod views;

use std::sync::LazyLock;

use actix_web::{HttpRequest, HttpResponse, web};
use deprov_store::Store;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use self::problem::{AdminError, PROBLEM_JSON, Problem};
use self::views::InvalidField;

/// Where the admin API is mounted.
pub const BASE_PATH: &str = "/admin/v1";

impl From<InvalidField> for AdminError {
    fn from(e: InvalidField) -> Self {
        AdminError::invalid(e.field, e.message)
    }
}

/// The id of the tenant named `name`, when a filter names one.
async fn tenant_id(store: &Store, name: Option<&str>) -> Result<Option<String>, AdminError> {
    match name {
        Some(n) => Ok(Some(store.tenant(n).await?.id)),
        None => Ok(None),
    }
}

/// Declares the routes once: `METHOD "path" => handler`. Expands to [`ROUTES`], the
/// function that registers them with actix, and the OpenAPI document listing the same
/// handlers — so a route cannot be registered without its handler being in the document.
macro_rules! admin_routes {
    ($($method:ident $path:literal => $($handler:ident)::+),* $(,)?) => {
        /// Every admin route as (lower-case HTTP method, path below [`BASE_PATH`]).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn register(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($($handler)::+));)*
        }

        #[derive(utoipa::OpenApi)]
        #[openapi(
            info(
                title = "deprov admin API",
                description = "Operate deprov: tenants and SCIM tokens, relying parties, OP targets, \
                    de-provisioning events and their trails, deliveries and dead letters, \
                    signing keys, admin tokens, the audit log. Authenticate with \
                    `Authorization: Bearer <admin token>`. Errors are RFC 9457 problem \
                    documents (`application/problem+json`). Times are milliseconds since \
                    the Unix epoch."
            ),
            servers((url = "/admin/v1")),
            paths($($($handler)::+),*),
            components(schemas(Problem)),
            security(("admin_token" = [])),
            modifiers(&CommonResponses),
        )]
        struct ApiDoc;
    };
}

admin_routes! {
    get "/tenants" => tenants::list,
    post "/tenants" => tenants::create,
    get "/tenants/{tenant}" => tenants::show,
    get "/tenants/{tenant}/tokens" => tenants::list_tokens,
    post "/tenants/{tenant}/tokens" => tenants::issue_token,
    post "/tenants/{tenant}/tokens/{token_id}/revoke" => tenants::revoke_token,
    get "/tenants/{tenant}/relying-parties" => relying_parties::list,
    post "/tenants/{tenant}/relying-parties" => relying_parties::create,
    get "/tenants/{tenant}/relying-parties/{rp}" => relying_parties::show,
    patch "/tenants/{tenant}/relying-parties/{rp}" => relying_parties::patch,
    delete "/tenants/{tenant}/relying-parties/{rp}" => relying_parties::delete,
    get "/tenants/{tenant}/ops" => ops::list,
    post "/tenants/{tenant}/ops" => ops::create,
    get "/tenants/{tenant}/ops/{op}" => ops::show,
    patch "/tenants/{tenant}/ops/{op}" => ops::patch,
    delete "/tenants/{tenant}/ops/{op}" => ops::delete,
    get "/tenants/{tenant}/ops/{op}/grants" => ops::grants,
    get "/events" => events::list,
    get "/events/{id}" => events::show,
    get "/deliveries" => deliveries::list,
    post "/deliveries/retry-dead" => deliveries::retry_dead,
    get "/deliveries/{id}" => deliveries::show,
    post "/deliveries/{id}/retry" => deliveries::retry,
    post "/deliveries/{id}/cancel" => deliveries::cancel,
    get "/keys" => keys::list,
    post "/keys/rotate" => keys::rotate,
    get "/admin-tokens" => admin_tokens::list,
    post "/admin-tokens" => admin_tokens::issue,
    post "/admin-tokens/{id}/revoke" => admin_tokens::revoke,
    get "/audit" => audit::list,
}

/// Adds what every operation shares: the bearer security scheme, and the 401 and 500
/// problem answers.
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The configured DEPROV_ADMIN_TOKEN, or a stored deprov_admin_… token",
                    ))
                    .build(),
            ),
        );
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                op.responses.responses.insert(
                    "401".to_owned(),
                    problem("No admin token, or not a valid one").into(),
                );
                op.responses
                    .responses
                    .insert("500".to_owned(), problem("Internal error").into());
            }
        }
    }
}

/// The admin API's OpenAPI document, as generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

static OPENAPI_JSON: LazyLock<String> =
    LazyLock::new(|| openapi().to_pretty_json().unwrap_or_default());

async fn serve_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI_JSON.as_str())
}

/// Whether a concrete path (below [`BASE_PATH`]) matches a route's pattern.
fn matches(pattern: &str, path: &str) -> bool {
    let (mut p, mut c) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), c.next()) {
            (None, None) => return true,
            (Some(want), Some(got)) => {
                let param = want.starts_with('{') && want.ends_with('}');
                if !(param && !got.is_empty() || want == got) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Anything under `/admin/v1` that no route matches: 405 with `Allow` when the path exists
/// with other methods, 404 otherwise.
async fn no_route(req: HttpRequest) -> Result<HttpResponse, AdminError> {
    let path = req.path().strip_prefix(BASE_PATH).unwrap_or_default();
    let allow: Vec<String> = ROUTES
        .iter()
        .filter(|(_, pattern)| matches(pattern, path))
        .map(|(method, _)| method.to_ascii_uppercase())
        .collect();
    if allow.is_empty() {
        Err(AdminError::NoRoute {
            method: req.method().to_string(),
            path: req.path().to_owned(),
        })
    } else {
        Err(AdminError::MethodNotAllowed {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            allow,
        })
    }
}

/// Mounts the admin API. Needs `web::Data` of the [`Store`], the
/// [`Config`](crate::config::Config) and the `Arc<KeyRing>` in the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        &format!("{BASE_PATH}/openapi.json"),
        web::get().to(serve_openapi),
    )
    .service(
        web::scope(BASE_PATH)
            .app_data(web::PayloadConfig::new(extract::MAX_BODY_BYTES))
            .wrap(actix_web::middleware::from_fn(auth::require_admin))
            .configure(register)
            .default_service(web::to(no_route)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        assert!(matches("/tenants/{tenant}", "/tenants/acme"));
        assert!(matches("/tenants", "/tenants"));
        assert!(!matches("/tenants/{tenant}", "/tenants/"));
        assert!(!matches("/tenants/{tenant}", "/tenants/acme/tokens"));
        assert!(!matches("/tenants/{tenant}/tokens", "/tenants/acme/keys"));
    }

    #[test]
    fn every_route_is_unique() {
        let mut seen = std::collections::BTreeSet::new();
        assert!(ROUTES.iter().all(|r| seen.insert(*r)));
    }
}
