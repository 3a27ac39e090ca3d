//! `/.well-known/openid-configuration` and `/.well-known/jwks.json`: what relying parties
//! fetch to verify deprov's logout tokens.

use std::sync::Arc;

use actix_web::{HttpResponse, get, web};
use deprov_revocation::discovery;
use deprov_revocation::keys::KeyRing;

use crate::config::Config;

#[get("/.well-known/openid-configuration")]
async fn openid_configuration(
    config: web::Data<Config>,
    keys: web::Data<Arc<KeyRing>>,
) -> HttpResponse {
    match keys.published_algorithms().await {
        Ok(algs) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "public, max-age=300"))
            .json(discovery::openid_configuration(&config.public_url(), &algs)),
        Err(e) => unavailable(&e),
    }
}

#[get("/.well-known/jwks.json")]
async fn jwks(keys: web::Data<Arc<KeyRing>>) -> HttpResponse {
    match keys.jwks().await {
        // Short caching: a rotated key must reach verifiers before tokens signed by it do.
        Ok(set) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "public, max-age=60"))
            .content_type("application/jwk-set+json")
            .json(set),
        Err(e) => unavailable(&e),
    }
}

fn unavailable(e: &dyn std::error::Error) -> HttpResponse {
    tracing::warn!(error = %e, "cannot read the signing keys");
    HttpResponse::ServiceUnavailable()
        .json(serde_json::json!({ "error": "temporarily_unavailable" }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openid_configuration).service(jwks);
}
