//! At most one active *generated* signing key per algorithm.
//!
//! Several `deprov serve` processes may share one PostgreSQL, and on first start each finds
//! no key for an algorithm and generates one. This partial unique index lets exactly one
//! insert win; the others get a unique violation, which the store reports as
//! `StoreError::Conflict`, and read the winner's key instead. Rotation retires the old key
//! and inserts the new one in one transaction, so the index holds at every commit.
//! Imported keys (selected by `kid` per relying party) are not limited.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "ux_signing_keys_one_active_generated";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name(INDEX)
                .table("signing_keys")
                .col("alg")
                .unique()
                .and_where(Expr::col("status").eq("active"))
                .and_where(Expr::col("source").eq("generated"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name(INDEX).table("signing_keys").to_owned())
            .await
    }
}
