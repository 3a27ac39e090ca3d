//! The HTTP handlers, thin: extract, turn wire data into a store call, map the result.
//! Shared here: reading bodies, query parameters, list requests, conditional requests
//! (RFC 7644 §3.14) and SCIM responses.

pub mod groups;
pub mod search;
pub mod users;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use deprov_core::scim::{ListQuery, SortOrder};
use serde_json::{Map, Value};

use crate::ScimLimits;
use crate::error::{SCIM_CONTENT_TYPE, ScimError, ScimResult};
use crate::filter::{FilterLimits, resolve_filter, resolve_sort};
use crate::resource::render::{Projection, parse_etag};
use crate::schema::ResourceSchema;

pub const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A SCIM JSON response.
pub fn scim_json(status: StatusCode, body: &Value) -> HttpResponse {
    scim_builder(status).body(json_bytes(body))
}

/// A JSON document as bytes, written straight into the buffer (`Display` goes through
/// `fmt::Write`, a few times slower on large documents).
pub fn json_bytes(body: &Value) -> Vec<u8> {
    // Room for a typical user, so that the buffer is not regrown on the way.
    let mut out = Vec::with_capacity(1024);
    // A `Value` always serialises (its keys are strings); the fallback is never taken.
    match serde_json::to_writer(&mut out, body) {
        Ok(()) => out,
        Err(_) => body.to_string().into_bytes(),
    }
}

pub fn scim_builder(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    // A static value, so that every response does not parse and check the text again.
    b.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    ));
    b
}

/// Reads a JSON body: `application/scim+json`, `application/json` or no content type;
/// at most `limit` bytes (413 otherwise); JSON errors are 400 `invalidSyntax`.
pub async fn read_json(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> ScimResult<Value> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        let essence = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            essence.as_str(),
            "application/scim+json" | "application/json" | ""
        ) {
            return Err(ScimError::unsupported_media_type(ct));
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ScimError::payload_too_large(limit));
    }
    let bytes = match payload.to_bytes_limited(limit).await {
        Err(_) => return Err(ScimError::payload_too_large(limit)),
        Ok(Err(e)) => {
            return Err(ScimError::invalid_syntax(format!(
                "cannot read the body: {e}"
            )));
        }
        Ok(Ok(bytes)) => bytes,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::invalid_syntax("the request needs a JSON body"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")))
}

/// Query parameters, names matched case-insensitively.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn of(req: &HttpRequest) -> Self {
        Self(
            url::form_urlencoded::parse(req.query_string().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| vec![v.to_owned()])
            .unwrap_or_default()
    }

    pub fn projection(&self, schema: &ResourceSchema) -> ScimResult<Projection> {
        Projection::parse(
            schema,
            &self.list("attributes"),
            &self.list("excludedAttributes"),
        )
    }
}

/// A list or search request before resolution (RFC 7644 §3.4.2, §3.4.3).
#[derive(Debug, Default)]
pub struct ListParams {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

fn parse_int(name: &str, v: &str) -> ScimResult<i64> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer, got {v:?}")))
}

impl ListParams {
    pub fn from_query(q: &Query) -> ScimResult<Self> {
        Ok(Self {
            filter: q.get("filter").map(str::to_owned),
            sort_by: q.get("sortBy").map(str::to_owned),
            sort_order: q.get("sortOrder").map(str::to_owned),
            start_index: q
                .get("startIndex")
                .map(|v| parse_int("startIndex", v))
                .transpose()?,
            count: q.get("count").map(|v| parse_int("count", v)).transpose()?,
            attributes: q.list("attributes"),
            excluded: q.list("excludedAttributes"),
        })
    }

    /// A `SearchRequest` body (RFC 7644 §3.4.3); member names case-insensitive.
    pub fn from_search(body: &Value) -> ScimResult<Self> {
        use crate::resource::value::get_ci;
        let Value::Object(map) = body else {
            return Err(ScimError::invalid_syntax(
                "a search request must be a JSON object",
            ));
        };
        let string = |name: &str| -> ScimResult<Option<String>> {
            match get_ci(map, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
            }
        };
        let int = |name: &str| -> ScimResult<Option<i64>> {
            match get_ci(map, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
                Some(Value::String(s)) => parse_int(name, s).map(Some),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{name} must be an integer"
                ))),
            }
        };
        let names = |name: &str| -> ScimResult<Vec<String>> {
            match get_ci(map, name) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_owned).ok_or_else(|| {
                            ScimError::invalid_value(format!("{name} must list strings"))
                        })
                    })
                    .collect(),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{name} must be an array of strings"
                ))),
            }
        };
        Ok(Self {
            filter: string("filter")?,
            sort_by: string("sortBy")?,
            sort_order: string("sortOrder")?,
            start_index: int("startIndex")?,
            count: int("count")?,
            attributes: names("attributes")?,
            excluded: names("excludedAttributes")?,
        })
    }

    /// Resolves against a resource type: filter, sort, bounds (RFC 7644 §3.4.2.4: a
    /// `startIndex` below 1 is 1, a negative `count` is 0; a `count` above `maxResults` is
    /// capped, not refused).
    pub fn resolve(
        &self,
        schema: &ResourceSchema,
        limits: &ScimLimits,
    ) -> ScimResult<(ListQuery, Projection)> {
        let filter = match self.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(resolve_filter(
                schema,
                raw,
                FilterLimits {
                    max_length: limits.max_filter_length,
                    max_depth: limits.max_filter_depth,
                },
            )?),
        };
        let sort_by = match self.sort_by.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(resolve_sort(schema, raw)?),
        };
        let sort_order = match self.sort_order.as_deref().map(str::trim) {
            None | Some("") => SortOrder::Ascending,
            Some(s) if s.eq_ignore_ascii_case("ascending") => SortOrder::Ascending,
            Some(s) if s.eq_ignore_ascii_case("descending") => SortOrder::Descending,
            Some(s) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder {s:?} is not \"ascending\" or \"descending\""
                )));
            }
        };
        let max = u64::from(limits.max_results);
        let count = self
            .count
            .map_or(max, |c| u64::try_from(c.max(0)).unwrap_or(0).min(max));
        let start_index = self
            .start_index
            .map_or(1, |s| u64::try_from(s.max(1)).unwrap_or(1));
        let projection = Projection::parse(schema, &self.attributes, &self.excluded)?;
        Ok((
            ListQuery {
                filter,
                sort_by,
                sort_order,
                start_index,
                count,
            },
            projection,
        ))
    }
}

