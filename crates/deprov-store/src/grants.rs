//! Grants: tokens applications hold for a user and register with deprov, so that deprov
//! revokes them at the OpenID Provider (RFC 7009) when the user is de-provisioned.
//!
//! The store sees only the sealed token (encrypted by the caller under the KEK with an
//! AAD bound to the row id) and its SHA-256. See the migration
//! `m20261202_000100_op_targets` for the reasons behind each column.

use deprov_core::SubjectMapping;
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use serde::Serialize;

use crate::entity::{grant, user};
use crate::error::is_unique_violation;
use crate::{Store, StoreError, now_millis};

/// A grant to store; `token_sealed` was made for `id`.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub id: String,
    pub tenant_id: String,
    pub target_id: String,
    pub user_id: String,
    pub subject: String,
    pub token_sealed: String,
    pub token_hash: String,
    pub token_type_hint: Option<String>,
    pub expires_at: Option<i64>,
}

/// What may be shown about a grant: never the token, sealed or not.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GrantInfo {
    pub id: String,
    pub client_id: String,
    pub sub: String,
    pub user_id: String,
    pub token_type_hint: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub last_attempt_at: Option<i64>,
    pub last_error: Option<String>,
}

impl GrantInfo {
    pub fn of(model: &grant::Model, client_id: &str) -> Self {
        Self {
            id: model.id.clone(),
            client_id: client_id.to_owned(),
            sub: model.subject.clone(),
            user_id: model.user_id.clone(),
            token_type_hint: model.token_type_hint.clone(),
            expires_at: model.expires_at,
            created_at: model.created_at,
            last_attempt_at: model.last_attempt_at,
            last_error: model.last_error.clone(),
        }
    }
}

/// How many users a subject mapping without an indexed column may scan (e-mail, attribute
/// paths). Beyond it the lookup refuses rather than reading a whole large tenant per request.
const SUBJECT_SCAN_LIMIT: usize = 100_000;

impl Store {
    /// The tenant's users whose `mapping` resolves to `subject` (the client's view of the
    /// user). Indexed columns for `id`, `externalId` and `userName` (case-insensitive, as
    /// SCIM says); a scan of the tenant's users for other mappings.
    pub async fn users_by_subject(
        &self,
        tenant_id: &str,
        mapping: &SubjectMapping,
        subject: &str,
    ) -> Result<Vec<user::Model>, StoreError> {
        let base = user::Entity::find().filter(user::Column::TenantId.eq(tenant_id));
        let found = match mapping {
            SubjectMapping::Id => {
                base.filter(user::Column::Id.eq(subject))
                    .all(self.reader())
                    .await?
            }
            SubjectMapping::ExternalId => {
                base.filter(user::Column::ExternalId.eq(subject))
                    .all(self.reader())
                    .await?
            }
            SubjectMapping::ExternalIdOrId => {
                let by_external = base
                    .clone()
                    .filter(user::Column::ExternalId.eq(subject))
                    .all(self.reader())
                    .await?;
                if by_external.is_empty() {
                    base.filter(user::Column::Id.eq(subject))
                        .filter(user::Column::ExternalId.is_null())
                        .all(self.reader())
                        .await?
                } else {
                    by_external
                }
            }
            SubjectMapping::UserName => {
                base.filter(user::Column::UserNameFolded.eq(crate::scim::fold(subject)))
                    .all(self.reader())
                    .await?
            }
            SubjectMapping::PrimaryEmail | SubjectMapping::Path(_) => {
                let all = base
                    .order_by_asc(user::Column::Id)
                    .all(self.reader())
                    .await?;
                if all.len() > SUBJECT_SCAN_LIMIT {
                    return Err(StoreError::Conflict(format!(
                        "subject mapping {mapping} needs a scan of more than \
                         {SUBJECT_SCAN_LIMIT} users; use id, externalId or userName"
                    )));
                }
                all.into_iter()
                    .filter(|u| {
                        let mut resource = u.resource.clone();
                        if let Some(obj) = resource.as_object_mut() {
                            obj.insert("id".to_owned(), u.id.clone().into());
                        }
                        mapping.resolve(&resource).as_deref() == Some(subject)
                    })
                    .collect()
            }
        };
        Ok(found)
    }

