//! Filter and sort resolution (RFC 7644 §3.4.2.2, §3.4.2.3): `scim_v2` parses, this module
//! resolves every attribute against the schema into [`deprov_core::scim::Filter`], which
//! the store turns into SQL.
//!
//! What this adds to the parser:
//! - attribute names resolved case-insensitively to their canonical path, with `caseExact`
//!   and type from the schema; an unknown attribute is a 400 `invalidFilter`;
//! - comparison values converted to the attribute's type, with Entra's quoted booleans
//!   (`active eq "True"`) accepted for boolean attributes; operators that make no sense
//!   for a type (`gt` on a boolean) refused as RFC 7644 §3.4.2.2 requires;
//! - a comparison on a complex attribute that has a `value` sub-attribute compares that
//!   sub-attribute (`manager eq "123"`, `emails co "@example.com"`);
//! - deprov's own length and depth limits.
//!
//! One pre-processing step, because the parser follows the RFC's ABNF to the letter and
//! the ABNF has no `valuePath "." subAttr` in a filter while Entra matches users with
//! `emails[type eq "work"].value eq "x"` (INTEROP.md): that form is rewritten, textually
//! and only outside string literals, to the equivalent `emails[type eq "work" and value eq
//! "x"]` before parsing. See [`rewrite_value_path_sub_attr`].

use deprov_core::scim::{AttrRef, AttrType, CompareOp, Filter, FilterValue};
use scim_v2::filter::{self as sv, FilterActionError};

use crate::error::{ScimError, ScimResult};
use crate::resource::value::parse_bool;
use crate::schema::{AttributeDef, Found, ResourceSchema, parse_attr_path};

pub(crate) mod memo;

/// The bounds applied to a filter.
#[derive(Debug, Clone, Copy)]
pub struct FilterLimits {
    pub max_length: usize,
    pub max_depth: usize,
}

/// Parses and resolves a filter expression.
pub fn resolve_filter(
    schema: &ResourceSchema,
    raw: &str,
    limits: FilterLimits,
) -> ScimResult<Filter> {
    if raw.len() > limits.max_length {
        return Err(ScimError::invalid_filter(format!(
            "the filter is longer than {} bytes",
            limits.max_length
        )));
    }
    if raw.contains('\0') {
        return Err(ScimError::invalid_filter(
            "the filter must not contain the NUL character",
        ));
    }
    let text = rewrite_value_path_sub_attr(raw);
    let parsed: sv::Filter = memo::parse(&text).map_err(|e: sv::ParseError| match e {
        sv::ParseError::User {
            error: FilterActionError::TooManyTerms(_),
        } => ScimError::too_many(format!("the filter has too many terms: {e}")),
        _ => ScimError::invalid_filter(format!("the filter {raw:?} is not valid: {e}")),
    })?;
    let depth = depth(&parsed);
    if depth > limits.max_depth {
        return Err(ScimError::invalid_filter(format!(
            "the filter nests {depth} levels deep; at most {} are allowed",
            limits.max_depth
        )));
    }
    convert(schema, &parsed)
}

/// Resolves `sortBy` (RFC 7644 §3.4.2.3). A complex attribute sorts by its `value`.
pub fn resolve_sort(schema: &ResourceSchema, raw: &str) -> ScimResult<AttrRef> {
    let unknown = || {
        ScimError::invalid_value(format!(
            "sortBy {raw:?} is not an attribute of {}",
            schema.name
        ))
    };
    let path = parse_attr_path(raw.trim()).ok_or_else(unknown)?;
    let (found, sub) = schema.resolve(&path).ok_or_else(unknown)?;
    let sub = match sub {
        None if found.attr.is_complex() => Some(found.attr.sub("value").ok_or_else(unknown)?),
        other => other,
    };
    Ok(found.attr_ref(sub))
}

fn depth(f: &sv::Filter) -> usize {
    match f {
        sv::Filter::Attr(_) => 1,
        sv::Filter::ValuePath(vp) => 1 + val_depth(&vp.filter),
        sv::Filter::Not(inner) => 1 + depth(inner),
        sv::Filter::And(items) | sv::Filter::Or(items) => {
            1 + items.iter().map(depth).max().unwrap_or(0)
        }
    }
}

fn val_depth(f: &sv::ValFilter) -> usize {
    match f {
        sv::ValFilter::Attr(_) => 1,
        sv::ValFilter::Not(inner) => 1 + val_depth(inner),
        sv::ValFilter::And(items) | sv::ValFilter::Or(items) => {
            1 + items.iter().map(val_depth).max().unwrap_or(0)
        }
    }
}

fn fold(items: Vec<Filter>, join: fn(Box<Filter>, Box<Filter>) -> Filter) -> ScimResult<Filter> {
    let mut iter = items.into_iter();
    let first = iter
        .next()
        .ok_or_else(|| ScimError::invalid_filter("an empty logical expression"))?;
    Ok(iter.fold(first, |acc, f| join(Box::new(acc), Box::new(f))))
}

