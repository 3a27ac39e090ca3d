//! From a stored resource to what a client reads: `id`, `schemas`, `meta` (RFC 7643 §3.1),
//! the weak ETag (RFC 7644 §3.14) and `attributes`/`excludedAttributes` (RFC 7644 §3.9).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::error::{ScimError, ScimResult};
use crate::schema::{Mutability, ResourceSchema, Returned, parse_attr_path};

/// The weak entity tag of a resource version (RFC 7644 §3.14, RFC 7232 §2.3).
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Parses an entity tag sent in `If-Match`/`If-None-Match` back into a version
/// (weak or strong form).
pub fn parse_etag(tag: &str) -> Option<i64> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
}

/// RFC 3339 with millisecond precision, as `xsd:dateTime` (RFC 7643 §2.3.5).
pub fn rfc3339_millis(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What a stored resource needs around it to be rendered.
#[derive(Debug, Clone)]
pub struct Stored<'a> {
    pub id: &'a str,
    pub version: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub location: String,
}

impl Stored<'_> {
    fn meta(&self, schema: &ResourceSchema) -> Value {
        json!({
            "resourceType": schema.name,
            "created": rfc3339_millis(self.created_ms),
            "lastModified": rfc3339_millis(self.updated_ms),
            "location": self.location,
            "version": etag(self.version),
        })
    }
}

/// The top-level attributes never returned, whatever ended up stored (RFC 7643 §7
/// `returned: never`, and writeOnly ones).
fn never_returned(schema: &ResourceSchema) -> impl Iterator<Item = &str> {
    schema
        .core
        .attributes
        .iter()
        .filter(|a| a.returned == Returned::Never || a.mutability == Mutability::WriteOnly)
        .map(|a| a.name.as_str())
}

/// The full representation: the stored attributes (`resource`, taken: a read renders each
/// record once), `schemas`, `id` and `meta`.
pub fn render(schema: &ResourceSchema, resource: Value, stored: &Stored<'_>) -> Map<String, Value> {
    let mut out = match resource {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for name in never_returned(schema) {
        out.remove(name);
    }
    super::set_schemas(schema, &mut out);
    out.insert("id".to_owned(), Value::String(stored.id.to_owned()));
    out.insert("meta".to_owned(), stored.meta(schema));
    out
}

/// [`render`] of a resource stored as JSON text, written as JSON text without parsing the
/// stored attributes: only the top level is split (which checks the whole text's syntax),
/// and each attribute's text is copied as it is. The keys come sorted, as from [`render`]
/// (serde_json's map is ordered), so for text serde_json wrote the answer is byte for byte
/// the one [`render`] gives. `None` when `text` is not such an object (a key with an escape
/// in it, say): then [`render`] does the work.
pub fn render_text(schema: &ResourceSchema, text: &str, stored: &Stored<'_>) -> Option<String> {
    // A key borrowed from the text holds no escape, so it needs none when written back.
    let mut attrs: BTreeMap<&str, &RawValue> = serde_json::from_str(text).ok()?;
    for name in never_returned(schema).chain(["id", "meta", "schemas"]) {
        attrs.remove(name);
    }
    let mut out = String::with_capacity(text.len() + 384);
    let mut written = 0usize;
    let mut key = |out: &mut String, name: &str| {
        out.push_str(if written == 0 { "{\"" } else { ",\"" });
        out.push_str(name);
        out.push_str("\":");
        written += 1;
    };
    // `id`, `meta` and `schemas`, each where it sorts among the stored keys.
    let mut added = ["id", "meta", "schemas"].into_iter().peekable();
    for (name, value) in &attrs {
        while let Some(next) = added.next_if(|a| a < name) {
            key(&mut out, next);
            write_added(&mut out, next, schema, &attrs, stored);
        }
        key(&mut out, name);
        out.push_str(value.get());
    }
    for next in added {
        key(&mut out, next);
        write_added(&mut out, next, schema, &attrs, stored);
    }
    out.push('}');
    Some(out)
}

/// The value of `id`, `meta` or `schemas` in [`render_text`], as [`render`] gives it.
fn write_added(
    out: &mut String,
    name: &str,
    schema: &ResourceSchema,
    attrs: &BTreeMap<&str, &RawValue>,
    stored: &Stored<'_>,
) {
    match name {
        "id" => push_json_str(out, stored.id),
        "meta" => {
            // `Stored::meta`'s members, in the order serde_json's map keeps them.
            out.push_str("{\"created\":\"");
            out.push_str(&rfc3339_millis(stored.created_ms));
            out.push_str("\",\"lastModified\":\"");
            out.push_str(&rfc3339_millis(stored.updated_ms));
            out.push_str("\",\"location\":");
            push_json_str(out, &stored.location);
            out.push_str(",\"resourceType\":");
            push_json_str(out, schema.name);
            out.push_str(",\"version\":");
            push_json_str(out, &etag(stored.version));
            out.push('}');
        }
        _ => {
            out.push('[');
            push_json_str(out, &schema.core.id);
            for ext in &schema.extensions {
                if attrs.contains_key(ext.id.as_str()) {
                    out.push(',');
                    push_json_str(out, &ext.id);
                }
            }
            out.push(']');
        }
    }
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // A string always serialises.
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "null".to_owned()));
    }
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.9), resolved to canonical paths
/// (`["emails"]`, `["name", "givenName"]`, `[<extension URN>, "manager"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    pub attributes: Vec<Vec<String>>,
    pub excluded: Vec<Vec<String>>,
}

