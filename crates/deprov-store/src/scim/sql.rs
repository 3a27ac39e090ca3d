//! A small builder for parameterised SQL shared by both backends.
//!
//! Every value that comes from a request is bound as a parameter; only identifiers and
//! operators chosen by this module's code are written into the SQL text. Placeholders are
//! numbered (`$1`, `$2`, …), which PostgreSQL requires and SQLite accepts, so that one
//! bound value can be referred to several times without binding it again.
//!
//! Sets of ids and rows to insert travel as one JSON array parameter, unpacked by the
//! database (`json_each` on SQLite, `jsonb_array_elements_text` / `jsonb_to_recordset` on
//! PostgreSQL): a thousand members are one statement with a handful of parameters, far from
//! either backend's parameter limit, and PostgreSQL plans a join instead of a thousand-way
//! `IN` list. Fewer statements also matter because sqlx 0.9.0 leaves Nagle's algorithm on
//! (sqlx#4335): every large message to PostgreSQL may wait ~40 ms for a delayed ACK.

use sea_orm::{DbBackend, Statement, Value};
use serde_json::Value as JsonValue;

use crate::Backend;

/// Rows per statement when writing many rows: bounds the size of one message.
pub(crate) const CHUNK: usize = 5000;

/// SQL text under construction with its bound values.
#[derive(Debug)]
pub(crate) struct Sql {
    pub backend: Backend,
    pub text: String,
    values: Vec<Value>,
}

impl Sql {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            // A filtered read's statement is about this long: written without regrowing.
            text: String::with_capacity(512),
            values: Vec::with_capacity(4),
        }
    }

    /// Binds a value and returns its placeholder, to be written where the value goes.
    pub fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        let mut placeholder = String::with_capacity(4);
        placeholder.push('$');
        placeholder.push_str(itoa::Buffer::new().format(self.values.len()));
        placeholder
    }

    /// Binds each value and returns the placeholders joined by commas, for a short `IN (…)`.
    pub fn bind_list<I, V>(&mut self, values: I) -> String
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        let placeholders: Vec<String> = values.into_iter().map(|v| self.bind(v)).collect();
        placeholders.join(", ")
    }

    /// Binds `ids` as one JSON array and returns a subquery yielding them, for `IN (…)`.
    pub fn bind_set<I, S>(&mut self, ids: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let array = JsonValue::Array(
            ids.into_iter()
                .map(|s| JsonValue::String(s.into()))
                .collect(),
        );
        let p = self.bind(array);
        match self.backend {
            Backend::Sqlite => format!("SELECT value FROM json_each({p})"),
            Backend::Postgres => format!("SELECT jsonb_array_elements_text({p}::jsonb)"),
        }
    }

    /// Binds `rows` (JSON objects) as one JSON array and returns a `FROM` clause that yields
    /// one row per object, aliased `x`, and the expression of each of `columns` in it.
    /// `columns` are `(key, PostgreSQL type)`; on SQLite values come out of `json_extract`
    /// (objects as JSON text).
    ///
    /// One row (an event, a settle of one delivery) is bound value by value instead: SQLite
    /// re-parses the array for every `json_extract`, which made a one-row insert of an event
    /// with its user snapshot cost more than the rest of the PATCH that caused it.
    pub fn bind_rows(
        &mut self,
        rows: Vec<JsonValue>,
        columns: &[(&str, &str)],
    ) -> (String, Vec<String>) {
        if let [JsonValue::Object(row)] = rows.as_slice()
            && let Some(values) = columns
                .iter()
                .map(|(key, ty)| column_value(row.get(*key), ty))
                .collect::<Option<Vec<Value>>>()
        {
            let fields: Vec<String> = values
                .into_iter()
                .zip(columns)
                .map(|(value, (key, ty))| {
                    let p = self.bind(value);
                    match self.backend {
                        Backend::Sqlite => format!("{p} AS {key}"),
                        Backend::Postgres => format!("CAST({p} AS {ty}) AS {key}"),
                    }
                })
                .collect();
            return (
                format!("FROM (SELECT {}) AS x", fields.join(", ")),
                columns.iter().map(|(key, _)| format!("x.{key}")).collect(),
            );
        }
        let p = self.bind(JsonValue::Array(rows));
        match self.backend {
            Backend::Sqlite => (
                format!("FROM json_each({p}) AS x"),
                columns
                    .iter()
                    .map(|(key, _)| format!("json_extract(x.value, '$.{key}')"))
                    .collect(),
            ),
            Backend::Postgres => {
                let defs: Vec<String> = columns.iter().map(|(k, ty)| format!("{k} {ty}")).collect();
                (
                    format!(
                        "FROM jsonb_to_recordset({p}::jsonb) AS x({})",
                        defs.join(", ")
                    ),
                    columns.iter().map(|(k, _)| format!("x.{k}")).collect(),
                )
            }
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// `FOR UPDATE` on PostgreSQL, which locks the row for the rest of the transaction so
    /// that concurrent writers of one resource take turns. SQLite has a single writer
    /// connection ([`crate::Store::writer`]), so its transactions never interleave.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// `FOR SHARE` on PostgreSQL: the rows read may not be deleted before this transaction
    /// ends (a member being added cannot vanish under the insert).
    pub fn for_share(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        }
    }

    pub fn build(self) -> Statement {
        let backend = match self.backend {
            Backend::Sqlite => DbBackend::Sqlite,
            Backend::Postgres => DbBackend::Postgres,
        };
        Statement::from_sql_and_values(backend, self.text, self.values)
    }
}

/// A value of a [`Sql::bind_rows`] row as the column's type expects it; `None` when it
/// does not fit (the row then goes through the JSON path, which reads it as the database
/// would).
fn column_value(value: Option<&JsonValue>, ty: &str) -> Option<Value> {
    let value = value.unwrap_or(&JsonValue::Null);
    Some(match (ty, value) {
        ("text", JsonValue::Null) => Value::String(None),
        ("text", JsonValue::String(s)) => Value::String(Some(s.clone())),
        ("bigint" | "integer", JsonValue::Null) => Value::BigInt(None),
        ("bigint" | "integer", JsonValue::Number(n)) => Value::BigInt(Some(n.as_i64()?)),
        ("jsonb", JsonValue::Null) => Value::Json(None),
        ("jsonb", v) => Value::Json(Some(Box::new(v.clone()))),
        _ => return None,
    })
}
