//! Applying operations to a copy of the resource (RFC 7644 §3.5.2.1–3).

use deprov_core::scim::{MemberRef, MembershipChange, ResourceKind};
use scim_v2::filter::{AttrPath, PatchPath, ValFilter};
use serde_json::{Map, Value};

use super::eval;
use super::{OpKind, Operation, PatchLimits};
use crate::error::{ScimError, ScimResult};
use crate::resource::members::parse_members;
use crate::resource::value::{Unknown, normalise};
use crate::resource::{tidy, validate};
use crate::schema::{AttributeDef, Found, Mutability, ResourceSchema, SchemaDef, parse_attr_path};

/// The outcome of a PATCH: the new resource (without members) and the membership change.
#[derive(Debug, Clone, PartialEq)]
pub struct Patched {
    pub resource: Map<String, Value>,
    /// Whether `resource` differs from the resource patched.
    pub resource_changed: bool,
    pub members: MembershipChange,
}

/// Applies `ops` in order to a copy of `current` (the canonical resource whose `id` is
/// `id`). Nothing is written: the caller stores the result in one write.
pub fn apply(
    schema: &ResourceSchema,
    current: &Map<String, Value>,
    id: &str,
    ops: &[Operation],
    limits: PatchLimits,
) -> ScimResult<Patched> {
    let mut before = current.clone();
    tidy(schema, &mut before);
    let mut engine = Engine {
        schema,
        id,
        res: before.clone(),
        members: MembershipChange::default(),
        members_seen: 0,
        limits,
    };
    for op in ops {
        engine.operation(op)?;
    }
    let mut resource = engine.res;
    tidy(schema, &mut resource);
    validate(schema, &resource)?;
    Ok(Patched {
        resource_changed: resource != before,
        resource,
        members: engine.members,
    })
}

/// What a path designates.
enum Target<'s, 'p> {
    /// An extension URN alone: the whole extension object.
    Extension(&'s SchemaDef),
    Attr {
        found: Found<'s>,
        sub: Option<&'s AttributeDef>,
        filter: Option<&'p ValFilter>,
    },
}

struct Engine<'s> {
    schema: &'s ResourceSchema,
    id: &'s str,
    res: Map<String, Value>,
    members: MembershipChange,
    members_seen: usize,
    limits: PatchLimits,
}

impl<'s> Engine<'s> {
    fn operation(&mut self, op: &Operation) -> ScimResult<()> {
        match (&op.path, op.op) {
            (None, OpKind::Remove) => Err(ScimError::no_target(
                "remove needs a path (RFC 7644 §3.5.2.2)",
            )),
            (None, kind) => match &op.value {
                Some(Value::Object(map)) => self.pathless(kind, map, None),
                _ => Err(ScimError::invalid_value(
                    "an operation without a path needs an object value",
                )),
            },
            (Some(path), kind) => {
                let target = self.target(path)?;
                self.at(target, kind, op.value.as_ref())
            }
        }
    }

