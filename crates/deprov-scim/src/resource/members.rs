//! Group members on the wire (RFC 7643 §4.2) and as [`MemberRef`]s.

use deprov_core::scim::{MemberKind, MemberRef};
use serde_json::Value;

use crate::error::{ScimError, ScimResult};
use crate::resource::value::get_ci;

/// Reads a `members` value: an array of `{"value": id, "type": "User"|"Group"}` (a single
/// object or a bare id string is accepted too). `$ref` and `display` are ignored: the
/// store knows both. Duplicates are dropped.
pub fn parse_members(value: &Value) -> ScimResult<Vec<MemberRef>> {
    let items: Vec<&Value> = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let mut out: Vec<MemberRef> = Vec::with_capacity(items.len());
    for item in items {
        let member = parse_member(item)?;
        if !out.iter().any(|m| m.value == member.value) {
            out.push(member);
        }
    }
    Ok(out)
}

fn parse_member(item: &Value) -> ScimResult<MemberRef> {
    let (value, kind) = match item {
        Value::String(id) => (Some(id.as_str()), None),
        Value::Object(map) => (
            get_ci(map, "value").and_then(Value::as_str),
            get_ci(map, "type"),
        ),
        _ => {
            return Err(ScimError::invalid_value(
                "each member must be an object with a \"value\"",
            ));
        }
    };
    let value = value
        .filter(|v| !v.trim().is_empty() && !v.contains('\0'))
        .ok_or_else(|| {
            ScimError::invalid_value("each member needs a non-empty \"value\" (the member's id)")
        })?;
    let kind = match kind {
        None | Some(Value::Null) => MemberKind::User,
        Some(Value::String(t)) if t.eq_ignore_ascii_case("user") => MemberKind::User,
        Some(Value::String(t)) if t.eq_ignore_ascii_case("group") => MemberKind::Group,
        Some(other) => {
            return Err(ScimError::invalid_value(format!(
                "member type {other} is not \"User\" or \"Group\""
            )));
        }
    };
    Ok(MemberRef {
        value: value.to_owned(),
        kind,
    })
}
