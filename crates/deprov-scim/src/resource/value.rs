//! Normalising one attribute's value against its definition (RFC 7643 §2.3): canonical
//! sub-attribute names, the JSON type the schema says, `null` and `[]` meaning "no value".
//!
//! Leniency, each for a real peer (see INTEROP.md):
//! - `"True"`/`"false"` (any case) for a boolean (Entra's default dialect);
//! - a bare string for a complex attribute that has a `value` sub-attribute
//!   (`"manager": "123"` from Entra becomes `{"value": "123"}`);
//! - a single value where a multi-valued attribute is expected becomes a one-element array.
//!
//! Everything else of the wrong type is a 400 `invalidValue`: values are stored as sent,
//! never reformatted, so a value that is not what the schema says is refused rather than
//! guessed at.

use deprov_core::scim::AttrType;
use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::schema::AttributeDef;

/// What to do with a sub-attribute the schema does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// POST and PUT bodies: ignore it (a provider's custom sub-attribute must not make a
    /// create fail).
    Ignore,
    /// PATCH: refuse it with 400 `invalidPath` (INTEROP: never a silent 200).
    Reject,
}

/// Normalises the value of `def` (`at` names it in errors). `Ok(None)` means "no value":
/// `null`, `[]`, or an object with nothing left in it.
pub fn normalise(
    def: &AttributeDef,
    value: &Value,
    unknown: Unknown,
    at: &str,
) -> ScimResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if !def.multi_valued {
        return match value {
            // Entra's documented manager example wraps the single value in an array.
            Value::Array(items) if items.len() <= 1 => match items.first() {
                Some(one) => normalise_one(def, one, unknown, at),
                None => Ok(None),
            },
            Value::Array(_) => Err(ScimError::invalid_value(format!(
                "{at} is single-valued; an array of several values was given"
            ))),
            _ => normalise_one(def, value, unknown, at),
        };
    }
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some(v) = normalise_one(def, item, unknown, at)? {
            out.push(v);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// Normalises one value (one element of a multi-valued attribute).
pub fn normalise_one(
    def: &AttributeDef,
    value: &Value,
    unknown: Unknown,
    at: &str,
) -> ScimResult<Option<Value>> {
    let wrong = |expected: &str| {
        ScimError::invalid_value(format!("{at} must be {expected}; got {}", json_kind(value)))
    };
    match def.kind {
        _ if value.is_null() => Ok(None),
        AttrType::Complex => match value {
            Value::Object(map) => normalise_complex(def, map, unknown, at),
            Value::String(s) if def.sub("value").is_some() => {
                let mut map = Map::new();
                map.insert("value".to_owned(), Value::String(s.clone()));
                Ok(Some(Value::Object(map)))
            }
            _ => Err(wrong("an object")),
        },
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(Some(value.clone())),
            Value::String(s) => parse_bool(s)
                .map(|b| Some(Value::Bool(b)))
                .ok_or_else(|| wrong("a boolean")),
            _ => Err(wrong("a boolean")),
        },
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            // PostgreSQL text and jsonb cannot hold U+0000; no identity value needs it.
            Value::String(s) if s.contains('\0') => Err(ScimError::invalid_value(format!(
                "{at} must not contain the NUL character"
            ))),
            Value::String(_) => Ok(Some(value.clone())),
            _ => Err(wrong("a string")),
        },
        AttrType::DateTime => match value {
            Value::String(s) if s.parse::<scim_v2::ScimDateTime>().is_ok() => {
                Ok(Some(value.clone()))
            }
            _ => Err(wrong(
                "an xsd:dateTime string such as \"2024-05-01T12:00:00Z\"",
            )),
        },
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(value.clone())),
            _ => Err(wrong("an integer")),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(Some(value.clone())),
            _ => Err(wrong("a number")),
        },
    }
}

fn normalise_complex(
    def: &AttributeDef,
    map: &Map<String, Value>,
    unknown: Unknown,
    at: &str,
) -> ScimResult<Option<Value>> {
    let mut out = Map::new();
    for (key, v) in map {
        let Some(sub) = def.sub(key) else {
            match unknown {
                Unknown::Ignore => {
                    tracing::debug!(attribute = %at, sub_attribute = %key, "unknown sub-attribute ignored");
                    continue;
                }
                Unknown::Reject => {
                    return Err(ScimError::invalid_path(format!(
                        "{at} has no sub-attribute {key:?}"
                    )));
                }
            }
        };
        let sub_at = format!("{at}.{}", sub.name);
        if let Some(v) = normalise(sub, v, unknown, &sub_at)?
            && out.insert(sub.name.clone(), v).is_some()
        {
            return Err(ScimError::invalid_value(format!(
                "{sub_at} is given more than once (names differing only in case are the same attribute)"
            )));
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// `true`/`false` in any case (Entra sends `"True"` and `"False"`).
pub fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Case-insensitive lookup of a key in a JSON object (RFC 7643 §2.1), for the few
/// protocol members read by name (`Operations`, `op`, `path`, `value`, `members`).
pub fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}
