//! Admin bearer tokens: the `admin_tokens` table.
//!
//! An admin token drives the admin API of the whole installation. Like SCIM tokens it is
//! `deprov_admin_` + 256 random bits, shown once and stored only as its SHA-256; a presented
//! token is looked up by hash and compared in constant time. The two kinds never stand in
//! for each other: their prefixes differ and they live in different tables.

use deprov_core::token::looks_like;
use deprov_core::{IssuedToken, TokenHash, TokenKind};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set, Statement,
};
use serde_json::json;

use crate::audit::{self, AuditRecord};
use crate::entity::admin_token;
use crate::{Backend, Store, StoreError, now_millis};

pub use crate::entity::admin_token::Model as AdminToken;

/// Serialises first-start creation across replicas sharing PostgreSQL
/// (`pg_advisory_xact_lock` key; any constant works, this one spells "dpadmin").
const FIRST_TOKEN_LOCK: i64 = 0x0064_7061_646d_696e;

fn token_error(e: deprov_core::token::RandomnessUnavailable) -> StoreError {
    StoreError::Db(sea_orm::DbErr::Custom(e.to_string()))
}

async fn insert(
    db: &impl ConnectionTrait,
    token: &IssuedToken,
    label: Option<&str>,
    actor: &str,
) -> Result<AdminToken, StoreError> {
    let model = admin_token::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        token_hash: Set(token.hash.to_hex()),
        hint: Set(token.hint.clone()),
        label: Set(label.map(str::to_owned)),
        created_at: Set(now_millis()),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    audit::record(
        db,
        AuditRecord {
            actor,
            tenant_id: None,
            action: "admin_token.issue",
            subject_type: "admin_token",
            subject_id: Some(&model.id),
            request_id: None,
            detail: json!({ "hint": model.hint, "label": model.label }),
        },
    )
    .await?;
    Ok(model)
}

impl Store {
    /// Issues an admin token; the clear value is returned once and never stored.
    pub async fn issue_admin_token(
        &self,
        label: Option<&str>,
        actor: &str,
    ) -> Result<(AdminToken, IssuedToken), StoreError> {
        let token = IssuedToken::generate(TokenKind::Admin).map_err(token_error)?;
        let txn = self.begin_write().await?;
        let model = insert(&txn, &token, label, actor).await?;
        self.commit(txn).await?;
        Ok((model, token))
    }

    /// Issues the first admin token when no live one exists (first start without
    /// `DEPROV_ADMIN_TOKEN`, or after every admin token was revoked). Returns `None` when a
    /// live token exists, including one another replica created a moment before.
    pub async fn ensure_first_admin_token(&self) -> Result<Option<IssuedToken>, StoreError> {
        let txn = self.begin_write().await?;
        if self.backend() == Backend::Postgres {
            txn.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [FIRST_TOKEN_LOCK.into()],
            ))
            .await?;
        }
        let live = admin_token::Entity::find()
            .filter(admin_token::Column::RevokedAt.is_null())
            .count(&txn)
            .await?;
        if live > 0 {
            self.commit(txn).await?;
            return Ok(None);
        }
        let token = IssuedToken::generate(TokenKind::Admin).map_err(token_error)?;
        insert(&txn, &token, Some("initial"), "system").await?;
        self.commit(txn).await?;
        Ok(Some(token))
    }

    /// Every admin token (hashes are not secrets, but callers show only ids and hints).
    pub async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        Ok(admin_token::Entity::find()
            .order_by_asc(admin_token::Column::CreatedAt)
            .order_by_asc(admin_token::Column::Id)
            .all(self.reader())
            .await?)
    }

    /// Revokes an admin token by id. Revoking twice is not an error.
    pub async fn revoke_admin_token(
        &self,
        id: &str,
        actor: &str,
    ) -> Result<AdminToken, StoreError> {
        let txn = self.begin_write().await?;
        let found = admin_token::Entity::find_by_id(id.to_owned())
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no admin token {id:?}")))?;
        if found.revoked_at.is_some() {
            return Ok(found);
        }
        let mut active: admin_token::ActiveModel = found.into();
        active.revoked_at = Set(Some(now_millis()));
        let updated = active.update(&txn).await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: None,
                action: "admin_token.revoke",
                subject_type: "admin_token",
                subject_id: Some(id),
                request_id: None,
                detail: json!({ "hint": updated.hint }),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(updated)
    }

    /// The live stored admin token a presented bearer value is, if any. Anything that does
    /// not have the shape of an admin token (a SCIM token, say) costs no query.
    pub async fn authenticate_admin(
        &self,
        presented: &str,
    ) -> Result<Option<AdminToken>, StoreError> {
        if !looks_like(TokenKind::Admin, presented) {
            return Ok(None);
        }
        let hash = TokenHash::of(presented);
        let Some(stored) = admin_token::Entity::find()
            .filter(admin_token::Column::TokenHash.eq(hash.to_hex()))
            .one(self.reader())
            .await?
        else {
            return Ok(None);
        };
        let matches = TokenHash::from_hex(&stored.token_hash).is_some_and(|h| h.matches(&hash));
        Ok((matches && stored.revoked_at.is_none()).then_some(stored))
    }
}