fn convert(schema: &ResourceSchema, f: &sv::Filter) -> ScimResult<Filter> {
    match f {
        sv::Filter::Attr(exp) => attr_exp(exp, &|path| top_level(schema, path)),
        sv::Filter::Not(inner) => Ok(Filter::Not(Box::new(convert(schema, inner)?))),
        sv::Filter::And(items) => fold(
            items
                .iter()
                .map(|i| convert(schema, i))
                .collect::<ScimResult<_>>()?,
            Filter::And,
        ),
        sv::Filter::Or(items) => fold(
            items
                .iter()
                .map(|i| convert(schema, i))
                .collect::<ScimResult<_>>()?,
            Filter::Or,
        ),
        sv::Filter::ValuePath(vp) => {
            let (found, sub) = schema
                .resolve(&vp.attr)
                .ok_or_else(|| unknown_attr(schema, &vp.attr))?;
            if sub.is_some() || !found.attr.is_complex() {
                return Err(ScimError::invalid_filter(format!(
                    "{} is not a complex attribute, so it takes no [filter]",
                    vp.attr
                )));
            }
            let inner = val_filter(found.attr, &vp.filter)?;
            Ok(Filter::ValuePath {
                attr: found.attr_ref(None),
                filter: Box::new(inner),
            })
        }
    }
}

/// A filter inside `attr[…]`: paths are relative to one element of `attr`.
fn val_filter(parent: &AttributeDef, f: &sv::ValFilter) -> ScimResult<Filter> {
    let resolve = |path: &sv::AttrPath| -> ScimResult<(AttrRef, &AttributeDef)> {
        let sub = (path.uri.is_none() && path.sub_attr.is_none())
            .then(|| parent.sub(&path.name))
            .flatten()
            .ok_or_else(|| {
                ScimError::invalid_filter(format!("{} has no sub-attribute {path}", parent.name))
            })?;
        Ok((
            AttrRef {
                path: vec![sub.name.clone()],
                kind: sub.kind,
                case_exact: sub.case_exact,
                multi_valued_at: None,
            },
            sub,
        ))
    };
    match f {
        sv::ValFilter::Attr(exp) => attr_exp(exp, &resolve),
        sv::ValFilter::Not(inner) => Ok(Filter::Not(Box::new(val_filter(parent, inner)?))),
        sv::ValFilter::And(items) => fold(
            items
                .iter()
                .map(|i| val_filter(parent, i))
                .collect::<ScimResult<_>>()?,
            Filter::And,
        ),
        sv::ValFilter::Or(items) => fold(
            items
                .iter()
                .map(|i| val_filter(parent, i))
                .collect::<ScimResult<_>>()?,
            Filter::Or,
        ),
    }
}

fn unknown_attr(schema: &ResourceSchema, path: &sv::AttrPath) -> ScimError {
    ScimError::invalid_filter(format!("{path} is not an attribute of {}", schema.name))
}

