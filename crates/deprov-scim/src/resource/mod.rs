//! User and Group bodies: from what a client sends to the canonical representation the
//! store keeps, and back (rendering, `meta`, projection).
//!
//! The canonical representation is the SCIM resource with the schema's attribute names,
//! extension attributes nested under their schema URN, values normalised by
//! [`value::normalise`], and without what the server owns or never keeps: `id`, `meta`,
//! `groups` (readOnly: RFC 7644 §3.5.1 says to ignore them) and `password` (writeOnly and
//! `returned: never`; deprov has no use for it, so it is dropped, never stored). Group
//! `members` are kept apart, as [`MemberRef`]s, because the store keeps them as rows.

pub mod members;
pub mod render;
pub mod value;

use deprov_core::scim::{MemberRef, ResourceKind};
use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::schema::{Mutability, ResourceSchema};
use value::{Unknown, normalise};

/// A body in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalised {
    pub resource: Map<String, Value>,
    /// Group members, when the body has a `members` attribute (`Some(vec![])` for `[]` or
    /// `null`: an explicit clear).
    pub members: Option<Vec<MemberRef>>,
}

/// Normalises a POST or PUT body (RFC 7644 §3.3, §3.5.1). Unknown attributes are ignored
/// (logged at debug), readOnly ones too; type errors are 400 `invalidValue`; the result is
/// checked against the RFC's REQUIRED rules by `scim_v2`.
pub fn normalise_body(schema: &ResourceSchema, body: &Value) -> ScimResult<Normalised> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    let mut resource = Map::new();
    let mut members = None;
    for (key, v) in body {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = schema.extension(key) {
            let Value::Object(ext_body) = v else {
                if v.is_null() {
                    continue;
                }
                return Err(ScimError::invalid_value(format!(
                    "{} must be an object",
                    ext.id
                )));
            };
            let mut out = Map::new();
            for (k, ev) in ext_body {
                let Some(attr) = ext.attr(k) else {
                    tracing::debug!(attribute = %k, schema = %ext.id, "unknown attribute ignored");
                    continue;
                };
                if matches!(
                    attr.mutability,
                    Mutability::ReadOnly | Mutability::WriteOnly
                ) {
                    continue;
                }
                let at = format!("{}:{}", ext.id, attr.name);
                if let Some(nv) = normalise(attr, ev, Unknown::Ignore, &at)? {
                    insert_once(&mut out, &attr.name, nv, &at)?;
                }
            }
            if !out.is_empty() {
                insert_once(&mut resource, &ext.id, Value::Object(out), &ext.id)?;
            }
            continue;
        }
        let found = match schema.find(None, key) {
            Some(found) => Some(found),
            // `urn:…:User:userName`: a URN-qualified core or extension attribute.
            None => crate::schema::parse_attr_path(key)
                .filter(|p| p.sub_attr.is_none())
                .and_then(|p| schema.find(p.uri.as_deref(), &p.name)),
        };
        let Some(found) = found else {
            tracing::debug!(attribute = %key, "unknown attribute ignored");
            continue;
        };
        let attr = found.attr;
        if matches!(
            attr.mutability,
            Mutability::ReadOnly | Mutability::WriteOnly
        ) {
            continue;
        }
        if schema.kind == ResourceKind::Group && attr.name == "members" {
            members = Some(members::parse_members(v)?);
            continue;
        }
        let at = found.path(None).join(":");
        if let Some(nv) = normalise(attr, v, Unknown::Ignore, &at)? {
            match found.extension {
                None => insert_once(&mut resource, &attr.name, nv, &at)?,
                Some(ext) => {
                    let slot = resource
                        .entry(ext.id.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(m) = slot {
                        insert_once(m, &attr.name, nv, &at)?;
                    }
                }
            }
        }
    }
    set_schemas(schema, &mut resource);
    validate(schema, &resource)?;
    Ok(Normalised { resource, members })
}

