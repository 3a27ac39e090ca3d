//! The initial schema: tenants and their tokens, the SCIM resources, targets, the outbox
//! (events, deliveries, attempts), signing keys and the audit log.
//!
//! Times are `BIGINT` milliseconds since the Unix epoch (UTC) on both databases: one
//! representation that compares and indexes the same way on SQLite and PostgreSQL.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(
    name: &str,
    from: (&'static str, &'static str),
    to: (&'static str, &'static str),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn index(name: &str, table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for c in cols {
        stmt.col(*c);
    }
    stmt.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("tenants")
                .col(string_len("id", 36).primary_key())
                .col(string_len_uniq("name", 63))
                .col(big_integer("created_at"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("scim_tokens")
                .col(string_len("id", 36).primary_key())
                .col(string_len("tenant_id", 36))
                .col(string_len_uniq("token_hash", 64))
                .col(string_len("hint", 32))
                .col(string_null("label"))
                .col(big_integer("created_at"))
                .col(big_integer_null("last_used_at"))
                .col(big_integer_null("revoked_at"))
                .foreign_key(&mut fk(
                    "fk_scim_tokens_tenant",
                    ("scim_tokens", "tenant_id"),
                    ("tenants", "id"),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_scim_tokens_tenant",
            "scim_tokens",
            &["tenant_id"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("admin_tokens")
                .col(string_len("id", 36).primary_key())
                .col(string_len_uniq("token_hash", 64))
                .col(string_len("hint", 32))
                .col(string_null("label"))
                .col(big_integer("created_at"))
                .col(big_integer_null("revoked_at"))
                .to_owned(),
        )
        .await?;

        // SCIM users. `resource` is the stored SCIM representation (as sent, minus what the
        // server owns); the columns beside it are the attributes looked up and constrained.
        m.create_table(
            Table::create()
                .table("users")
                .col(string_len("id", 36).primary_key())
                .col(string_len("tenant_id", 36))
                .col(string("user_name"))
                // userName is caseExact=false (RFC 7643 §4.1.1): uniqueness and `eq` use this
                // Unicode-lowercased copy; the original is returned exactly as sent.
                .col(string("user_name_folded"))
                .col(string_null("external_id"))
                .col(string_null("display_name"))
                .col(boolean("active"))
                // jsonb on PostgreSQL, so filters index into it without reparsing text; JSON
                // text on SQLite, read with the json1 functions.
                .col(json_binary("resource"))
                .col(big_integer("version"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk(
                    "fk_users_tenant",
                    ("users", "tenant_id"),
                    ("tenants", "id"),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            index(
                "ux_users_tenant_user_name",
                "users",
                &["tenant_id", "user_name_folded"],
            )
            .unique()
            .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_users_tenant_external_id",
            "users",
            &["tenant_id", "external_id"],
        ))
        .await?;
        m.create_index(index(
            "ix_users_tenant_display_name",
            "users",
            &["tenant_id", "display_name"],
        ))
        .await?;
        // The default list order (creation time, then id) and stable paging over it.
        m.create_index(index(
            "ix_users_tenant_created",
            "users",
            &["tenant_id", "created_at", "id"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("groups")
                .col(string_len("id", 36).primary_key())
                .col(string_len("tenant_id", 36))
                .col(string("display_name"))
                .col(string("display_name_folded"))
                .col(string_null("external_id"))
                .col(json_binary("resource"))
                .col(big_integer("version"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk(
                    "fk_groups_tenant",
                    ("groups", "tenant_id"),
                    ("tenants", "id"),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_groups_tenant_display_name",
            "groups",
            &["tenant_id", "display_name_folded"],
        ))
        .await?;
        m.create_index(index(
            "ix_groups_tenant_external_id",
            "groups",
            &["tenant_id", "external_id"],
        ))
        .await?;
        m.create_index(index(
            "ix_groups_tenant_created",
            "groups",
            &["tenant_id", "created_at", "id"],
        ))
        .await?;

        // Membership as rows, so that adding or removing hundreds of members is one set
        // statement and reading a group can skip members entirely.
        m.create_table(
            Table::create()
                .table("group_members")
                .col(string_len("group_id", 36))
                .col(string_len("member_id", 36))
                .col(string_len("tenant_id", 36))
                .col(string_len("member_type", 8))
                .col(big_integer("created_at"))
                .primary_key(Index::create().col("group_id").col("member_id"))
                .foreign_key(&mut fk(
                    "fk_group_members_group",
                    ("group_members", "group_id"),
                    ("groups", "id"),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_group_members_member",
            "group_members",
            &["tenant_id", "member_id"],
        ))
        .await?;

        // Where de-provisioning is delivered: relying parties (back-channel logout) and,
        // later, OAuth providers and SSF receivers. `config` holds the kind's settings.
        m.create_table(
            Table::create()
                .table("targets")
                .col(string_len("id", 36).primary_key())
                .col(string_len("tenant_id", 36))
                .col(string_len("kind", 32))
                .col(string("client_id"))
                .col(json("config"))
                .col(boolean("enabled"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk(
                    "fk_targets_tenant",
                    ("targets", "tenant_id"),
                    ("tenants", "id"),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            index(
                "ux_targets_tenant_kind_client",
                "targets",
                &["tenant_id", "kind", "client_id"],
            )
            .unique()
            .to_owned(),
        )
        .await?;

        // A target bound to groups also hears removals from those groups. The binding names the
        // group as the operator did (display name or id), so it may precede the group's push.
        m.create_table(
            Table::create()
                .table("target_groups")
                .col(string_len("target_id", 36))
                .col(string("group_ref"))
                .col(string("group_ref_folded"))
                .primary_key(Index::create().col("target_id").col("group_ref_folded"))
                .foreign_key(&mut fk(
                    "fk_target_groups_target",
                    ("target_groups", "target_id"),
                    ("targets", "id"),
                ))
                .to_owned(),
        )
        .await?;

        // Is this group bound? is asked on every membership removal, by group id or name.
        m.create_index(index(
            "ix_target_groups_ref",
            "target_groups",
            &["group_ref_folded"],
        ))
        .await?;

        // De-provisioning events. No foreign key to users: the record outlives the user.
        m.create_table(
            Table::create()
                .table("events")
                .col(string_len("id", 36).primary_key())
                .col(string_len("tenant_id", 36))
                .col(string_len("kind", 32))
                .col(string_len("user_id", 36))
                .col(json_binary("user_snapshot"))
                .col(string_len_null("group_id", 36))
                .col(string_null("group_display_name"))
                .col(string_len("request_id", 128))
                .col(string_len("scim_method", 8))
                .col(string("scim_path"))
                .col(big_integer("occurred_at"))
                .foreign_key(&mut fk(
                    "fk_events_tenant",
                    ("events", "tenant_id"),
                    ("tenants", "id"),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_events_tenant_time",
            "events",
            &["tenant_id", "occurred_at"],
        ))
        .await?;
        m.create_index(index("ix_events_user", "events", &["tenant_id", "user_id"]))
            .await?;

        // The outbox: one delivery per (event, target), written in the event's transaction.
        m.create_table(
            Table::create()
                .table("deliveries")
                .col(string_len("id", 36).primary_key())
                .col(string_len("event_id", 36))
                .col(string_len("tenant_id", 36))
                // No foreign key: removing a target must not erase the proof of what was sent.
                .col(string_len("target_id", 36))
                .col(string_len("target_kind", 32))
                .col(string_len("status", 16))
                .col(integer("attempt_count"))
                .col(big_integer("next_attempt_at"))
                .col(string_len_null("lease_owner", 64))
                .col(big_integer_null("lease_expires_at"))
                .col(text_null("last_error"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .col(big_integer_null("completed_at"))
                // When an operator last re-drove it from the dead letters: the maximum age of
                // its retries counts from here rather than from `created_at`.
                .col(big_integer_null("redriven_at"))
                .foreign_key(&mut fk(
                    "fk_deliveries_event",
                    ("deliveries", "event_id"),
                    ("events", "id"),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_deliveries_due",
            "deliveries",
            &["status", "next_attempt_at"],
        ))
        .await?;
        // What a worker claims: the waiting deliveries in due order. Partial, so that a claim
        // reads the next few rows of this index and stops, however many deliveries wait or
        // have ended (the claim query names the statuses as literals to match it).
        m.create_index(
            index(
                "ix_deliveries_waiting",
                "deliveries",
                &["next_attempt_at", "id"],
            )
            .and_where(Expr::cust("status IN ('pending', 'retrying')"))
            .to_owned(),
        )
        .await?;
        m.create_index(index("ix_deliveries_event", "deliveries", &["event_id"]))
            .await?;
        m.create_index(index(
            "ix_deliveries_target",
            "deliveries",
            &["target_id", "status"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table("delivery_attempts")
                .col(big_pk_auto("id"))
                .col(string_len("delivery_id", 36))
                .col(integer("attempt_no"))
                .col(big_integer("started_at"))
                .col(integer("latency_ms"))
                .col(integer_null("http_status"))
                .col(string_len("outcome", 16))
                .col(text_null("error"))
                .col(text_null("response_excerpt"))
                .foreign_key(&mut fk(
                    "fk_attempts_delivery",
                    ("delivery_attempts", "delivery_id"),
                    ("deliveries", "id"),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_attempts_delivery",
            "delivery_attempts",
            &["delivery_id"],
        ))
        .await?;

        // Signing keys; the private half is stored only encrypted (AES-256-GCM under the
        // key-encryption key), the public half as a JWK for the JWKS.
        m.create_table(
            Table::create()
                .table("signing_keys")
                .col(string_len("kid", 64).primary_key())
                .col(string_len("alg", 16))
                .col(string_len("status", 16))
                .col(string_len("source", 16))
                .col(json("public_jwk"))
                .col(blob("private_key_ciphertext"))
                .col(big_integer("created_at"))
                .col(big_integer_null("retired_at"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("audit_log")
                .col(big_pk_auto("id"))
                .col(big_integer("occurred_at"))
                .col(string("actor"))
                .col(string_len_null("tenant_id", 36))
                .col(string_len("action", 64))
                .col(string_len("subject_type", 32))
                .col(string_null("subject_id"))
                .col(string_len_null("request_id", 128))
                .col(json("detail"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("ix_audit_time", "audit_log", &["occurred_at"]))
            .await?;

        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "audit_log",
            "signing_keys",
            "delivery_attempts",
            "deliveries",
            "events",
            "target_groups",
            "targets",
            "group_members",
            "groups",
            "users",
            "admin_tokens",
            "scim_tokens",
            "tenants",
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
