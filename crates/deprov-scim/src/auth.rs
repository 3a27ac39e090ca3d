//! Authentication (RFC 7644 §2): the tenant's SCIM token as a bearer token (RFC 6750) or
//! as the password of HTTP Basic (RFC 7617; the user name is ignored — Okta offers Basic).
//! The tenant is the one named in the path; a token of another tenant, an unknown tenant
//! and a wrong token all get the same 401, so nothing tells them apart.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use base64::Engine as _;
use deprov_store::Store;
use deprov_store::scim::RequestContext;
use deprov_store::tenants::Tenant;

use crate::ScimConfig;
use crate::error::ScimError;
use crate::request_id::RequestId;

/// An authenticated SCIM request: the tenant, the store and the settings.
#[derive(Debug)]
pub struct Scim {
    pub tenant: Tenant,
    pub store: web::Data<Store>,
    pub config: web::Data<ScimConfig>,
    pub request_id: String,
}

impl Scim {
    /// The context the store records with the events a change causes.
    pub fn ctx(&self, req: &HttpRequest) -> RequestContext {
        let base = format!("/scim/v2/{}", self.tenant.name);
        let path = req.path().strip_prefix(&base).unwrap_or(req.path());
        RequestContext {
            tenant_id: self.tenant.id.clone(),
            request_id: self.request_id.clone(),
            method: req.method().to_string(),
            path: path.to_owned(),
            actor: format!("scim:{}", self.tenant.name),
        }
    }

    /// `{public_url}/scim/v2/{tenant}`.
    pub fn base_url(&self) -> String {
        format!("{}/scim/v2/{}", self.config.public_url, self.tenant.name)
    }

    /// `{base_url}/{kind}/{id}`, the `meta.location` of a resource (built on every read,
    /// so without `format!`).
    pub fn resource_url(&self, kind: &str, id: &str) -> String {
        let (public, tenant) = (self.config.public_url.as_str(), self.tenant.name.as_str());
        let mut url =
            String::with_capacity(public.len() + tenant.len() + kind.len() + id.len() + 11);
        for part in [public, "/scim/v2/", tenant, "/", kind, "/", id] {
            url.push_str(part);
        }
        url
    }
}

/// The token presented in `Authorization`, if any.
pub fn presented_token(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_user, password) = text.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_owned());
    }
    None
}

async fn authenticate(req: HttpRequest) -> Result<Scim, ScimError> {
    let store = req
        .app_data::<web::Data<Store>>()
        .cloned()
        .ok_or_else(|| ScimError::internal(&Missing("the store is not registered")))?;
    let config = req
        .app_data::<web::Data<ScimConfig>>()
        .cloned()
        .ok_or_else(|| ScimError::internal(&Missing("the SCIM configuration is not registered")))?;
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let tenant_name = req
        .match_info()
        .get("tenant")
        .unwrap_or_default()
        .to_owned();
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(presented_token)
        .ok_or_else(ScimError::unauthorized)?;
    let tenant = store
        .authenticate_scim(&tenant_name, &token)
        .await?
        .ok_or_else(ScimError::unauthorized)?;
    Ok(Scim {
        tenant,
        store,
        config,
        request_id,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Missing(&'static str);

impl FromRequest for Scim {
    type Error = ScimError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::presented_token;

    #[test]
    fn bearer_and_basic_carry_the_token() {
        assert_eq!(presented_token("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(presented_token("bearer   abc ").as_deref(), Some("abc"));
        // "okta:tok" in base64.
        assert_eq!(
            presented_token("Basic b2t0YTp0b2s=").as_deref(),
            Some("tok")
        );
        assert_eq!(presented_token("Basic !!!"), None);
        assert_eq!(presented_token("Basic b2t0YQ=="), None);
        assert_eq!(presented_token("Bearer "), None);
        assert_eq!(presented_token("Digest x"), None);
        assert_eq!(presented_token("abc"), None);
    }
}
