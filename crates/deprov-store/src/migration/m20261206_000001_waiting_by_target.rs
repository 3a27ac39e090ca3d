//! The waiting deliveries of each target in due order, so that a worker can reach the work
//! of one target past a backlog of another's: a target at its per-target limit (slow, or
//! simply busy) whose due deliveries are the oldest must not hold up the rest
//! (`Store::claim_due`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "ix_deliveries_waiting_target";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name(NAME)
                .table("deliveries")
                .col("target_id")
                .col("next_attempt_at")
                .col("id")
                .and_where(Expr::cust("status IN ('pending', 'retrying')"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name(NAME).table("deliveries").to_owned())
            .await
    }
}
