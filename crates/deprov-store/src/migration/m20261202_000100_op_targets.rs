//! Grants held for applications, to be revoked at their OpenID Provider (RFC 7009).
//!
//! OpenID Providers are targets like relying parties (`targets.kind` `oauth_revocation`,
//! one row per client registered at one OP; `global_token_revocation` for an RFC 9493
//! endpoint), so they need no table of their own. What is new is the tokens applications
//! register with deprov (`POST /api/v1/{tenant}/grants`):
//!
//! - `token_sealed`: base64 of the token encrypted under the key-encryption key, with the
//!   AAD `deprov:grant:{tenant_id}:{id}` (bound to its row). Never stored in clear.
//! - `token_hash`: SHA-256 of the token, hex, so that registering the same token twice is
//!   idempotent and an application can withdraw a grant by the token. Tokens are
//!   high-entropy, so a fast hash reveals nothing (as for SCIM tokens).
//! - `user_id`: the SCIM user the grant belongs to, resolved at registration from the
//!   client's subject mapping. No foreign key to `users`: a hard-deleted user's grants must
//!   outlive the row, since the deletion is what makes deprov revoke them.
//! - Removing the target (the client) drops its grants: deprov can no longer authenticate
//!   as that client to revoke them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("grants")
                .col(string_len("id", 36).primary_key())
                .col(string_len("tenant_id", 36))
                .col(string_len("target_id", 36))
                .col(string_len("user_id", 36))
                .col(string("subject"))
                .col(text("token_sealed"))
                .col(string_len("token_hash", 64))
                .col(string_len_null("token_type_hint", 32))
                .col(big_integer_null("expires_at"))
                .col(big_integer("created_at"))
                .col(big_integer_null("last_attempt_at"))
                .col(text_null("last_error"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_grants_tenant")
                        .from("grants", "tenant_id")
                        .to("tenants", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_grants_target")
                        .from("grants", "target_id")
                        .to("targets", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // Registering the same token twice for one client is one grant.
        m.create_index(
            Index::create()
                .name("ux_grants_target_token")
                .table("grants")
                .col("target_id")
                .col("token_hash")
                .unique()
                .to_owned(),
        )
        .await?;
        // A delivery reads the grants of one user at one client.
        m.create_index(
            Index::create()
                .name("ix_grants_target_user")
                .table("grants")
                .col("target_id")
                .col("user_id")
                .to_owned(),
        )
        .await?;
        // The purge of expired grants.
        m.create_index(
            Index::create()
                .name("ix_grants_expires")
                .table("grants")
                .col("expires_at")
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("grants").to_owned()).await
    }
}