    fn target<'p>(&self, path: &'p PatchPath) -> ScimResult<Target<'s, 'p>> {
        let schema = self.schema;
        let unknown =
            || ScimError::invalid_path(format!("{path} is not an attribute of {}", schema.name));
        let (attr_path, filter, sub_name) = match path {
            PatchPath::Attr(p) => {
                if let (Some(uri), None) = (&p.uri, &p.sub_attr)
                    && let Some(ext) = schema.extension(&format!("{uri}:{}", p.name))
                {
                    return Ok(Target::Extension(ext));
                }
                (p, None, p.sub_attr.as_deref())
            }
            PatchPath::Value(vp) => {
                if vp.attr.sub_attr.is_some() {
                    return Err(unknown());
                }
                (&vp.attr, Some(&vp.filter), vp.sub_attr.as_deref())
            }
        };
        let found = schema
            .find(attr_path.uri.as_deref(), &attr_path.name)
            .ok_or_else(unknown)?;
        let sub = match sub_name {
            None => None,
            Some(s) => Some(found.attr.sub(s).ok_or_else(unknown)?),
        };
        if filter.is_some() && !(found.attr.multi_valued && found.attr.is_complex()) {
            return Err(ScimError::invalid_path(format!(
                "{path}: only multi-valued complex attributes take a [filter]"
            )));
        }
        Ok(Target::Attr { found, sub, filter })
    }

    /// A path-less `add`/`replace`: each key of the value is a path of its own (plain,
    /// dotted, URN-prefixed) or an extension object under its URN.
    fn pathless(
        &mut self,
        kind: OpKind,
        map: &Map<String, Value>,
        ext: Option<&'s SchemaDef>,
    ) -> ScimResult<()> {
        for (key, value) in map {
            // A `schemas` member says which schema the value belongs to; some clients put it
            // inside an extension object too (python scim2-models does). It sets nothing.
            if key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if ext.is_none() {
                if key.eq_ignore_ascii_case("id") {
                    // Okta's group rename carries the group's own id.
                    if value.as_str() == Some(self.id) {
                        continue;
                    }
                    return Err(ScimError::mutability("id is readOnly"));
                }
                if let Some(e) = self.schema.extension(key) {
                    match value {
                        Value::Object(inner) => self.pathless(kind, inner, Some(e))?,
                        Value::Null if kind == OpKind::Replace => {
                            self.res.remove(&e.id);
                        }
                        Value::Null => {}
                        _ => {
                            return Err(ScimError::invalid_value(format!(
                                "{} must be an object",
                                e.id
                            )));
                        }
                    }
                    continue;
                }
            }
            let bad = || {
                ScimError::invalid_path(format!(
                    "{key:?} is not an attribute of {}",
                    self.schema.name
                ))
            };
            let mut attr_path: AttrPath = parse_attr_path(key).ok_or_else(bad)?;
            if let Some(e) = ext {
                if attr_path.uri.is_some() {
                    return Err(bad());
                }
                attr_path.uri = Some(e.id.clone());
            }
            let path = PatchPath::Attr(attr_path);
            let target = self.target(&path)?;
            self.at(target, kind, Some(value))?;
        }
        Ok(())
    }

    fn at(
        &mut self,
        target: Target<'s, '_>,
        kind: OpKind,
        value: Option<&Value>,
    ) -> ScimResult<()> {
        let (found, sub, filter) = match target {
            Target::Extension(ext) => {
                return match (kind, value) {
                    (OpKind::Remove, _) => {
                        self.res.remove(&ext.id);
                        Ok(())
                    }
                    (_, Some(Value::Object(inner))) => self.pathless(kind, inner, Some(ext)),
                    _ => Err(ScimError::invalid_value(format!(
                        "{} takes an object value",
                        ext.id
                    ))),
                };
            }
            Target::Attr { found, sub, filter } => (found, sub, filter),
        };
        let attr = found.attr;
        let name = found.path(sub).join(".");
        for def in std::iter::once(attr).chain(sub) {
            match def.mutability {
                Mutability::ReadOnly => {
                    return Err(ScimError::mutability(format!("{name} is readOnly")));
                }
                // RFC 7643 §7: writeOnly values are never returned; deprov does not keep
                // them at all (it has no use for a password).
                Mutability::WriteOnly => return Ok(()),
                _ => {}
            }
        }
        if self.schema.kind == ResourceKind::Group
            && found.extension.is_none()
            && attr.name == "members"
        {
            return self.members_op(kind, sub, filter, value);
        }
        let immutable = attr.mutability == Mutability::Immutable
            || sub.is_some_and(|s| s.mutability == Mutability::Immutable);
        let container = container(&mut self.res, found.extension)?;
        if immutable
            && (kind != OpKind::Add || container.get(&attr.name).is_some_and(|v| !v.is_null()))
        {
            return Err(ScimError::mutability(format!("{name} is immutable")));
        }
        if kind != OpKind::Remove && value.is_none() {
            return Err(ScimError::invalid_value(format!(
                "{name}: add and replace need a value"
            )));
        }
        if !attr.multi_valued {
            single(container, attr, sub, kind, value, &name)
        } else {
            match filter {
                None => multi(container, attr, sub, kind, value, &name),
                Some(f) => filtered(container, attr, f, sub, kind, value, &name),
            }
        }
    }

    /// Folds an operation on `members` into the membership change, in operation order:
    /// `members := (replace_all or current) ∪ add ∖ remove`.
    fn members_op(
        &mut self,
        kind: OpKind,
        sub: Option<&AttributeDef>,
        filter: Option<&ValFilter>,
        value: Option<&Value>,
    ) -> ScimResult<()> {
        if sub.is_some() {
            return Err(ScimError::mutability(
                "member sub-attributes are immutable: add or remove the member instead",
            ));
        }
        let given = match value {
            Some(v) => parse_members(v)?,
            None => Vec::new(),
        };
        self.count_members(given.len())?;
        match (kind, filter) {
            (_, Some(f)) => {
                let ids = eval::member_ids(f).filter(|ids| ids.iter().all(|i| !i.contains('\0'))).ok_or_else(|| {
                    ScimError::invalid_path(
                        "members can be selected only by value: members[value eq \"id\"] (or an `or` of such terms)",
                    )
                })?;
                self.count_members(ids.len())?;
                if kind != OpKind::Add {
                    self.remove_members(ids);
                }
                if kind != OpKind::Remove {
                    self.add_members(given);
                }
            }
            (OpKind::Add, None) => {
                if value.is_none() {
                    return Err(ScimError::invalid_value("adding members needs a value"));
                }
                self.add_members(given);
            }
            (OpKind::Replace, None) => {
                self.members = MembershipChange {
                    replace_all: Some(given),
                    add: Vec::new(),
                    remove: Vec::new(),
                };
            }
            // Entra's default dialect: remove exactly the members listed.
            (OpKind::Remove, None) if value.is_some_and(|v| !v.is_null()) => {
                self.remove_members(given.into_iter().map(|m| m.value).collect());
            }
            (OpKind::Remove, None) => {
                self.members = MembershipChange {
                    replace_all: Some(Vec::new()),
                    add: Vec::new(),
                    remove: Vec::new(),
                };
            }
        }
        Ok(())
    }

    fn count_members(&mut self, n: usize) -> ScimResult<()> {
        self.members_seen = self.members_seen.saturating_add(n);
        if self.members_seen > self.limits.max_members {
            return Err(ScimError::too_many(format!(
                "more than {} members in one request",
                self.limits.max_members
            )));
        }
        Ok(())
    }

    fn add_members(&mut self, members: Vec<MemberRef>) {
        let change = &mut self.members;
        for m in members {
            if let Some(all) = &mut change.replace_all {
                if !all.iter().any(|x| x.value == m.value) {
                    all.push(m);
                }
            } else {
                change.remove.retain(|id| *id != m.value);
                if !change.add.iter().any(|x| x.value == m.value) {
                    change.add.push(m);
                }
            }
        }
    }

    fn remove_members(&mut self, ids: Vec<String>) {
        let change = &mut self.members;
        for id in ids {
            if let Some(all) = &mut change.replace_all {
                all.retain(|x| x.value != id);
            } else {
                change.add.retain(|x| x.value != id);
                if !change.remove.contains(&id) {
                    change.remove.push(id);
                }
            }
        }
    }
}