impl Projection {
    /// Parses the two lists (comma-separated in a query string, arrays in `.search`).
    /// Names the schema does not know are ignored: a projection never fails a read.
    pub fn parse(
        schema: &ResourceSchema,
        attributes: &[String],
        excluded: &[String],
    ) -> ScimResult<Self> {
        if !attributes.is_empty() && !excluded.is_empty() {
            return Err(ScimError::invalid_value(
                "attributes and excludedAttributes are mutually exclusive (RFC 7644 §3.9)",
            ));
        }
        let resolve = |names: &[String]| -> Vec<Vec<String>> {
            names
                .iter()
                .flat_map(|n| n.split(','))
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .filter_map(|n| resolve_name(schema, n))
                .collect()
        };
        Ok(Self {
            attributes: resolve(attributes),
            excluded: resolve(excluded),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.excluded.is_empty()
    }

    /// Whether the representation will carry `members` — when not, the store is asked
    /// not to load them (Entra reads groups with `excludedAttributes=members`).
    pub fn wants(&self, top: &str) -> bool {
        let hit =
            |paths: &Vec<Vec<String>>| paths.iter().any(|p| p.first().is_some_and(|f| f == top));
        let whole = |paths: &Vec<Vec<String>>| paths.iter().any(|p| p.len() == 1 && p[0] == top);
        if !self.attributes.is_empty() {
            return hit(&self.attributes);
        }
        !whole(&self.excluded)
    }

    /// Applies the projection to a rendered resource.
    pub fn apply(&self, schema: &ResourceSchema, full: Map<String, Value>) -> Map<String, Value> {
        let always = |key: &str| {
            key == "schemas"
                || schema
                    .common
                    .iter()
                    .chain(&schema.core.attributes)
                    .any(|a| a.name == key && a.returned == Returned::Always)
        };
        if !self.attributes.is_empty() {
            let mut out = Map::new();
            for (k, v) in &full {
                if always(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
            for path in &self.attributes {
                copy_path(&full, &mut out, path);
            }
            return out;
        }
        let mut out = full;
        for path in &self.excluded {
            if path.len() == 1 && always(&path[0]) {
                continue;
            }
            remove_path(&mut out, path);
        }
        out
    }
}

/// A name from `attributes`/`excludedAttributes` as a canonical path. An extension URN
/// alone selects the whole extension.
fn resolve_name(schema: &ResourceSchema, name: &str) -> Option<Vec<String>> {
    if let Some(ext) = schema.extension(name) {
        return Some(vec![ext.id.clone()]);
    }
    let path = parse_attr_path(name)?;
    let (found, sub) = schema.resolve(&path)?;
    Some(found.path(sub))
}

fn copy_path(src: &Map<String, Value>, dst: &mut Map<String, Value>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(value) = src.get(first) else {
        return;
    };
    if rest.is_empty() {
        dst.insert(first.clone(), value.clone());
        return;
    }
    match value {
        Value::Object(inner) => {
            let slot = dst
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(slot) = slot {
                copy_path(inner, slot, rest);
            }
        }
        Value::Array(items) => {
            // `emails.value`: every element, reduced to the sub-attribute.
            let picked: Vec<Value> = items
                .iter()
                .filter_map(|item| {
                    let Value::Object(inner) = item else {
                        return None;
                    };
                    let mut one = Map::new();
                    copy_path(inner, &mut one, rest);
                    (!one.is_empty()).then_some(Value::Object(one))
                })
                .collect();
            if !picked.is_empty() && !dst.contains_key(first) {
                dst.insert(first.clone(), Value::Array(picked));
            }
        }
        _ => {}
    }
}

fn remove_path(map: &mut Map<String, Value>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.remove(first);
        return;
    }
    match map.get_mut(first) {
        Some(Value::Object(inner)) => remove_path(inner, rest),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::Object(inner) = item {
                    remove_path(inner, rest);
                }
            }
        }
        _ => {}
    }
}
