//! SCIM filters and sort keys (RFC 7644 §3.4.2.2, §3.4.2.3) as SQL, evaluated by the
//! database: a list never loads a tenant into memory.
//!
//! The attributes the store keeps in columns (`id`, `userName`, `externalId`, `displayName`,
//! `active`, `meta.created`, `meta.lastModified`) are compared on those columns; group
//! `members` and user `groups` on `group_members`; everything else inside the stored
//! `resource` JSON: with the json1 functions on SQLite (`json_extract`, `json_type`,
//! `json_each`) and the `jsonb` operators on PostgreSQL (`->`, `#>>`, `jsonb_typeof`,
//! `jsonb_array_elements`).
//!
//! Every filter this module writes is two-valued: a missing attribute makes a comparison
//! false (SQL `NULL` is turned into false under `NOT`, the only place it would differ), so
//! `not (title eq "x")` matches resources without a `title` while `title ne "x"` needs a
//! title that differs. Every JSON value is type-checked before
//! it is compared (a string attribute holding a number does not match `eq "5"`), and the
//! checks live in `CASE` expressions so that no stored value can make a query fail.
//!
//! Case-insensitive comparisons (`caseExact: false`) apply `lower()` to both sides, except
//! for `userName` and group `displayName`, which have a column folded by Rust's Unicode
//! lowercasing and are compared with the value folded the same way. SQLite's `lower()`
//! folds ASCII only: on SQLite, `name.familyName eq "ÉMILE"` does not match `"émile"`
//! (values that are equal exactly always match). PostgreSQL's `lower()` follows the
//! database's locale. Ordering comparisons of strings (`gt`, `lt`, …) and sorting use code
//! point order on both backends (`COLLATE "C"` on PostgreSQL).

use chrono::DateTime;
use deprov_core::scim::{
    AttrRef, AttrType, CompareOp, Filter, FilterValue, ResourceKind, SortOrder,
};

use super::sql::Sql;
use crate::StoreError;

/// The alias of the resource table (`users` or `groups`) in every statement that uses a
/// filter or sort key from this module.
pub(crate) const ROW: &str = "r";

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidFilter(msg.into())
}

/// Writes `filter` as a boolean SQL expression over the row aliased [`ROW`].
pub(crate) fn predicate(
    sql: &mut Sql,
    kind: ResourceKind,
    filter: &Filter,
) -> Result<String, StoreError> {
    Compiler {
        sql,
        kind,
        aliases: 0,
    }
    .filter(filter, &Scope::Row)
}

/// Writes the `ORDER BY` list: the requested sort key (resources without a value come last
/// when ascending and first when descending, RFC 7644 §3.4.2.3), then `id`, so that paging
/// is stable. Without a sort key: creation time, then `id` (ids are UUIDv7, time-ordered).
pub(crate) fn order_by(
    sql: &mut Sql,
    kind: ResourceKind,
    sort_by: Option<&AttrRef>,
    order: SortOrder,
) -> Result<String, StoreError> {
    let dir = match order {
        SortOrder::Ascending => "ASC",
        SortOrder::Descending => "DESC",
    };
    let key = match sort_by {
        Some(attr) => Compiler {
            sql,
            kind,
            aliases: 0,
        }
        .sort_key(attr)?,
        None => None,
    };
    Ok(match key {
        Some(k) => format!("({k}) IS NULL {dir}, {k} {dir}, {ROW}.id {dir}"),
        None => format!("{ROW}.created_at ASC, {ROW}.id ASC"),
    })
}

/// Where the attribute paths of a (sub-)filter are resolved.
#[derive(Debug, Clone)]
enum Scope {
    /// The resource row.
    Row,
    /// One element of a multi-valued attribute stored in `resource` (the alias of the
    /// `json_each` / `jsonb_array_elements` row).
    Element(String),
    /// One `group_members` row of the group (`members[…]`).
    Member(String),
    /// One `group_members` row naming the user as member (the user's `groups[…]`).
    Membership(String),
}

