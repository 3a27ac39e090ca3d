//! Sessions of the web console, and the indexes its overview reads.
//!
//! Stored in the database (not in process memory) so that any replica sharing one
//! PostgreSQL serves a signed-in operator. Only the SHA-256 of the random session id is
//! kept: a copy of this table signs nobody in. A session ends at `expires_at` (absolute),
//! or when unused for the idle timeout (measured from `last_seen_at`), or at sign-out,
//! which deletes the row, or when the admin token it was opened with stops being valid.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "console_sessions";
const INDEX: &str = "ix_console_sessions_expiry";
/// Events per hour and per day over the last week, across tenants (`ix_events_tenant_time`
/// serves one tenant at a time).
const EVENTS_TIME: &str = "ix_events_time";
/// Attempts of the last days, for the health of each target.
const ATTEMPTS_TIME: &str = "ix_attempts_time";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(TABLE)
                .col(string_len("id_hash", 64).primary_key())
                // Who signed in, as written in the audit log (`admin:<token hint>`).
                .col(string("actor"))
                // The admin token signed in with: `admin_token:<id>` (the session ends when
                // that token is revoked) or `configured:<hash>`, a hash of the configured
                // token bound to the session id (it ends when DEPROV_ADMIN_TOKEN changes).
                .col(string("credential"))
                .col(big_integer("created_at"))
                .col(big_integer("last_seen_at"))
                .col(big_integer("expires_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name(INDEX)
                .table(TABLE)
                .col("expires_at")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name(EVENTS_TIME)
                .table("events")
                .col("occurred_at")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name(ATTEMPTS_TIME)
                .table("delivery_attempts")
                .col("started_at")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name(ATTEMPTS_TIME)
                .table("delivery_attempts")
                .to_owned(),
        )
        .await?;
        m.drop_index(Index::drop().name(EVENTS_TIME).table("events").to_owned())
            .await?;
        m.drop_table(Table::drop().table(TABLE).to_owned()).await
    }
}
