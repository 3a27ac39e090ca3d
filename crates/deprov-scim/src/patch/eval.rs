//! Value filters inside a PATCH path (`emails[type eq "work"]`), evaluated against the
//! elements of one resource's multi-valued attribute — never against a table.

use deprov_core::scim::AttrType;
use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, ValFilter};
use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::resource::value::parse_bool;
use crate::schema::AttributeDef;

fn sub_of<'a>(parent: &'a AttributeDef, path: &AttrPath) -> ScimResult<&'a AttributeDef> {
    (path.uri.is_none() && path.sub_attr.is_none())
        .then(|| parent.sub(&path.name))
        .flatten()
        .ok_or_else(|| {
            ScimError::invalid_path(format!("{} has no sub-attribute {path}", parent.name))
        })
}

/// Whether one element of `parent` matches `filter`.
pub fn matches(parent: &AttributeDef, filter: &ValFilter, element: &Value) -> ScimResult<bool> {
    match filter {
        ValFilter::Attr(AttrExp::Present(path)) => {
            let sub = sub_of(parent, path)?;
            Ok(element.get(&sub.name).is_some_and(|v| !v.is_null()))
        }
        ValFilter::Attr(AttrExp::Comparison(path, op, value)) => {
            let sub = sub_of(parent, path)?;
            Ok(compare(sub, element.get(&sub.name), op, value))
        }
        ValFilter::Not(inner) => Ok(!matches(parent, inner, element)?),
        ValFilter::And(items) => {
            for item in items {
                if !matches(parent, item, element)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        ValFilter::Or(items) => {
            for item in items {
                if matches(parent, item, element)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

fn compare(
    def: &AttributeDef,
    actual: Option<&Value>,
    op: &CompareOp,
    expected: &CompValue,
) -> bool {
    let actual = actual.filter(|v| !v.is_null());
    if let CompValue::Null = expected {
        return match op {
            CompareOp::Eq => actual.is_none(),
            CompareOp::Ne => actual.is_some(),
            _ => false,
        };
    }
    let Some(actual) = actual else {
        return matches!(op, CompareOp::Ne);
    };
    match def.kind {
        AttrType::Boolean => {
            let want = match expected {
                CompValue::True => Some(true),
                CompValue::False => Some(false),
                CompValue::Str(s) => parse_bool(s),
                _ => None,
            };
            let have = match actual {
                Value::Bool(b) => Some(*b),
                Value::String(s) => parse_bool(s),
                _ => None,
            };
            match (op, want, have) {
                (CompareOp::Eq, Some(w), Some(h)) => w == h,
                (CompareOp::Ne, Some(w), Some(h)) => w != h,
                _ => false,
            }
        }
        AttrType::Integer | AttrType::Decimal => {
            let (Some(a), CompValue::Number(e)) = (actual.as_f64(), expected) else {
                return false;
            };
            let Some(e) = e.as_f64() else { return false };
            match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
                _ => false,
            }
        }
        _ => {
            let (Some(a), CompValue::Str(e)) = (actual.as_str(), expected) else {
                return false;
            };
            let (a, e) = if def.case_exact {
                (a.to_owned(), e.clone())
            } else {
                (a.to_lowercase(), e.to_lowercase())
            };
            match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Co => a.contains(&e),
                CompareOp::Sw => a.starts_with(&e),
                CompareOp::Ew => a.ends_with(&e),
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
            }
        }
    }
}

/// The element a filter describes, when it is only `eq` terms joined by `and`
/// (`type eq "work"` → `{"type": "work"}`): what an `add`/`replace` creates when the
/// filter matches nothing.
pub fn seed(parent: &AttributeDef, filter: &ValFilter) -> ScimResult<Option<Map<String, Value>>> {
    let mut out = Map::new();
    let terms: Vec<&ValFilter> = match filter {
        ValFilter::And(items) => items.iter().collect(),
        one => vec![one],
    };
    for term in terms {
        let ValFilter::Attr(AttrExp::Comparison(path, CompareOp::Eq, value)) = term else {
            return Ok(None);
        };
        let sub = sub_of(parent, path)?;
        let v = match (sub.kind, value) {
            (AttrType::Boolean, CompValue::Str(s)) => match parse_bool(s) {
                Some(b) => Value::Bool(b),
                None => return Ok(None),
            },
            (_, CompValue::Str(s)) => Value::String(s.clone()),
            (_, CompValue::True) => Value::Bool(true),
            (_, CompValue::False) => Value::Bool(false),
            (_, CompValue::Number(n)) => Value::Number(n.clone()),
            (_, CompValue::Null) => return Ok(None),
        };
        out.insert(sub.name.clone(), v);
    }
    Ok(Some(out))
}

/// The member ids a `members[…]` filter names: `value eq "id"`, or an `or` of such terms.
pub fn member_ids(filter: &ValFilter) -> Option<Vec<String>> {
    match filter {
        ValFilter::Attr(AttrExp::Comparison(path, CompareOp::Eq, CompValue::Str(id)))
            if path.uri.is_none()
                && path.sub_attr.is_none()
                && path.name.eq_ignore_ascii_case("value") =>
        {
            Some(vec![id.clone()])
        }
        ValFilter::Or(items) => {
            let mut ids = Vec::new();
            for item in items {
                ids.extend(member_ids(item)?);
            }
            Some(ids)
        }
        _ => None,
    }
}