/// A top-level attribute path; a complex attribute stands for its `value` sub-attribute.
fn top_level<'s>(
    schema: &'s ResourceSchema,
    path: &sv::AttrPath,
) -> ScimResult<(AttrRef, &'s AttributeDef)> {
    let (found, sub): (Found<'s>, _) = schema
        .resolve(path)
        .ok_or_else(|| unknown_attr(schema, path))?;
    match sub {
        Some(sub) => Ok((found.attr_ref(Some(sub)), sub)),
        None if found.attr.is_complex() => match found.attr.sub("value") {
            Some(value) => Ok((found.attr_ref(Some(value)), value)),
            // `name pr` is meaningful; `name eq "x"` is caught in `attr_exp`.
            None => Ok((found.attr_ref(None), found.attr)),
        },
        None => Ok((found.attr_ref(None), found.attr)),
    }
}

fn attr_exp<'s>(
    exp: &sv::AttrExp,
    resolve: &dyn Fn(&sv::AttrPath) -> ScimResult<(AttrRef, &'s AttributeDef)>,
) -> ScimResult<Filter> {
    match exp {
        sv::AttrExp::Present(path) => Ok(Filter::Present(resolve(path)?.0)),
        sv::AttrExp::Comparison(path, op, value) => {
            let (attr, def) = resolve(path)?;
            let op = compare_op(op);
            let value = comp_value(path, def, op, value)?;
            Ok(Filter::Compare { attr, op, value })
        }
    }
}

fn compare_op(op: &sv::CompareOp) -> CompareOp {
    match op {
        sv::CompareOp::Eq => CompareOp::Eq,
        sv::CompareOp::Ne => CompareOp::Ne,
        sv::CompareOp::Co => CompareOp::Co,
        sv::CompareOp::Sw => CompareOp::Sw,
        sv::CompareOp::Ew => CompareOp::Ew,
        sv::CompareOp::Gt => CompareOp::Gt,
        sv::CompareOp::Ge => CompareOp::Ge,
        sv::CompareOp::Lt => CompareOp::Lt,
        sv::CompareOp::Le => CompareOp::Le,
    }
}

/// Converts a comparison value to the attribute's type (RFC 7644 §3.4.2.2).
fn comp_value(
    path: &sv::AttrPath,
    def: &AttributeDef,
    op: CompareOp,
    value: &sv::CompValue,
) -> ScimResult<FilterValue> {
    let bad = |why: &str| ScimError::invalid_filter(format!("{path} {why}"));
    if let sv::CompValue::Str(s) = value
        && s.contains('\0')
    {
        return Err(bad("is compared with a value holding the NUL character"));
    }
    if let sv::CompValue::Null = value {
        return match op {
            CompareOp::Eq | CompareOp::Ne => Ok(FilterValue::Null),
            _ => Err(bad("can only be compared to null with eq or ne")),
        };
    }
    let ordering = matches!(
        op,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
    );
    let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    match def.kind {
        AttrType::Complex => Err(bad("is complex; compare one of its sub-attributes")),
        AttrType::Boolean => {
            if ordering || substring {
                return Err(bad(
                    "is a boolean: only eq, ne and pr apply (RFC 7644 §3.4.2.2)",
                ));
            }
            match value {
                sv::CompValue::True => Ok(FilterValue::Bool(true)),
                sv::CompValue::False => Ok(FilterValue::Bool(false)),
                sv::CompValue::Str(s) => parse_bool(s)
                    .map(FilterValue::Bool)
                    .ok_or_else(|| bad("is a boolean: compare it with true or false")),
                _ => Err(bad("is a boolean: compare it with true or false")),
            }
        }
        AttrType::Binary if ordering || substring => Err(bad(
            "is binary: only eq, ne and pr apply (RFC 7644 §3.4.2.2)",
        )),
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            sv::CompValue::Str(s) => Ok(FilterValue::String(s.clone())),
            _ => Err(bad("is a string: compare it with a quoted value")),
        },
        AttrType::DateTime => match value {
            sv::CompValue::Str(s) if s.parse::<scim_v2::ScimDateTime>().is_ok() => {
                Ok(FilterValue::String(s.clone()))
            }
            _ => Err(bad("is a dateTime: compare it with a quoted xsd:dateTime")),
        },
        AttrType::Integer | AttrType::Decimal => {
            if substring {
                return Err(bad("is a number: co, sw and ew do not apply"));
            }
            match value {
                sv::CompValue::Number(n) => n
                    .as_f64()
                    .map(FilterValue::Number)
                    .ok_or_else(|| bad("is compared with a number out of range")),
                _ => Err(bad("is a number: compare it with a number")),
            }
        }
    }
}

/// Rewrites `attr[f].sub op value` (and `attr[f].sub pr`) into `attr[(f) and sub op
/// value]`, which means the same thing — some element of `attr` matches `f` and has `sub`
/// matching — and which the RFC grammar accepts. Text inside string literals is never
/// touched; input that does not have exactly this shape is returned unchanged, for the
/// parser to judge.
pub fn rewrite_value_path_sub_attr(raw: &str) -> String {
    let mut text = raw.to_owned();
    // Each pass removes one `].`, so the loop ends; the bound is a second safety net.
    for _ in 0..raw.len() {
        match rewrite_once(&text) {
            Some(next) => text = next,
            None => break,
        }
    }
    text
}

fn rewrite_once(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let mut opens: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' => opens.push(i),
            b']' => {
                let open = opens.pop()?;
                if b.get(i + 1) == Some(&b'.')
                    && let Some(out) = splice(s, open, i)
                {
                    return Some(out);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `s[open]` is `[`, `s[close]` is `]` and `s[close + 1]` is `.`.
fn splice(s: &str, open: usize, close: usize) -> Option<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$';
    let inner = s.get(open + 1..close)?;
    let rest = s.get(close + 2..)?;
    let sub_len = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
    if sub_len == 0 {
        return None;
    }
    let sub = &rest[..sub_len];
    let after_sub = &rest[sub_len..];
    let trimmed = after_sub.trim_start();
    if trimmed.len() == after_sub.len() {
        return None;
    }
    let op_len = trimmed
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(trimmed.len());
    let op = &trimmed[..op_len];
    let after_op = &trimmed[op_len..];
    let (comparison, tail) = if op.eq_ignore_ascii_case("pr") {
        (format!("{sub} pr"), after_op)
    } else {
        const OPS: [&str; 9] = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"];
        if !OPS.iter().any(|o| o.eq_ignore_ascii_case(op)) {
            return None;
        }
        let value_part = after_op.trim_start();
        if value_part.len() == after_op.len() {
            return None;
        }
        let value_len = literal_len(value_part)?;
        (
            format!("{sub} {op} {}", &value_part[..value_len]),
            &value_part[value_len..],
        )
    };
    let head = &s[..open];
    Some(format!("{head}[({inner}) and {comparison}]{tail}"))
}

/// The length of the comparison value at the start of `s`: a JSON string, or a bare word
/// (`true`, `42`, `null`).
fn literal_len(s: &str) -> Option<usize> {
    if let Some(body) = s.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                return Some(i + 2);
            }
        }
        return None;
    }
    let len = s
        .find(|c: char| c.is_whitespace() || c == ')' || c == ']')
        .unwrap_or(s.len());
    (len > 0).then_some(len)
}

#[cfg(test)]
mod tests;
