//! The rows deprov reads most (users and groups), decoded by position straight from the
//! driver's row: sea-orm's way builds a map from column name to value for every row
//! (SQLite's proxy rows) or looks each field up by name (sqlx), then clones the JSON
//! document out of it. Both backends read the same select list ([`Decode::select`]).

use sea_orm::DbErr;
use sea_orm::sqlx::Row as _;
use sea_orm::sqlx::postgres::PgRow;
/// A driver's row, read by column position.
pub(crate) trait Row {
    fn text(&self, i: usize) -> Result<String, DbErr>;
    fn text_or_null(&self, i: usize) -> Result<Option<String>, DbErr>;
    fn int(&self, i: usize) -> Result<i64, DbErr>;
    fn boolean(&self, i: usize) -> Result<bool, DbErr>;
    fn json(&self, i: usize) -> Result<serde_json::Value, DbErr>;
}

/// A row type decoded by position. Its SELECTs list [`Decode::COLUMNS`], in order, before
/// any other column.
pub(crate) trait Decode: Sized {
    /// The table's columns, in the order [`Decode::decode`] reads them.
    const COLUMNS: &'static [&'static str];

    fn decode(row: &impl Row) -> Result<Self, DbErr>;

    /// [`Decode::select`] of the alias lists use ([`crate::scim::filter::ROW`]), built
    /// once: every filtered read writes it into its statement.
    fn select_row() -> &'static str;

    /// The select list: [`Decode::COLUMNS`], each qualified by `alias`.
    fn select(alias: &str) -> String {
        let mut list = String::new();
        for (i, column) in Self::COLUMNS.iter().enumerate() {
            if i > 0 {
                list.push_str(", ");
            }
            list.push_str(alias);
            list.push('.');
            list.push_str(column);
        }
        list
    }
}

fn column_err(i: usize, e: impl std::fmt::Display) -> DbErr {
    DbErr::Type(format!("column {i}: {e}"))
}

impl Row for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, DbErr> {
        self.get(i).map_err(|e| column_err(i, e))
    }

    fn text_or_null(&self, i: usize) -> Result<Option<String>, DbErr> {
        self.get(i).map_err(|e| column_err(i, e))
    }

    fn int(&self, i: usize) -> Result<i64, DbErr> {
        self.get(i).map_err(|e| column_err(i, e))
    }

    fn boolean(&self, i: usize) -> Result<bool, DbErr> {
        self.get(i).map_err(|e| column_err(i, e))
    }

    /// SQLite keeps JSON as text.
    fn json(&self, i: usize) -> Result<serde_json::Value, DbErr> {
        use rusqlite::types::ValueRef;
        match self.get_ref(i).map_err(|e| column_err(i, e))? {
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                serde_json::from_slice(t).map_err(|e| DbErr::Json(e.to_string()))
            }
            other => Err(column_err(
                i,
                format!("JSON expected, found {:?}", other.data_type()),
            )),
        }
    }
}

impl Row for PgRow {
    fn text(&self, i: usize) -> Result<String, DbErr> {
        self.try_get(i).map_err(|e| column_err(i, e))
    }

    fn text_or_null(&self, i: usize) -> Result<Option<String>, DbErr> {
        self.try_get(i).map_err(|e| column_err(i, e))
    }

    fn int(&self, i: usize) -> Result<i64, DbErr> {
        self.try_get(i).map_err(|e| column_err(i, e))
    }

    fn boolean(&self, i: usize) -> Result<bool, DbErr> {
        self.try_get(i).map_err(|e| column_err(i, e))
    }

    fn json(&self, i: usize) -> Result<serde_json::Value, DbErr> {
        self.try_get(i).map_err(|e| column_err(i, e))
    }
}
