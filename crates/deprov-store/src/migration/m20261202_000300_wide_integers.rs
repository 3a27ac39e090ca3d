//! Every integer column holds an `i64`. SQLite declares `integer` and `bigint` columns
//! alike, so deprov's SQLite layer (sqlite.rs) cannot tell an `i32` column from an `i64`
//! one; the four `integer` columns of the delivery tables become `bigint` on PostgreSQL,
//! where the types differ, and nothing changes on SQLite.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const WIDENED: [(&str, &str); 4] = [
    ("deliveries", "attempt_count"),
    ("delivery_attempts", "attempt_no"),
    ("delivery_attempts", "latency_ms"),
    ("delivery_attempts", "http_status"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        retype(m, "bigint").await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        retype(m, "integer").await
    }
}

/// Gives the [`WIDENED`] columns the type `ty` on PostgreSQL; nothing on SQLite.
async fn retype(m: &SchemaManager<'_>, ty: &str) -> Result<(), DbErr> {
    if m.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    for (table, column) in WIDENED {
        m.get_connection()
            .execute_unprepared(&format!(
                "ALTER TABLE {table} ALTER COLUMN {column} TYPE {ty}"
            ))
            .await?;
    }
    Ok(())
}