/// How a string operand is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Exact,
    /// `lower()` on both sides.
    Lower,
    /// The operand is a column already folded by [`super::fold`]; fold the value likewise.
    Folded,
}

/// A value the comparison operators apply to.
#[derive(Debug, Clone)]
enum Operand {
    /// A text expression (a column, or a JSON value already narrowed to strings).
    Text { expr: String, case: Case },
    /// A boolean column.
    BoolColumn(String),
    /// A millisecond timestamp column (`meta.created`, `meta.lastModified`).
    Millis(String),
    /// Always present, compared as text (`meta.resourceType`).
    Constant(String),
    /// A value inside JSON.
    Json(Json),
}

/// A JSON value inside `resource`, per backend.
#[derive(Debug, Clone)]
enum Json {
    /// `ty`: the `json_type` name (`text`, `integer`, `real`, `true`, `false`, `null`,
    /// `object`, `array`) or NULL when missing; `val`: the SQL value (`json_extract`);
    /// `text`: the JSON text of arrays and objects.
    Sqlite {
        ty: String,
        val: String,
        text: String,
    },
    /// A `jsonb` expression, SQL NULL when missing.
    Postgres(String),
}

impl Json {
    /// The value as SQL text when it is a JSON string, else NULL.
    fn string(&self) -> String {
        match self {
            Json::Sqlite { ty, val, .. } => format!("(CASE WHEN {ty} = 'text' THEN {val} END)"),
            Json::Postgres(x) => {
                format!("(CASE WHEN jsonb_typeof({x}) = 'string' THEN {x} #>> '{{}}' END)")
            }
        }
    }

    /// The value as a SQL number when it is a JSON number, else NULL.
    fn number(&self) -> String {
        match self {
            Json::Sqlite { ty, val, .. } => {
                format!("(CASE WHEN {ty} IN ('integer', 'real') THEN {val} END)")
            }
            Json::Postgres(x) => format!(
                "(CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x} #>> '{{}}')::numeric END)"
            ),
        }
    }

    /// Whether the value is the JSON boolean `b`.
    fn is_bool(&self, b: bool) -> String {
        match (self, b) {
            (Json::Sqlite { ty, .. }, true) => format!("{ty} = 'true'"),
            (Json::Sqlite { ty, .. }, false) => format!("{ty} = 'false'"),
            (Json::Postgres(x), true) => format!("{x} = 'true'::jsonb"),
            (Json::Postgres(x), false) => format!("{x} = 'false'::jsonb"),
        }
    }

    /// A sortable SQL value for a boolean (false before true), else NULL.
    fn bool_key(&self) -> String {
        match self {
            Json::Sqlite { ty, .. } => {
                format!("(CASE {ty} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)")
            }
            Json::Postgres(x) => format!(
                "(CASE WHEN jsonb_typeof({x}) = 'boolean' THEN ({x} #>> '{{}}')::boolean END)"
            ),
        }
    }

    /// RFC 7644 §3.4.2.2 `pr`: a non-empty value; null, `""`, `[]` and `{}` are absent.
    fn present(&self) -> String {
        match self {
            Json::Sqlite { ty, val, text } => format!(
                "(COALESCE({ty}, 'null') <> 'null' AND NOT ({ty} = 'text' AND {val} = '') \
                 AND NOT ({ty} IN ('array', 'object') AND {text} IN ('[]', '{{}}')))"
            ),
            Json::Postgres(x) => format!(
                "({x} IS NOT NULL AND {x} NOT IN ('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb, '{{}}'::jsonb))"
            ),
        }
    }
}

/// A SQLite JSON path (`$."name"."givenName"`) for canonical attribute names. Names are
/// quoted, so the colons and dots of schema URNs are safe; a name that could end the
/// quoting is refused (no schema attribute has one).
fn sqlite_path(segments: &[String]) -> Result<String, StoreError> {
    let mut path = String::from("$");
    for s in segments {
        if s.is_empty() || s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(invalid(format!("unsupported attribute name {s:?}")));
        }
        path.push_str(".\"");
        path.push_str(s);
        path.push('"');
    }
    Ok(path)
}

