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
    let mut tag = String::with_capacity(24);
    tag.push_str("W/\"");
    tag.push_str(itoa::Buffer::new().format(version));
    tag.push('"');
    tag
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
    let mut out = String::with_capacity(24);
    push_rfc3339_millis(&mut out, millis);
    out
}

/// [`rfc3339_millis`], written onto `out`: `YYYY-MM-DDThh:mm:ss.sssZ`, as chrono writes it
/// with `SecondsFormat::Millis` and `Z`. Every read writes two of them, and chrono's
/// formatter cost more than the rest of `meta`. Years outside 0000–9999 (which chrono
/// writes with a sign) go through chrono.
fn push_rfc3339_millis(out: &mut String, millis: i64) {
    // 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z, in Unix milliseconds.
    const FIRST: i64 = -62_167_219_200_000;
    const END: i64 = 253_402_300_800_000;
    if !(FIRST..END).contains(&millis) {
        out.push_str(
            &DateTime::<Utc>::from_timestamp_millis(millis)
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        );
        return;
    }
    let (secs, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    // Each field right-aligned in its zeros; every value fits its width here.
    for (end, mut n) in [
        (4, year),
        (7, month),
        (10, day),
        (13, sod / 3600),
        (16, sod / 60 % 60),
        (19, sod % 60),
        (23, ms),
    ] {
        let mut i = end;
        while n > 0 && i > 0 {
            i -= 1;
            // `n % 10` is a digit.
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// Year, month and day of a count of days since 1970-01-01 in the proleptic Gregorian
/// calendar (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms", `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
            push_rfc3339_millis(out, stored.created_ms);
            out.push_str("\",\"lastModified\":\"");
            push_rfc3339_millis(out, stored.updated_ms);
            out.push_str("\",\"location\":");
            push_json_str(out, &stored.location);
            out.push_str(",\"resourceType\":");
            push_json_str(out, schema.name);
            // An entity tag holds nothing JSON escapes but its quotes.
            out.push_str(",\"version\":\"W/\\\"");
            out.push_str(itoa::Buffer::new().format(stored.version));
            out.push_str("\\\"\"}");
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
    // Without early exit, so that the compiler checks many bytes at once: the strings
    // written here are short and almost never need escaping.
    let needs_escape = s.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
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
