//! The PATCH engine (RFC 7644 §3.5.2) over canonical resources, with the Okta and Entra
//! dialects of INTEROP.md.
//!
//! A request is parsed into [`Operation`]s (paths by `scim_v2`'s PATH grammar), then
//! applied in order to a *copy* of the resource; the caller makes one store write with the
//! result, so a PATCH applies entirely or not at all. Group `members` never touch the copy:
//! operations on them fold, in order, into one [`MembershipChange`] that the store applies
//! as set operations.
//!
//! Dialects accepted (each has a test in `tests.rs`):
//! - `op` in any case (`Replace`, `ADD`); stray members (`id`, per-operation `name`) ignored;
//! - path-less `add`/`replace` whose value holds plain, dotted (`name.givenName`) and
//!   URN-prefixed (`urn:…:enterprise:2.0:User:employeeNumber`) keys, an extension object
//!   under its URN, `schemas`, and the resource's own `id` (Okta's group rename);
//! - string booleans (`"False"`) and a bare-string `manager`;
//! - `add`/`replace` on a value filter that matches nothing creates the element from the
//!   filter's `eq` terms (Entra: `emails[type eq "work"].value` on a user without one);
//! - members removed by `members[value eq "x"]` (or an `or` of such terms), by path
//!   `members` with a value list (only those members: Entra's default dialect), all of
//!   them by `remove` of `members` without a value, replaced by `replace` of `members`.
//!
//! Refused: readOnly targets and changes to immutable values (400 `mutability`), unknown
//! attributes (400 `invalidPath`), values of the wrong type (400 `invalidValue`), a
//! `remove` without a path (400 `noTarget`), more operations or members than the limits
//! (400 `tooMany`).

mod apply;
mod eval;

pub use apply::{Patched, apply};

use scim_v2::filter::PatchPath;
use serde_json::Value;

use crate::error::{ScimError, ScimResult};
use crate::resource::value::get_ci;

/// `urn:ietf:params:scim:api:messages:2.0:PatchOp`.
pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Remove,
    Replace,
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Bounds on one PATCH request.
#[derive(Debug, Clone, Copy)]
pub struct PatchLimits {
    pub max_operations: usize,
    pub max_members: usize,
}

/// Parses a PatchOp body (RFC 7644 §3.5.2). Member names are matched case-insensitively
/// and members other than `op`, `path` and `value` are ignored.
pub fn parse_request(body: &Value, limits: PatchLimits) -> ScimResult<Vec<Operation>> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body must be a JSON object",
        ));
    };
    if let Some(schemas) = get_ci(body, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_URN))
            })
        });
        if !ok {
            return Err(ScimError::invalid_syntax(format!(
                "a PATCH body declares the schema {PATCH_OP_URN}"
            )));
        }
    }
    let Some(Value::Array(items)) = get_ci(body, "Operations") else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body needs an \"Operations\" array (RFC 7644 §3.5.2)",
        ));
    };
    if items.len() > limits.max_operations {
        return Err(ScimError::too_many(format!(
            "{} operations in one PATCH; at most {} are accepted",
            items.len(),
            limits.max_operations
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_operation(i, item))
        .collect()
}

fn parse_operation(index: usize, item: &Value) -> ScimResult<Operation> {
    let Value::Object(item) = item else {
        return Err(ScimError::invalid_syntax(format!(
            "Operations[{index}] must be an object"
        )));
    };
    let op = match get_ci(item, "op").and_then(Value::as_str) {
        Some(op) if op.eq_ignore_ascii_case("add") => OpKind::Add,
        Some(op) if op.eq_ignore_ascii_case("remove") => OpKind::Remove,
        Some(op) if op.eq_ignore_ascii_case("replace") => OpKind::Replace,
        Some(op) => {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{index}].op {op:?} is not add, remove or replace"
            )));
        }
        None => {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{index}] needs an \"op\""
            )));
        }
    };
    let path = match get_ci(item, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(crate::filter::memo::parse_path(s).map_err(|e| {
            ScimError::invalid_path(format!(
                "Operations[{index}].path {s:?} is not a valid path: {e}"
            ))
        })?),
        Some(_) => {
            return Err(ScimError::invalid_path(format!(
                "Operations[{index}].path must be a string"
            )));
        }
    };
    let value = get_ci(item, "value").cloned();
    Ok(Operation { op, path, value })
}

#[cfg(test)]
mod tests;