/// A rendered resource's JSON text, as a list response carries it.
pub fn json_text(value: &Value) -> String {
    // A `Value` always serialises (its keys are strings).
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// A ListResponse (RFC 7644 §3.4.2), its resources already rendered as JSON text.
pub fn list_response(total: u64, start_index: u64, resources: Vec<String>) -> HttpResponse {
    let mut out = String::with_capacity(160 + resources.iter().map(|r| r.len() + 1).sum::<usize>());
    out.push_str("{\"schemas\":[\"");
    out.push_str(LIST_RESPONSE_URN);
    let mut number = itoa::Buffer::new();
    out.push_str("\"],\"totalResults\":");
    out.push_str(number.format(total));
    out.push_str(",\"startIndex\":");
    out.push_str(number.format(start_index));
    out.push_str(",\"itemsPerPage\":");
    out.push_str(number.format(resources.len()));
    out.push_str(",\"Resources\":[");
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r);
    }
    out.push_str("]}");
    scim_builder(StatusCode::OK).body(out)
}

/// `If-Match` (RFC 7644 §3.14): `Ok` when absent, `*`, or naming `version`; else 412.
pub fn check_if_match(req: &HttpRequest, version: i64) -> ScimResult<()> {
    match if_match(req) {
        None => Ok(()),
        Some(tags)
            if tags
                .iter()
                .any(|t| t == "*" || parse_etag(t) == Some(version)) =>
        {
            Ok(())
        }
        Some(_) => Err(ScimError::precondition_failed()),
    }
}

pub fn if_match(req: &HttpRequest) -> Option<Vec<String>> {
    header_tags(req, header::IF_MATCH)
}

/// `If-None-Match` on a read: true when the client already has `version`.
pub fn not_modified(req: &HttpRequest, version: i64) -> bool {
    header_tags(req, header::IF_NONE_MATCH).is_some_and(|tags| {
        tags.iter()
            .any(|t| t == "*" || parse_etag(t) == Some(version))
    })
}

fn header_tags(req: &HttpRequest, name: header::HeaderName) -> Option<Vec<String>> {
    let values: Vec<String> = req
        .headers()
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    (!values.is_empty()).then_some(values)
}

/// The version a conditional DELETE must match: `None` without `If-Match` or with `*`.
pub fn delete_precondition(req: &HttpRequest) -> ScimResult<Option<i64>> {
    match if_match(req) {
        None => Ok(None),
        Some(tags) if tags.iter().any(|t| t == "*") => Ok(None),
        Some(tags) => tags
            .iter()
            .find_map(|t| parse_etag(t))
            .map(Some)
            .ok_or_else(ScimError::precondition_failed),
    }
}

pub fn etag_header(version: i64) -> (header::HeaderName, HeaderValue) {
    let tag = crate::resource::render::etag(version);
    (
        header::ETAG,
        HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("W/\"0\"")),
    )
}

pub fn not_modified_response(version: i64) -> HttpResponse {
    HttpResponse::NotModified()
        .insert_header(etag_header(version))
        .finish()
}

/// 405 with a SCIM body (RFC 7644 §3.12), for every method a route does not serve.
pub async fn method_not_allowed() -> HttpResponse {
    use actix_web::ResponseError;
    ScimError::method_not_allowed().error_response()
}

/// 404 with a SCIM body for every unknown path under the SCIM base.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    ScimError::not_found(format!("no SCIM endpoint at {}", req.path())).error_response()
}

/// The object inside a stored resource value.
pub fn object(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    }
}

/// How many times a read-modify-write is retried when another write won the race
/// (only when the client did not ask for a version with `If-Match`).
pub const RETRIES: usize = 3;