struct Compiler<'a> {
    sql: &'a mut Sql,
    kind: ResourceKind,
    aliases: usize,
}

impl Compiler<'_> {
    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    fn filter(&mut self, f: &Filter, scope: &Scope) -> Result<String, StoreError> {
        Ok(match f {
            Filter::And(a, b) => format!(
                "({} AND {})",
                self.filter(a, scope)?,
                self.filter(b, scope)?
            ),
            Filter::Or(a, b) => {
                format!("({} OR {})", self.filter(a, scope)?, self.filter(b, scope)?)
            }
            // The one place where SQL's `NULL` (an absent value) must become false: below a
            // `NOT`. Elsewhere `NULL` already acts as false (in `AND`, `OR`, `WHERE`, `EXISTS`
            // and `CASE WHEN`), and a bare comparison lets the database use its indexes.
            Filter::Not(a) => format!("(NOT (({}) IS TRUE))", self.filter(a, scope)?),
            Filter::Compare { attr, op, value } => {
                self.with_attr(attr, scope, &mut |c, operand, attr| {
                    c.compare(operand, attr, *op, value)
                })?
            }
            Filter::Present(attr) => {
                self.with_attr(attr, scope, &mut |c, operand, _| Ok(c.present(operand)))?
            }
            Filter::ValuePath { attr, filter } => self.value_path(attr, filter, scope)?,
        })
    }

    /// Resolves `attr` in `scope` and writes `leaf` for its operand; for a sub-attribute of
    /// a multi-valued attribute, wraps it in `EXISTS` over the elements (any element matches).
    fn with_attr(
        &mut self,
        attr: &AttrRef,
        scope: &Scope,
        leaf: &mut dyn FnMut(&mut Self, &Operand, &AttrRef) -> Result<String, StoreError>,
    ) -> Result<String, StoreError> {
        let path = attr.path.as_slice();
        match scope {
            Scope::Row => {
                if let Some(rel) = self.relation(path) {
                    // `members.value eq "x"`, `groups.display co "x"`, `members pr`.
                    let sub = relative(attr, 1, "value");
                    let (from, inner) = self.relation_scope(rel);
                    let cond = self.with_attr(&sub, &inner, leaf)?;
                    return Ok(format!("EXISTS (SELECT 1 {from} AND {cond})"));
                }
                if let Some(operand) = self.column(attr)? {
                    return leaf(self, &operand, attr);
                }
                let doc = format!("{ROW}.resource");
                self.json_attr(&doc, attr, leaf)
            }
            Scope::Element(e) => {
                let doc = match self.sql.backend {
                    crate::Backend::Sqlite => {
                        format!("(CASE WHEN {e}.type = 'object' THEN {e}.value END)")
                    }
                    crate::Backend::Postgres => format!("{e}.v"),
                };
                self.json_attr(&doc, attr, leaf)
            }
            Scope::Member(m) => {
                let operand = match path {
                    [name] if name == "value" => Operand::Text {
                        expr: format!("{m}.member_id"),
                        case: Case::Exact,
                    },
                    [name] if name == "type" => Operand::Text {
                        expr: format!("{m}.member_type"),
                        case: text_case(attr),
                    },
                    [name] if name == "display" => Operand::Text {
                        expr: format!(
                            "COALESCE((SELECT mu.display_name FROM users mu WHERE mu.id = {m}.member_id), \
                             (SELECT mg.display_name FROM groups mg WHERE mg.id = {m}.member_id))"
                        ),
                        case: text_case(attr),
                    },
                    _ => {
                        return Err(invalid(format!(
                            "cannot filter on members.{}",
                            path.join(".")
                        )));
                    }
                };
                leaf(self, &operand, attr)
            }
            Scope::Membership(m) => {
                let operand = match path {
                    [name] if name == "value" => Operand::Text {
                        expr: format!("{m}.group_id"),
                        case: Case::Exact,
                    },
                    [name] if name == "display" => Operand::Text {
                        expr: format!(
                            "(SELECT mg.display_name FROM groups mg WHERE mg.id = {m}.group_id)"
                        ),
                        case: text_case(attr),
                    },
                    [name] if name == "type" => Operand::Constant("direct".to_owned()),
                    _ => {
                        return Err(invalid(format!(
                            "cannot filter on groups.{}",
                            path.join(".")
                        )));
                    }
                };
                leaf(self, &operand, attr)
            }
        }
    }

    /// `attr` inside the JSON document `doc`.
    fn json_attr(
        &mut self,
        doc: &str,
        attr: &AttrRef,
        leaf: &mut dyn FnMut(&mut Self, &Operand, &AttrRef) -> Result<String, StoreError>,
    ) -> Result<String, StoreError> {
        match attr.multi_valued_at {
            Some(k) if k < attr.path.len() => {
                let (from, element) = self.elements(doc, &attr.path[..=k])?;
                let sub = relative(attr, k + 1, "");
                let cond = if sub.path.is_empty() {
                    let operand = self.whole_element(&element);
                    leaf(self, &operand, &sub)?
                } else {
                    self.with_attr(&sub, &Scope::Element(element), leaf)?
                };
                Ok(format!("EXISTS (SELECT 1 {from} AND {cond})"))
            }
            _ => {
                let operand = Operand::Json(self.json_at(doc, &attr.path)?);
                leaf(self, &operand, attr)
            }
        }
    }

    /// `FROM … WHERE …` over the elements of the array at `path` in `doc` (nothing when the
    /// value there is not an array), and the alias of one element.
    fn elements(&mut self, doc: &str, path: &[String]) -> Result<(String, String), StoreError> {
        let e = self.alias("e");
        Ok(match self.sql.backend {
            crate::Backend::Sqlite => {
                let p = self.sql.bind(sqlite_path(path)?);
                (
                    format!(
                        "FROM json_each({doc}, {p}) AS {e} WHERE json_type({doc}, {p}) = 'array'"
                    ),
                    e,
                )
            }
            crate::Backend::Postgres => {
                let x = self.pg_path(doc, path);
                (
                    format!(
                        "FROM jsonb_array_elements(CASE WHEN jsonb_typeof({x}) = 'array' THEN {x} \
                         ELSE '[]'::jsonb END) AS {e}(v) WHERE TRUE"
                    ),
                    e,
                )
            }
        })
    }

    /// An element of a multi-valued attribute compared as a whole (`schemas eq "…"`, or a
    /// multi-valued attribute of simple values).
    fn whole_element(&self, e: &str) -> Operand {
        Operand::Json(match self.sql.backend {
            crate::Backend::Sqlite => Json::Sqlite {
                ty: format!("{e}.type"),
                val: format!("{e}.atom"),
                text: format!("{e}.value"),
            },
            crate::Backend::Postgres => Json::Postgres(format!("{e}.v")),
        })
    }

    fn json_at(&mut self, doc: &str, path: &[String]) -> Result<Json, StoreError> {
        Ok(match self.sql.backend {
            crate::Backend::Sqlite => {
                let p = self.sql.bind(sqlite_path(path)?);
                Json::Sqlite {
                    ty: format!("json_type({doc}, {p})"),
                    val: format!("json_extract({doc}, {p})"),
                    text: format!("json_extract({doc}, {p})"),
                }
            }
            crate::Backend::Postgres => Json::Postgres(self.pg_path(doc, path)),
        })
    }

    /// `doc -> $1 -> $2 …`, each key bound as a parameter.
    fn pg_path(&mut self, doc: &str, path: &[String]) -> String {
        let mut x = format!("({doc}");
        for segment in path {
            let p = self.sql.bind(segment.clone());
            x.push_str(&format!(" -> {p}::text"));
        }
        x.push(')');
        x
    }

    /// The multi-valued attribute kept in `group_members`, if `path` starts with one.
    fn relation(&self, path: &[String]) -> Option<Relation> {
        match (self.kind, path.first().map(String::as_str)) {
            (ResourceKind::Group, Some("members")) => Some(Relation::Members),
            (ResourceKind::User, Some("groups")) => Some(Relation::Groups),
            _ => None,
        }
    }

    fn relation_scope(&mut self, rel: Relation) -> (String, Scope) {
        let m = self.alias("m");
        match rel {
            Relation::Members => (
                format!("FROM group_members {m} WHERE {m}.group_id = {ROW}.id"),
                Scope::Member(m),
            ),
            Relation::Groups => (
                format!(
                    "FROM group_members {m} WHERE {m}.tenant_id = {ROW}.tenant_id AND {m}.member_id = {ROW}.id"
                ),
                Scope::Membership(m),
            ),
        }
    }

    /// `emails[type eq "work" and value co "@x"]`: one element satisfies the whole filter.
    fn value_path(
        &mut self,
        attr: &AttrRef,
        filter: &Filter,
        scope: &Scope,
    ) -> Result<String, StoreError> {
        if let (Scope::Row, Some(rel)) = (scope, self.relation(&attr.path)) {
            if attr.path.len() != 1 {
                return Err(invalid(
                    "a value filter applies to a multi-valued attribute",
                ));
            }
            let (from, inner) = self.relation_scope(rel);
            let cond = self.filter(filter, &inner)?;
            return Ok(format!("EXISTS (SELECT 1 {from} AND {cond})"));
        }
        let doc = match scope {
            Scope::Row => format!("{ROW}.resource"),
            Scope::Element(e) => match self.sql.backend {
                crate::Backend::Sqlite => {
                    format!("(CASE WHEN {e}.type = 'object' THEN {e}.value END)")
                }
                crate::Backend::Postgres => format!("{e}.v"),
            },
            Scope::Member(_) | Scope::Membership(_) => {
                return Err(invalid("value filters cannot be nested"));
            }
        };
        if self.column_name(&attr.path).is_some() {
            return Err(invalid(format!(
                "{} is not multi-valued",
                attr.path.join(".")
            )));
        }
        let end = attr.multi_valued_at.map_or(attr.path.len(), |k| k + 1);
        let array = attr.path.get(..end).unwrap_or(&attr.path);
        let (from, element) = self.elements(&doc, array)?;
        let cond = self.filter(filter, &Scope::Element(element))?;
        Ok(format!("EXISTS (SELECT 1 {from} AND {cond})"))
    }

    /// The column an attribute of the row is kept in, if any.
    fn column_name(&self, path: &[String]) -> Option<&'static str> {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        match (self.kind, p.as_slice()) {
            (_, ["id"]) => Some("id"),
            (_, ["externalId"]) => Some("external_id"),
            (_, ["displayName"]) => Some("display_name"),
            (_, ["meta", "created"]) => Some("created_at"),
            (_, ["meta", "lastModified"]) => Some("updated_at"),
            (_, ["meta", "resourceType"]) => Some("resource_type"),
            (ResourceKind::User, ["userName"]) => Some("user_name"),
            (ResourceKind::User, ["active"]) => Some("active"),
            _ => None,
        }
    }

    fn column(&self, attr: &AttrRef) -> Result<Option<Operand>, StoreError> {
        let Some(name) = self.column_name(&attr.path) else {
            if attr.path.first().is_some_and(|s| s == "meta") {
                return Err(invalid(format!("cannot filter on {}", attr.path.join("."))));
            }
            return Ok(None);
        };
        let col = |c: &str| format!("{ROW}.{c}");
        Ok(Some(match name {
            "id" => Operand::Text {
                expr: col("id"),
                case: Case::Exact,
            },
            "user_name" if !attr.case_exact => Operand::Text {
                expr: col("user_name_folded"),
                case: Case::Folded,
            },
            "display_name" if self.kind == ResourceKind::Group && !attr.case_exact => {
                Operand::Text {
                    expr: col("display_name_folded"),
                    case: Case::Folded,
                }
            }
            "active" => Operand::BoolColumn(col("active")),
            "created_at" | "updated_at" => Operand::Millis(col(name)),
            "resource_type" => Operand::Constant(
                match self.kind {
                    ResourceKind::User => "User",
                    ResourceKind::Group => "Group",
                }
                .to_owned(),
            ),
            other => Operand::Text {
                expr: col(other),
                case: text_case(attr),
            },
        }))
    }

    fn present(&mut self, operand: &Operand) -> String {
        match operand {
            Operand::Text { expr, .. } => format!("({expr} IS NOT NULL AND {expr} <> '')"),
            Operand::BoolColumn(_) | Operand::Millis(_) | Operand::Constant(_) => {
                "(1 = 1)".to_owned()
            }
            Operand::Json(j) => j.present(),
        }
    }

    fn compare(
        &mut self,
        operand: &Operand,
        attr: &AttrRef,
        op: CompareOp,
        value: &FilterValue,
    ) -> Result<String, StoreError> {
        let name = attr.path.join(".");
        if matches!(value, FilterValue::Null) {
            // `attr eq null` is the absence of a value, `ne null` its presence.
            return match op {
                CompareOp::Eq => Ok(format!("(NOT {})", self.present(operand))),
                CompareOp::Ne => Ok(self.present(operand)),
                _ => Err(invalid(format!(
                    "null can only be compared with eq or ne ({name})"
                ))),
            };
        }
        let cond = match operand {
            Operand::Text { expr, case } => {
                let text = string_value(value, &name)?;
                self.compare_text(expr, *case, op, text)
            }
            Operand::Constant(c) => {
                let text = string_value(value, &name)?;
                let lhs = self.sql.bind(c.clone());
                self.compare_text(&lhs, Case::Lower, op, text)
            }
            Operand::BoolColumn(col) => {
                let b = bool_value(value, &name)?;
                let p = self.sql.bind(b);
                match op {
                    CompareOp::Eq => format!("{col} = {p}"),
                    CompareOp::Ne => format!("{col} <> {p}"),
                    _ => return Err(invalid(format!("{name} is boolean: only eq and ne apply"))),
                }
            }
            Operand::Millis(col) => {
                let ms = millis_value(value, &name)?;
                let p = self.sql.bind(ms);
                format!("{col} {} {p}", ordering_op(op, &name)?)
            }
            Operand::Json(j) => self.compare_json(j, attr, op, value, &name)?,
        };
        Ok(format!("({cond})"))
    }

    fn compare_json(
        &mut self,
        j: &Json,
        attr: &AttrRef,
        op: CompareOp,
        value: &FilterValue,
        name: &str,
    ) -> Result<String, StoreError> {
        match attr.kind {
            AttrType::Boolean => {
                let b = bool_value(value, name)?;
                match op {
                    CompareOp::Eq => Ok(j.is_bool(b)),
                    CompareOp::Ne => Ok(j.is_bool(!b)),
                    _ => Err(invalid(format!("{name} is boolean: only eq and ne apply"))),
                }
            }
            AttrType::Integer | AttrType::Decimal => {
                let FilterValue::Number(n) = value else {
                    return Err(invalid(format!("{name} is a number")));
                };
                if !n.is_finite() {
                    return Err(invalid(format!("{name}: not a finite number")));
                }
                let sql_op = ordering_op(op, name)?;
                let lhs = j.number();
                let p = self.sql.bind(*n);
                Ok(match self.sql.backend {
                    crate::Backend::Sqlite => format!("{lhs} {sql_op} {p}"),
                    crate::Backend::Postgres => format!("{lhs} {sql_op} {p}::numeric"),
                })
            }
            AttrType::Complex => Err(invalid(format!(
                "{name} is complex: compare one of its sub-attributes"
            ))),
            AttrType::Binary if !matches!(op, CompareOp::Eq | CompareOp::Ne) => {
                Err(invalid(format!("{name} is binary: only eq and ne apply")))
            }
            AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime => {
                let text = string_value(value, name)?;
                // dateTime values inside the resource are compared as the strings they are
                // stored as (RFC 3339 with the same offset sorts chronologically).
                let case = if attr.kind == AttrType::String {
                    text_case(attr)
                } else {
                    Case::Exact
                };
                Ok(self.compare_text(&j.string(), case, op, text))
            }
        }
    }

    fn compare_text(&mut self, expr: &str, case: Case, op: CompareOp, value: &str) -> String {
        let (lhs, rhs) = match case {
            Case::Exact => (expr.to_owned(), self.sql.bind(value.to_owned())),
            Case::Lower => (
                format!("lower({expr})"),
                format!("lower({})", self.sql.bind(value.to_owned())),
            ),
            Case::Folded => (expr.to_owned(), self.sql.bind(super::fold(value))),
        };
        let pg = self.sql.is_postgres();
        // Substring tests use instr/strpos and substr, never LIKE: `%`, `_` and `\` in the
        // value are ordinary characters.
        match op {
            CompareOp::Eq => format!("{lhs} = {rhs}"),
            CompareOp::Ne => format!("{lhs} <> {rhs}"),
            CompareOp::Co if pg => format!("strpos({lhs}, {rhs}) > 0"),
            CompareOp::Co => format!("instr({lhs}, {rhs}) > 0"),
            CompareOp::Sw if pg => format!("left({lhs}, length({rhs})) = {rhs}"),
            CompareOp::Sw => format!("substr({lhs}, 1, length({rhs})) = {rhs}"),
            CompareOp::Ew if pg => format!("right({lhs}, length({rhs})) = {rhs}"),
            CompareOp::Ew => format!(
                "(length({lhs}) >= length({rhs}) AND substr({lhs}, length({lhs}) - length({rhs}) + 1) = {rhs})"
            ),
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
                let sql_op = match op {
                    CompareOp::Gt => ">",
                    CompareOp::Ge => ">=",
                    CompareOp::Lt => "<",
                    _ => "<=",
                };
                if pg {
                    format!("({lhs}) COLLATE \"C\" {sql_op} {rhs}")
                } else {
                    format!("{lhs} {sql_op} {rhs}")
                }
            }
        }
    }

    /// The SQL expression a sort on `attr` orders by; `None` when it orders nothing
    /// (`meta.resourceType`).
    fn sort_key(&mut self, attr: &AttrRef) -> Result<Option<String>, StoreError> {
        let name = attr.path.join(".");
        if self.relation(&attr.path).is_some() {
            return Err(invalid(format!("cannot sort by {name}")));
        }
        let pg = self.sql.is_postgres();
        let text_key = |expr: String, case: Case| {
            let e = match case {
                Case::Lower => format!("lower({expr})"),
                Case::Exact | Case::Folded => expr,
            };
            if pg {
                format!("({e}) COLLATE \"C\"")
            } else {
                e
            }
        };
        if let Some(operand) = self.column(attr)? {
            return Ok(match operand {
                Operand::Text { expr, case } => Some(text_key(expr, case)),
                Operand::BoolColumn(c) | Operand::Millis(c) => Some(c),
                Operand::Constant(_) | Operand::Json(_) => None,
            });
        }
        let typed = |j: &Json| -> Result<String, StoreError> {
            Ok(match attr.kind {
                AttrType::Boolean => j.bool_key(),
                AttrType::Integer | AttrType::Decimal => j.number(),
                AttrType::Complex => {
                    return Err(invalid(format!("cannot sort by {name}: it is complex")));
                }
                AttrType::String => text_key(j.string(), text_case(attr)),
                _ => text_key(j.string(), Case::Exact),
            })
        };
        let doc = format!("{ROW}.resource");
        match attr.multi_valued_at {
            // A multi-valued attribute sorts by its primary value, else its first
            // (RFC 7644 §3.4.2.3).
            Some(k) if k < attr.path.len() => {
                let rest = attr.path.get(k + 1..).unwrap_or_default();
                let array = attr.path.get(..=k).unwrap_or_default();
                let e = self.alias("e");
                Ok(Some(match self.sql.backend {
                    crate::Backend::Sqlite => {
                        let p = self.sql.bind(sqlite_path(array)?);
                        let obj = format!("(CASE WHEN {e}.type = 'object' THEN {e}.value END)");
                        let value = if rest.is_empty() {
                            typed(&Json::Sqlite {
                                ty: format!("{e}.type"),
                                val: format!("{e}.atom"),
                                text: format!("{e}.value"),
                            })?
                        } else {
                            let rp = self.sql.bind(sqlite_path(rest)?);
                            typed(&Json::Sqlite {
                                ty: format!("json_type({obj}, {rp})"),
                                val: format!("json_extract({obj}, {rp})"),
                                text: format!("json_extract({obj}, {rp})"),
                            })?
                        };
                        let primary = self.sql.bind(sqlite_path(&["primary".to_owned()])?);
                        format!(
                            "(SELECT {value} FROM json_each({doc}, {p}) AS {e} \
                             WHERE json_type({doc}, {p}) = 'array' \
                             ORDER BY CASE WHEN json_type({obj}, {primary}) = 'true' THEN 0 ELSE 1 END, {e}.key LIMIT 1)"
                        )
                    }
                    crate::Backend::Postgres => {
                        let x = self.pg_path(&doc, array);
                        let elem = format!("{e}.v");
                        let value = if rest.is_empty() {
                            typed(&Json::Postgres(elem.clone()))?
                        } else {
                            let at = self.pg_path(&elem, rest);
                            typed(&Json::Postgres(at))?
                        };
                        format!(
                            "(SELECT {value} FROM jsonb_array_elements(CASE WHEN jsonb_typeof({x}) = 'array' \
                             THEN {x} ELSE '[]'::jsonb END) WITH ORDINALITY AS {e}(v, n) \
                             ORDER BY CASE WHEN {elem} -> 'primary' = 'true'::jsonb THEN 0 ELSE 1 END, {e}.n LIMIT 1)"
                        )
                    }
                }))
            }
            _ => {
                let j = self.json_at(&doc, &attr.path)?;
                Ok(Some(typed(&j)?))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Relation {
    /// A group's `members`.
    Members,
    /// A user's `groups`.
    Groups,
}

/// `attr` with its first `from` path segments removed (the path relative to an element);
/// `default` names the sub-attribute when nothing is left (`members` means `members.value`).
fn relative(attr: &AttrRef, from: usize, default: &str) -> AttrRef {
    let mut path: Vec<String> = attr.path.iter().skip(from).cloned().collect();
    if path.is_empty() && !default.is_empty() {
        path.push(default.to_owned());
    }
    AttrRef {
        path,
        kind: attr.kind,
        case_exact: attr.case_exact,
        multi_valued_at: attr.multi_valued_at.and_then(|k| k.checked_sub(from)),
    }
}

fn text_case(attr: &AttrRef) -> Case {
    if attr.case_exact {
        Case::Exact
    } else {
        Case::Lower
    }
}

fn string_value<'v>(value: &'v FilterValue, name: &str) -> Result<&'v str, StoreError> {
    match value {
        FilterValue::String(s) => Ok(s),
        _ => Err(invalid(format!("{name} is compared with a string"))),
    }
}

fn bool_value(value: &FilterValue, name: &str) -> Result<bool, StoreError> {
    match value {
        FilterValue::Bool(b) => Ok(*b),
        _ => Err(invalid(format!("{name} is compared with true or false"))),
    }
}

fn millis_value(value: &FilterValue, name: &str) -> Result<i64, StoreError> {
    let FilterValue::String(s) = value else {
        return Err(invalid(format!("{name} is compared with a dateTime")));
    };
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| invalid(format!("{name}: {s:?} is not an RFC 3339 dateTime ({e})")))
}

/// eq ne gt ge lt le as SQL; the substring operators make no sense for numbers and times.
fn ordering_op(op: CompareOp, name: &str) -> Result<&'static str, StoreError> {
    Ok(match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
            return Err(invalid(format!(
                "co, sw and ew apply to strings, not to {name}"
            )));
        }
    })
}