/// The object an attribute lives in: the resource, or its extension object.
fn container<'m>(
    res: &'m mut Map<String, Value>,
    ext: Option<&SchemaDef>,
) -> ScimResult<&'m mut Map<String, Value>> {
    let Some(ext) = ext else { return Ok(res) };
    let slot = res
        .entry(ext.id.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
        .ok_or_else(|| ScimError::invalid_value(format!("{} must be an object", ext.id)))
}

fn norm(def: &AttributeDef, value: Option<&Value>, at: &str) -> ScimResult<Option<Value>> {
    match value {
        None => Ok(None),
        Some(v) => normalise(def, v, Unknown::Reject, at),
    }
}

/// A single-valued attribute, or one sub-attribute of a single-valued complex attribute.
/// A complex value is merged into the existing one: RFC 7644 §3.5.2.1 and §3.5.2.3 both
/// leave unspecified sub-attributes unchanged.
fn single(
    container: &mut Map<String, Value>,
    attr: &AttributeDef,
    sub: Option<&AttributeDef>,
    kind: OpKind,
    value: Option<&Value>,
    at: &str,
) -> ScimResult<()> {
    match (sub, kind) {
        (None, OpKind::Remove) => {
            container.remove(&attr.name);
        }
        (None, _) => match norm(attr, value, at)? {
            None if kind == OpKind::Replace => {
                container.remove(&attr.name);
            }
            None => {}
            Some(Value::Object(new)) => {
                let slot = container
                    .entry(attr.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                match slot {
                    Value::Object(old) => old.extend(new),
                    other => *other = Value::Object(new),
                }
            }
            Some(v) => {
                container.insert(attr.name.clone(), v);
            }
        },
        (Some(s), OpKind::Remove) => {
            if let Some(Value::Object(obj)) = container.get_mut(&attr.name) {
                obj.remove(&s.name);
            }
        }
        (Some(s), _) => {
            let v = norm(s, value, at)?;
            let slot = container
                .entry(attr.name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(obj) = slot {
                match v {
                    Some(v) => {
                        obj.insert(s.name.clone(), v);
                    }
                    None => {
                        obj.remove(&s.name);
                    }
                }
            }
        }
    }
    Ok(())
}

fn elements(container: &mut Map<String, Value>, name: &str) -> Vec<Value> {
    match container.remove(name) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other],
    }
}

