//! Discovery (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`, served
//! from the documents in `schemas/` with `meta` added. The limits deprov enforces are
//! filled in where SCIM has a place for them (`filter.maxResults`, `bulk.maxPayloadSize`,
//! `bulk.maxOperations`); nothing else differs from the files, which the integration
//! tests check. Writes answer 405.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::ScimLimits;
use crate::auth::Scim;
use crate::error::{ScimError, ScimResult};
use crate::routes::{json_text, list_response, scim_json};
use crate::schema::catalog;

/// The ServiceProviderConfig document as served.
pub fn service_provider_config(limits: &ScimLimits, base: &str) -> ScimResult<Value> {
    let mut doc = catalog()?.service_provider_config.clone();
    doc["filter"]["maxResults"] = json!(limits.max_results);
    doc["bulk"]["maxPayloadSize"] = json!(limits.max_payload_bytes);
    doc["bulk"]["maxOperations"] = json!(limits.max_operations);
    doc["meta"] = json!({
        "resourceType": "ServiceProviderConfig",
        "location": format!("{base}/ServiceProviderConfig"),
    });
    Ok(doc)
}

fn with_meta(doc: &Value, resource_type: &str, location: String) -> Value {
    let mut doc = doc.clone();
    doc["meta"] = json!({ "resourceType": resource_type, "location": location });
    doc
}

fn schema_docs(base: &str) -> ScimResult<Vec<Value>> {
    Ok(catalog()?
        .documents
        .iter()
        .map(|d| {
            let id = d["id"].as_str().unwrap_or_default();
            with_meta(d, "Schema", format!("{base}/Schemas/{id}"))
        })
        .collect())
}

fn resource_type_docs(base: &str) -> ScimResult<Vec<Value>> {
    Ok(catalog()?
        .resource_types
        .iter()
        .map(|d| {
            let id = d["id"].as_str().unwrap_or_default();
            with_meta(d, "ResourceType", format!("{base}/ResourceTypes/{id}"))
        })
        .collect())
}

pub async fn get_service_provider_config(scim: Scim) -> ScimResult<HttpResponse> {
    let doc = service_provider_config(&scim.config.limits, &scim.base_url())?;
    Ok(scim_json(StatusCode::OK, &doc))
}

pub async fn list_schemas(scim: Scim) -> ScimResult<HttpResponse> {
    let docs = schema_docs(&scim.base_url())?;
    let docs: Vec<_> = docs.iter().map(json_text).collect();
    Ok(list_response(docs.len() as u64, 1, docs))
}

/// `/Schemas/{urn}`: the URN in any case (RFC 7643 §2.1).
pub async fn get_schema(scim: Scim, path: web::Path<(String, String)>) -> ScimResult<HttpResponse> {
    schema_docs(&scim.base_url())?
        .into_iter()
        .find(|d| {
            d["id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(&path.1))
        })
        .map(|d| scim_json(StatusCode::OK, &d))
        .ok_or_else(|| ScimError::not_found(format!("no schema {:?}", path.1)))
}

pub async fn list_resource_types(scim: Scim) -> ScimResult<HttpResponse> {
    let docs = resource_type_docs(&scim.base_url())?;
    let docs: Vec<_> = docs.iter().map(json_text).collect();
    Ok(list_response(docs.len() as u64, 1, docs))
}

pub async fn get_resource_type(
    scim: Scim,
    path: web::Path<(String, String)>,
) -> ScimResult<HttpResponse> {
    resource_type_docs(&scim.base_url())?
        .into_iter()
        .find(|d| {
            d["id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(&path.1))
        })
        .map(|d| scim_json(StatusCode::OK, &d))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {:?}", path.1)))
}
