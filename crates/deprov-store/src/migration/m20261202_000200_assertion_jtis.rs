//! The `jti`s of client assertions the grants API accepted (RFC 7523 §3, item 7: "The
//! authorization server MAY ensure that JWTs are not replayed"), kept until the assertion
//! expires. In the database rather than in process memory, so that with several replicas
//! an assertion is accepted once in all, not once per replica.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "assertion_jtis";
const INDEX: &str = "ix_assertion_jtis_expiry";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(TABLE)
                // SHA-256 (hex) of the client's target id and the jti: bounded, whatever
                // length of jti a client sends.
                .col(string_len("key_hash", 64).primary_key())
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
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(TABLE).to_owned()).await
    }
}