/// The value compared when a client removes an element by value: the whole element, or
/// its `value` sub-attribute (case-insensitively unless `caseExact`).
fn same_element(attr: &AttributeDef, a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    let Some(value_def) = attr.sub("value") else {
        return false;
    };
    match (
        a.get("value").and_then(Value::as_str),
        b.get("value").and_then(Value::as_str),
    ) {
        (Some(x), Some(y)) if value_def.case_exact => x == y,
        (Some(x), Some(y)) => x.to_lowercase() == y.to_lowercase(),
        _ => false,
    }
}

/// RFC 7643 §2.4: at most one element is `primary`; a new primary demotes the others.
fn demote_other_primaries(items: &mut [Value], keep: &[usize]) {
    let promoted = keep
        .iter()
        .any(|&i| items.get(i).and_then(|v| v.get("primary")) == Some(&Value::Bool(true)));
    if !promoted {
        return;
    }
    for (i, item) in items.iter_mut().enumerate() {
        if keep.contains(&i) {
            continue;
        }
        if let Value::Object(obj) = item
            && obj.get("primary") == Some(&Value::Bool(true))
        {
            obj.insert("primary".to_owned(), Value::Bool(false));
        }
    }
}

/// A multi-valued attribute without a filter.
fn multi(
    container: &mut Map<String, Value>,
    attr: &AttributeDef,
    sub: Option<&AttributeDef>,
    kind: OpKind,
    value: Option<&Value>,
    at: &str,
) -> ScimResult<()> {
    let mut items = elements(container, &attr.name);
    match (sub, kind) {
        (None, OpKind::Remove) => match norm(attr, value, at)? {
            // `remove` with a value list removes just those values.
            Some(Value::Array(gone)) => {
                items.retain(|i| !gone.iter().any(|g| same_element(attr, i, g)))
            }
            _ => items.clear(),
        },
        (None, OpKind::Add) => {
            if let Some(Value::Array(new)) = norm(attr, value, at)? {
                let mut added = Vec::new();
                for n in new {
                    if !items.contains(&n) {
                        items.push(n);
                        added.push(items.len() - 1);
                    }
                }
                demote_other_primaries(&mut items, &added);
            }
        }
        (None, OpKind::Replace) => {
            items = match norm(attr, value, at)? {
                Some(Value::Array(new)) => new,
                _ => Vec::new(),
            };
        }
        (Some(s), OpKind::Remove) => {
            for item in &mut items {
                if let Value::Object(obj) = item {
                    obj.remove(&s.name);
                }
            }
        }
        (Some(s), _) => {
            let v = norm(s, value, at)?;
            if items.is_empty() {
                items.push(Value::Object(Map::new()));
            }
            for item in &mut items {
                if let Value::Object(obj) = item {
                    match &v {
                        Some(v) => obj.insert(s.name.clone(), v.clone()),
                        None => obj.remove(&s.name),
                    };
                }
            }
        }
    }
    container.insert(attr.name.clone(), Value::Array(items));
    Ok(())
}