    /// Stores a grant. Registering the same token again for the same client returns the
    /// existing grant (`false`) after extending its expiry if a later one was given.
    pub async fn insert_grant(&self, new: NewGrant) -> Result<(grant::Model, bool), StoreError> {
        let now = now_millis();
        let txn = self.begin_write().await?;
        let inserted = grant::ActiveModel {
            id: Set(new.id.clone()),
            tenant_id: Set(new.tenant_id.clone()),
            target_id: Set(new.target_id.clone()),
            user_id: Set(new.user_id.clone()),
            subject: Set(new.subject.clone()),
            token_sealed: Set(new.token_sealed.clone()),
            token_hash: Set(new.token_hash.clone()),
            token_type_hint: Set(new.token_type_hint.clone()),
            expires_at: Set(new.expires_at),
            created_at: Set(now),
            last_attempt_at: Set(None),
            last_error: Set(None),
        }
        .insert(&txn)
        .await;
        match inserted {
            Ok(model) => {
                self.commit(txn).await?;
                Ok((model, true))
            }
            Err(e) if is_unique_violation(&e) => {
                drop(txn);
                let existing = grant::Entity::find()
                    .filter(grant::Column::TargetId.eq(new.target_id.clone()))
                    .filter(grant::Column::TokenHash.eq(new.token_hash.clone()))
                    .one(self.reader())
                    .await?
                    .ok_or_else(|| {
                        StoreError::Conflict("the grant was withdrawn meanwhile".to_owned())
                    })?;
                if existing.user_id != new.user_id {
                    return Err(StoreError::Conflict(
                        "this token is already registered for another user".to_owned(),
                    ));
                }
                let later = match (existing.expires_at, new.expires_at) {
                    (Some(a), Some(b)) if b > a => Some(b),
                    (Some(_), None) => None,
                    (a, _) => a,
                };
                if later == existing.expires_at {
                    return Ok((existing, false));
                }
                let txn = self.begin_write().await?;
                let mut active = existing.into_active_model();
                active.expires_at = Set(later);
                let model = active.update(&txn).await?;
                self.commit(txn).await?;
                Ok((model, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The unexpired grants of one user at one client, oldest first.
    pub async fn user_grants(
        &self,
        target_id: &str,
        user_id: &str,
    ) -> Result<Vec<grant::Model>, StoreError> {
        let now = now_millis();
        Ok(grant::Entity::find()
            .filter(grant::Column::TargetId.eq(target_id))
            .filter(grant::Column::UserId.eq(user_id))
            .filter(
                grant::Column::ExpiresAt
                    .is_null()
                    .or(grant::Column::ExpiresAt.gt(now)),
            )
            .order_by_asc(grant::Column::CreatedAt)
            .order_by_asc(grant::Column::Id)
            .all(self.reader())
            .await?)
    }

    /// The grants of one client (metadata for operators and the client itself).
    pub async fn client_grants(
        &self,
        target_id: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<grant::Model>, StoreError> {
        let mut q = grant::Entity::find().filter(grant::Column::TargetId.eq(target_id));
        if let Some(u) = user_id {
            q = q.filter(grant::Column::UserId.eq(u));
        }
        Ok(q.order_by_asc(grant::Column::CreatedAt)
            .order_by_asc(grant::Column::Id)
            .all(self.reader())
            .await?)
    }

    /// One grant of a client, by id.
    pub async fn client_grant(
        &self,
        target_id: &str,
        grant_id: &str,
    ) -> Result<Option<grant::Model>, StoreError> {
        Ok(grant::Entity::find_by_id(grant_id)
            .filter(grant::Column::TargetId.eq(target_id))
            .one(self.reader())
            .await?)
    }

    /// Deletes a grant of a client (revoked, or withdrawn by the application); `false` when
    /// there was none.
    pub async fn delete_grant(&self, target_id: &str, grant_id: &str) -> Result<bool, StoreError> {
        let txn = self.begin_write().await?;
        let res = grant::Entity::delete_many()
            .filter(grant::Column::Id.eq(grant_id))
            .filter(grant::Column::TargetId.eq(target_id))
            .exec(&txn)
            .await?;
        self.commit(txn).await?;
        Ok(res.rows_affected > 0)
    }

    /// Deletes a grant of a client named by its token's hash; `false` when there was none.
    pub async fn delete_grant_by_hash(
        &self,
        target_id: &str,
        token_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let txn = self.begin_write().await?;
        let found = grant::Entity::find()
            .filter(grant::Column::TargetId.eq(target_id))
            .filter(grant::Column::TokenHash.eq(token_hash))
            .one(&txn)
            .await?;
        if let Some(g) = &found {
            grant::Entity::delete_by_id(g.id.clone()).exec(&txn).await?;
        }
        self.commit(txn).await?;
        Ok(found.map(|g| g.id))
    }

    /// Records why revoking a grant failed (kept until it is revoked, withdrawn or expires).
    pub async fn note_grant_attempt(
        &self,
        grant_id: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        grant::Entity::update_many()
            .col_expr(grant::Column::LastAttemptAt, Expr::value(now_millis()))
            .col_expr(
                grant::Column::LastError,
                Expr::value(error.map(str::to_owned)),
            )
            .filter(grant::Column::Id.eq(grant_id))
            .exec(&txn)
            .await?;
        self.commit(txn).await?;
        Ok(())
    }

    /// Deletes every grant whose `expires_at` has passed: a token the OP no longer honours
    /// needs no revocation, and a ciphertext kept for nothing is only a liability.
    pub async fn purge_expired_grants(&self) -> Result<u64, StoreError> {
        let txn = self.begin_write().await?;
        let res = grant::Entity::delete_many()
            .filter(grant::Column::ExpiresAt.lte(now_millis()))
            .exec(&txn)
            .await?;
        self.commit(txn).await?;
        Ok(res.rows_affected)
    }

    /// Records the use of a client assertion (`key`: the client and its `jti`) until
    /// `expires_at` (ms). `false` when it was used before and has not expired: a replay
    /// (RFC 7523 §3, item 7), refused by every replica sharing this database.
    pub async fn first_use_of_assertion(
        &self,
        key: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let hash = deprov_core::TokenHash::of(key).to_hex();
        let backend = self.backend();
        let mut sql = crate::scim::sql::Sql::new(backend);
        let (k, e, now) = (sql.bind(hash), sql.bind(expires_at), sql.bind(now_millis()));
        // A row of an expired assertion is taken over; a live one is a replay.
        sql.push(&format!(
            "INSERT INTO assertion_jtis (key_hash, expires_at) VALUES ({k}, {e}) \
             ON CONFLICT (key_hash) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE assertion_jtis.expires_at <= {now}"
        ));
        let txn = self.begin_write().await?;
        let inserted = txn.execute_raw(sql.build()).await?.rows_affected();
        self.commit(txn).await?;
        Ok(inserted == 1)
    }

    /// Deletes the records of expired client assertions.
    pub async fn purge_expired_assertions(&self) -> Result<u64, StoreError> {
        let backend = self.backend();
        let mut sql = crate::scim::sql::Sql::new(backend);
        let now = sql.bind(now_millis());
        sql.push(&format!(
            "DELETE FROM assertion_jtis WHERE expires_at <= {now}"
        ));
        let txn = self.begin_write().await?;
        let n = txn.execute_raw(sql.build()).await?.rows_affected();
        self.commit(txn).await?;
        Ok(n)
    }
}