fn insert_once(map: &mut Map<String, Value>, key: &str, value: Value, at: &str) -> ScimResult<()> {
    if map.insert(key.to_owned(), value).is_some() {
        return Err(ScimError::invalid_value(format!(
            "{at} is given more than once (attribute names differing only in case are the same attribute, RFC 7643 §2.1)"
        )));
    }
    Ok(())
}

/// Sets `schemas` to the core URN plus the URN of every extension present.
pub fn set_schemas(schema: &ResourceSchema, resource: &mut Map<String, Value>) {
    let mut urns = vec![Value::String(schema.core.id.clone())];
    for ext in &schema.extensions {
        if resource.contains_key(&ext.id) {
            urns.push(Value::String(ext.id.clone()));
        }
    }
    resource.insert("schemas".to_owned(), Value::Array(urns));
}

/// Drops empty objects and arrays left behind (RFC 7643 §2.5: unassigned, `null` and `[]`
/// are the same state), then refreshes `schemas`.
pub fn tidy(schema: &ResourceSchema, resource: &mut Map<String, Value>) {
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        }
    }
    fn tidy_map(map: &mut Map<String, Value>) {
        for v in map.values_mut() {
            match v {
                Value::Object(inner) => tidy_map(inner),
                Value::Array(items) => {
                    for item in items.iter_mut() {
                        if let Value::Object(inner) = item {
                            tidy_map(inner);
                        }
                    }
                    items.retain(|i| !empty(i));
                }
                _ => {}
            }
        }
        map.retain(|_, v| !empty(v));
    }
    tidy_map(resource);
    set_schemas(schema, resource);
}

/// The RFC's REQUIRED rules, checked by `scim_v2` on the canonical form (`userName` for a
/// User, `displayName` for a Group, at most one `primary` per multi-valued attribute).
pub fn validate(schema: &ResourceSchema, resource: &Map<String, Value>) -> ScimResult<()> {
    use scim_v2::Validate;
    let value = Value::Object(resource.clone());
    let shape_error = |e: serde_json::Error| ScimError::invalid_value(e.to_string());
    match schema.kind {
        ResourceKind::User => {
            let user: scim_v2::models::user::User =
                serde_json::from_value(value).map_err(|e| match e.to_string() {
                    m if m.contains("missing field `userName`") => {
                        ScimError::invalid_value("userName: required attribute is missing or empty")
                    }
                    _ => shape_error(e),
                })?;
            user.validate()?;
        }
        ResourceKind::Group => {
            let group: scim_v2::models::group::Group =
                serde_json::from_value(value).map_err(|e| match e.to_string() {
                    m if m.contains("missing field `displayName`") => ScimError::invalid_value(
                        "displayName: required attribute is missing or empty",
                    ),
                    _ => shape_error(e),
                })?;
            group.validate()?;
        }
    }
    Ok(())
}

/// RFC 7644 §3.5.1: an `immutable` attribute that has a value may not be changed by PUT.
pub fn check_immutable(
    schema: &ResourceSchema,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> ScimResult<()> {
    let attrs = schema.core.attributes.iter().map(|a| (None, a)).chain(
        schema
            .extensions
            .iter()
            .flat_map(|e| e.attributes.iter().map(move |a| (Some(e), a))),
    );
    for (ext, attr) in attrs {
        if attr.mutability != Mutability::Immutable {
            continue;
        }
        let get = |m: &Map<String, Value>| -> Option<Value> {
            match ext {
                None => m.get(&attr.name).cloned(),
                Some(e) => m.get(&e.id).and_then(|x| x.get(&attr.name)).cloned(),
            }
        };
        if let Some(old) = get(before)
            && get(after).as_ref() != Some(&old)
        {
            return Err(ScimError::mutability(format!(
                "{} is immutable and already has a value",
                attr.name
            )));
        }
    }
    Ok(())
}

/// Reads a top-level string attribute of a canonical resource.
pub fn string_attr(resource: &Map<String, Value>, name: &str) -> Option<String> {
    resource
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests;