/// A multi-valued attribute with a value filter (`emails[type eq "work"]`, optionally
/// `.value`). `add`/`replace` that match nothing create the element from the filter's
/// `eq` terms (Entra; RFC 7644 would answer `noTarget`, which Entra counts as a failure).
fn filtered(
    container: &mut Map<String, Value>,
    attr: &AttributeDef,
    filter: &ValFilter,
    sub: Option<&AttributeDef>,
    kind: OpKind,
    value: Option<&Value>,
    at: &str,
) -> ScimResult<()> {
    let mut items = elements(container, &attr.name);
    let mut hits = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if eval::matches(attr, filter, item)? {
            hits.push(i);
        }
    }
    let result = (|| -> ScimResult<()> {
        if kind == OpKind::Remove {
            match sub {
                None => {
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !hits.contains(&i);
                        i += 1;
                        keep
                    });
                }
                Some(s) => {
                    for &i in &hits {
                        if let Some(Value::Object(obj)) = items.get_mut(i) {
                            obj.remove(&s.name);
                        }
                    }
                }
            }
            return Ok(());
        }
        // The new content: one sub-attribute, or an element (merged or replacing).
        let new_sub = match sub {
            Some(s) => Some((s, norm(s, value, at)?)),
            None => None,
        };
        let new_element = match sub {
            Some(_) => None,
            None => match value {
                Some(v) => {
                    match crate::resource::value::normalise_one(attr, v, Unknown::Reject, at)? {
                        Some(Value::Object(obj)) => Some(obj),
                        Some(_) => {
                            return Err(ScimError::invalid_value(format!("{at} takes an object")));
                        }
                        None => None,
                    }
                }
                None => None,
            },
        };
        if hits.is_empty() {
            let Some(mut element) = eval::seed(attr, filter)? else {
                return Err(ScimError::no_target(format!(
                    "{at}: the filter matches no value and is not a set of eq terms to create one from"
                )));
            };
            match (&new_sub, new_element) {
                (Some((s, Some(v))), _) => {
                    element.insert(s.name.clone(), v.clone());
                }
                (Some((_, None)), _) => return Ok(()),
                (None, Some(obj)) => element.extend(obj),
                (None, None) => return Ok(()),
            }
            items.push(Value::Object(element));
            let last = items.len() - 1;
            demote_other_primaries(&mut items, &[last]);
            return Ok(());
        }
        for &i in &hits {
            let Some(Value::Object(obj)) = items.get_mut(i) else {
                continue;
            };
            match (&new_sub, &new_element) {
                (Some((s, Some(v))), _) => {
                    obj.insert(s.name.clone(), v.clone());
                }
                (Some((s, None)), _) => {
                    obj.remove(&s.name);
                }
                (None, Some(new)) if kind == OpKind::Add => obj.extend(new.clone()),
                (None, Some(new)) => {
                    // RFC 7644 §3.5.2.3: matching values are replaced; the filter's own
                    // `eq` terms are kept so that the element still answers to the filter.
                    let mut replaced = eval::seed(attr, filter)?.unwrap_or_default();
                    replaced.extend(new.clone());
                    *obj = replaced;
                }
                (None, None) => {}
            }
        }
        demote_other_primaries(&mut items, &hits);
        Ok(())
    })();
    container.insert(attr.name.clone(), Value::Array(items));
    result
}
