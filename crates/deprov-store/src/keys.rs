//! Signing keys: the `signing_keys` table.
//!
//! The store holds no cryptography. It keeps what the revocation crate hands it: the key id
//! (an RFC 7638 thumbprint), the public half as a JWK for the JWKS, and the private half
//! already encrypted under the key-encryption key. Every write happens in one transaction
//! with its audit record.
//!
//! Lifecycle: a key is `active` (it may sign, it is published) until it is `retired`
//! (`retired_at` set); a retired key stays published until every token it signed has
//! expired ([`Store::signing_keys_to_publish`]). At most one *generated* key per algorithm is
//! active at a time (migration `m20261129_000002`): that is the key deprov signs with by
//! default. *Imported* keys are chosen by `kid`, per relying party.

use std::fmt;

use deprov_core::SigningAlgorithm;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::{self, AuditRecord};
use crate::entity::signing_key;
use crate::error::is_unique_violation;
use crate::{Store, StoreError, now_millis};

pub use crate::entity::signing_key::Model as StoredSigningKey;

/// `signing_keys.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// May sign; published in the JWKS.
    Active,
    /// Signs nothing more; published until the tokens it signed have expired.
    Retired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `signing_keys.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// Made by deprov (first start, rotation).
    Generated,
    /// Brought by the operator (`deprov keys import`), typically also published by the
    /// application's own OP.
    Imported,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generated => "generated",
            Self::Imported => "imported",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "generated" => Some(Self::Generated),
            "imported" => Some(Self::Imported),
            _ => None,
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key to store. The private key is already encrypted; the store never sees it in clear.
#[derive(Clone)]
pub struct NewSigningKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    pub source: KeySource,
    pub public_jwk: Value,
    pub private_key_ciphertext: Vec<u8>,
}

impl fmt::Debug for NewSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("source", &self.source)
            .field("private_key_ciphertext", &"[encrypted]")
            .finish_non_exhaustive()
    }
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct RotatedSigningKey {
    pub new: StoredSigningKey,
    /// The key (normally one) that was the active generated key of the algorithm.
    pub retired: Vec<StoredSigningKey>,
}

fn key_detail(kid: &str, alg: &str, source: &str) -> Value {
    json!({ "kid": kid, "alg": alg, "source": source })
}

async fn insert(
    db: &impl ConnectionTrait,
    key: &NewSigningKey,
    now: i64,
) -> Result<StoredSigningKey, StoreError> {
    signing_key::ActiveModel {
        kid: Set(key.kid.clone()),
        alg: Set(key.alg.as_str().to_owned()),
        status: Set(KeyStatus::Active.as_str().to_owned()),
        source: Set(key.source.as_str().to_owned()),
        public_jwk: Set(key.public_jwk.clone()),
        private_key_ciphertext: Set(key.private_key_ciphertext.clone()),
        created_at: Set(now),
        retired_at: Set(None),
    }
    .insert(db)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(format!(
                "signing key {} not stored: a key with this kid exists, or another {} key \
                 became the active generated key first",
                key.kid, key.alg
            ))
        } else {
            e.into()
        }
    })
}

fn active_generated(alg: SigningAlgorithm) -> Condition {
    Condition::all()
        .add(signing_key::Column::Alg.eq(alg.as_str()))
        .add(signing_key::Column::Status.eq(KeyStatus::Active.as_str()))
        .add(signing_key::Column::Source.eq(KeySource::Generated.as_str()))
}

impl Store {
    /// Stores a new active key. With [`KeySource::Generated`], fails with
    /// [`StoreError::Conflict`] when the algorithm already has an active generated key
    /// (another process won the first-start race: read [`Store::active_signing_key`]).
    pub async fn insert_signing_key(
        &self,
        key: NewSigningKey,
        actor: &str,
    ) -> Result<StoredSigningKey, StoreError> {
        let now = now_millis();
        let txn = self.begin_write().await?;
        let stored = insert(&txn, &key, now).await?;
        let action = match key.source {
            KeySource::Generated => "signing_key.create",
            KeySource::Imported => "signing_key.import",
        };
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: None,
                action,
                subject_type: "signing_key",
                subject_id: Some(&stored.kid),
                request_id: None,
                detail: key_detail(&stored.kid, &stored.alg, &stored.source),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(stored)
    }

    /// Retires the active generated key of `new.alg` (if any) and stores `new` as the active
    /// one, in one transaction. A concurrent rotation of the same algorithm makes one of the
    /// two fail with [`StoreError::Conflict`].
    pub async fn rotate_signing_key(
        &self,
        new: NewSigningKey,
        actor: &str,
    ) -> Result<RotatedSigningKey, StoreError> {
        if new.source != KeySource::Generated {
            return Err(StoreError::Conflict(
                "only generated keys rotate; retire an imported key and import its successor"
                    .to_owned(),
            ));
        }
        let now = now_millis();
        let txn = self.begin_write().await?;
        let current = signing_key::Entity::find()
            .filter(active_generated(new.alg))
            .all(&txn)
            .await?;
        let mut retired = Vec::with_capacity(current.len());
        for old in current {
            // Conditional on the status still being active, so that of two concurrent
            // rotations the second retires nothing and then collides on the unique index.
            let result = signing_key::Entity::update_many()
                .col_expr(
                    signing_key::Column::Status,
                    Expr::value(KeyStatus::Retired.as_str()),
                )
                .col_expr(signing_key::Column::RetiredAt, Expr::value(now))
                .filter(signing_key::Column::Kid.eq(old.kid.clone()))
                .filter(signing_key::Column::Status.eq(KeyStatus::Active.as_str()))
                .exec(&txn)
                .await?;
            if result.rows_affected == 1 {
                retired.push(StoredSigningKey {
                    status: KeyStatus::Retired.as_str().to_owned(),
                    retired_at: Some(now),
                    ..old
                });
            }
        }
        let stored = insert(&txn, &new, now).await?;
        let retired_kids: Vec<&str> = retired.iter().map(|k| k.kid.as_str()).collect();
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: None,
                action: "signing_key.rotate",
                subject_type: "signing_key",
                subject_id: Some(&stored.kid),
                request_id: None,
                detail: json!({
                    "kid": stored.kid,
                    "alg": stored.alg,
                    "retired": retired_kids,
                }),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(RotatedSigningKey {
            new: stored,
            retired,
        })
    }

    /// Retires one key: it signs nothing more and leaves the JWKS once its publication
    /// window has passed. Retiring a retired key changes nothing.
    pub async fn retire_signing_key(
        &self,
        kid: &str,
        actor: &str,
    ) -> Result<StoredSigningKey, StoreError> {
        let txn = self.begin_write().await?;
        let found = signing_key::Entity::find_by_id(kid.to_owned())
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no signing key {kid:?}")))?;
        if found.status == KeyStatus::Retired.as_str() {
            return Ok(found);
        }
        let mut active: signing_key::ActiveModel = found.into();
        active.status = Set(KeyStatus::Retired.as_str().to_owned());
        active.retired_at = Set(Some(now_millis()));
        let updated = active.update(&txn).await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: None,
                action: "signing_key.retire",
                subject_type: "signing_key",
                subject_id: Some(kid),
                request_id: None,
                detail: key_detail(&updated.kid, &updated.alg, &updated.source),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(updated)
    }

    /// Records that an operator exported a private key (to install it at an OP).
    pub async fn record_signing_key_export(
        &self,
        kid: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        let found = signing_key::Entity::find_by_id(kid.to_owned())
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no signing key {kid:?}")))?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: None,
                action: "signing_key.export",
                subject_type: "signing_key",
                subject_id: Some(kid),
                request_id: None,
                detail: key_detail(&found.kid, &found.alg, &found.source),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(())
    }

    pub async fn signing_key(&self, kid: &str) -> Result<Option<StoredSigningKey>, StoreError> {
        Ok(signing_key::Entity::find_by_id(kid.to_owned())
            .one(self.reader())
            .await?)
    }

    /// Every key, oldest first.
    pub async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        Ok(signing_key::Entity::find()
            .order_by_asc(signing_key::Column::CreatedAt)
            .order_by_asc(signing_key::Column::Kid)
            .all(self.reader())
            .await?)
    }

    /// Every active key, generated or imported, oldest first.
    pub async fn active_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        Ok(signing_key::Entity::find()
            .filter(signing_key::Column::Status.eq(KeyStatus::Active.as_str()))
            .order_by_asc(signing_key::Column::CreatedAt)
            .order_by_asc(signing_key::Column::Kid)
            .all(self.reader())
            .await?)
    }

    /// The active generated key of an algorithm: the one deprov signs with by default.
    pub async fn active_signing_key(
        &self,
        alg: SigningAlgorithm,
    ) -> Result<Option<StoredSigningKey>, StoreError> {
        Ok(signing_key::Entity::find()
            .filter(active_generated(alg))
            .order_by_asc(signing_key::Column::CreatedAt)
            .order_by_asc(signing_key::Column::Kid)
            .one(self.reader())
            .await?)
    }

    /// The keys the JWKS publishes: every active key, and every key retired less than
    /// `retired_window_ms` ago — long enough that every token a retired key signed has
    /// expired (maximum token lifetime plus a clock-skew margin) before its public key goes.
    /// Newest first.
    pub async fn signing_keys_to_publish(
        &self,
        retired_window_ms: i64,
    ) -> Result<Vec<StoredSigningKey>, StoreError> {
        let since = now_millis().saturating_sub(retired_window_ms.max(0));
        Ok(signing_key::Entity::find()
            .filter(
                Condition::any()
                    .add(signing_key::Column::Status.eq(KeyStatus::Active.as_str()))
                    .add(
                        Condition::all()
                            .add(signing_key::Column::Status.eq(KeyStatus::Retired.as_str()))
                            .add(signing_key::Column::RetiredAt.gte(since)),
                    ),
            )
            .order_by_desc(signing_key::Column::CreatedAt)
            .order_by_asc(signing_key::Column::Kid)
            .all(self.reader())
            .await?)
    }
}
