//! Room in each page of `deliveries` for the row a claim writes (PostgreSQL).
//!
//! A claim sets a delivery's lease (`lease_owner`, `lease_expires_at`, `updated_at`), which no
//! index covers, so PostgreSQL can write the new version as a heap-only tuple in the same page
//! and leave the six indexes alone, but only if the page has room. Filled to the brim by the
//! enqueue, every lease was a new tuple in another page, six new index entries and the
//! bottom-up deletion of old ones: a sixth of PostgreSQL's CPU in a drain of 100,000 logouts,
//! which runs about a fifth faster with the room. Pages written from now on keep 30 % free;
//! nothing changes on SQLite.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        set(m, "SET (fillfactor = 70)").await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        set(m, "RESET (fillfactor)").await
    }
}

async fn set(m: &SchemaManager<'_>, option: &str) -> Result<(), DbErr> {
    if m.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    m.get_connection()
        .execute_unprepared(&format!("ALTER TABLE deliveries {option}"))
        .await?;
    Ok(())
}
