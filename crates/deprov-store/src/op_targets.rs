//! Targets of any kind other than relying parties: OpenID Providers that revoke grants
//! (RFC 7009, `oauth_revocation`), Global Token Revocation endpoints
//! (`global_token_revocation`) and provider admin APIs (`keycloak`, `okta`, `entra`,
//! `auth0`). They share the `targets` table (kind, client_id, config JSON, enabled) and the
//! group bindings of `target_groups`, so the fan-out reaches them exactly as it reaches
//! relying parties (`deprov_core::fanout`).
//!
//! The store does not interpret `config`: each kind's validation lives with its channel.
//! Secrets inside it are sealed by the caller (`deprov_revocation::keys::sealed`), so the
//! store only ever sees ciphertext.

use crate::targets::{bind_groups, write_enabled};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::{self, AuditRecord};
use crate::entity::{target, target_group};
use crate::error::is_unique_violation;
use crate::targets::KIND_BACKCHANNEL_LOGOUT;
use crate::{Store, StoreError, now_millis};

/// `targets.kind` of a client registered at an OpenID Provider whose grants deprov revokes
/// with RFC 7009.
pub const KIND_OAUTH_REVOCATION: &str = "oauth_revocation";
/// `targets.kind` of a Global Token Revocation endpoint
/// (draft-parecki-oauth-global-token-revocation).
pub const KIND_GLOBAL_TOKEN_REVOCATION: &str = "global_token_revocation";
/// The provider admin API kinds (their channels live in
/// `deprov_revocation::channels::provider_admin`).
pub const PROVIDER_ADMIN_KINDS: [&str; 4] = ["keycloak", "okta", "entra", "auth0"];

/// Every kind `deprov op` manages.
pub fn op_kinds() -> Vec<&'static str> {
    let mut kinds = vec![KIND_OAUTH_REVOCATION, KIND_GLOBAL_TOKEN_REVOCATION];
    kinds.extend(PROVIDER_ADMIN_KINDS);
    kinds
}

/// A new target, its config already validated and its secrets sealed by the caller.
#[derive(Debug, Clone)]
pub struct NewTarget {
    pub kind: String,
    pub client_id: String,
    pub config: Value,
    pub groups: Vec<String>,
    pub enabled: bool,
}

/// A target as stored, with its group bindings. `config` holds sealed secrets only; views
/// for operators go through the channel's redaction before being shown.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub id: String,
    pub tenant: String,
    #[serde(skip)]
    pub tenant_id: String,
    pub kind: String,
    pub client_id: String,
    pub config: Value,
    pub groups: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// Adds a target of `new.kind`. `audit_detail` is what the audit log keeps of its
    /// configuration (the caller passes a redacted view).
    pub async fn add_target(
        &self,
        tenant_name: &str,
        new: NewTarget,
        audit_detail: Value,
        actor: &str,
    ) -> Result<Target, StoreError> {
        if new.kind == KIND_BACKCHANNEL_LOGOUT {
            return Err(StoreError::Conflict(
                "relying parties are added with `deprov rp add`".to_owned(),
            ));
        }
        let tenant = self.tenant(tenant_name).await?;
        let now = now_millis();
        let id = uuid::Uuid::now_v7().to_string();
        let txn = self.begin_write().await?;
        let model = target::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant.id.clone()),
            kind: Set(new.kind.clone()),
            client_id: Set(new.client_id.clone()),
            config: Set(new.config.clone()),
            enabled: Set(new.enabled),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!(
                    "tenant {tenant_name} already has a {} target with client_id {:?}",
                    new.kind, new.client_id
                ))
            } else {
                e.into()
            }
        })?;
        let groups = bind_groups(&txn, &id, &new.groups).await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: Some(&tenant.id),
                action: "target.add",
                subject_type: &new.kind,
                subject_id: Some(&id),
                request_id: None,
                detail: json!({ "client_id": new.client_id, "config": audit_detail, "groups": groups }),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(Target {
            id,
            tenant: tenant.name,
            tenant_id: tenant.id,
            kind: model.kind,
            client_id: model.client_id,
            config: model.config,
            groups,
            enabled: model.enabled,
            created_at: model.created_at,
            updated_at: model.updated_at,
        })
    }

    /// The tenant's targets of the given kinds, ordered by kind then client_id.
    pub async fn list_targets(
        &self,
        tenant_name: &str,
        kinds: &[&str],
    ) -> Result<Vec<Target>, StoreError> {
        let tenant = self.tenant(tenant_name).await?;
        let targets = target::Entity::find()
            .filter(target::Column::TenantId.eq(tenant.id.clone()))
            .filter(target::Column::Kind.is_in(kinds.iter().copied()))
            .order_by_asc(target::Column::Kind)
            .order_by_asc(target::Column::ClientId)
            .all(self.reader())
            .await?;
        let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
        let bindings = target_group::Entity::find()
            .filter(target_group::Column::TargetId.is_in(ids))
            .order_by_asc(target_group::Column::GroupRef)
            .all(self.reader())
            .await?;
        Ok(targets
            .into_iter()
            .map(|t| Target {
                groups: bindings
                    .iter()
                    .filter(|b| b.target_id == t.id)
                    .map(|b| b.group_ref.clone())
                    .collect(),
                id: t.id,
                tenant: tenant.name.clone(),
                tenant_id: tenant.id.clone(),
                kind: t.kind,
                client_id: t.client_id,
                config: t.config,
                enabled: t.enabled,
                created_at: t.created_at,
                updated_at: t.updated_at,
            })
            .collect())
    }

    /// One target of the given kinds, by id or client_id. A client_id shared by two kinds
    /// is ambiguous: the caller must use the id.
    pub async fn find_target(
        &self,
        tenant_name: &str,
        kinds: &[&str],
        id_or_client_id: &str,
    ) -> Result<Target, StoreError> {
        let mut found: Vec<Target> = self
            .list_targets(tenant_name, kinds)
            .await?
            .into_iter()
            .filter(|t| t.id == id_or_client_id || t.client_id == id_or_client_id)
            .collect();
        if let Some(i) = found.iter().position(|t| t.id == id_or_client_id) {
            return Ok(found.swap_remove(i));
        }
        match found.len() {
            0 => Err(StoreError::NotFound(format!(
                "tenant {tenant_name} has no target {id_or_client_id:?}"
            ))),
            1 => Ok(found.swap_remove(0)),
            _ => Err(StoreError::Conflict(format!(
                "client_id {id_or_client_id:?} names targets of several kinds in tenant \
                 {tenant_name}; use the target's id"
            ))),
        }
    }

    /// Enables or disables a target. A disabled one is sent nothing (no delivery is enqueued
    /// for it; those waiting are cancelled when claimed); its grants are kept. Setting the
    /// state it already has writes nothing.
    pub async fn set_target_enabled(
        &self,
        tenant_name: &str,
        kinds: &[&str],
        id_or_client_id: &str,
        enabled: bool,
        actor: &str,
    ) -> Result<Target, StoreError> {
        let existing = self
            .find_target(tenant_name, kinds, id_or_client_id)
            .await?;
        if existing.enabled == enabled {
            return Ok(existing);
        }
        let txn = self.begin_write().await?;
        let now = write_enabled(
            &txn,
            actor,
            &existing.tenant_id,
            &existing.kind,
            &existing.id,
            &existing.client_id,
            enabled,
        )
        .await?;
        self.commit(txn).await?;
        Ok(Target {
            enabled,
            updated_at: now,
            ..existing
        })
    }

    /// Removes a target; its grants go with it. Deliveries already enqueued for it keep
    /// their record (and are cancelled when claimed).
    pub async fn remove_target(
        &self,
        tenant_name: &str,
        kinds: &[&str],
        id_or_client_id: &str,
        actor: &str,
    ) -> Result<Target, StoreError> {
        let existing = self
            .find_target(tenant_name, kinds, id_or_client_id)
            .await?;
        let txn = self.begin_write().await?;
        crate::entity::grant::Entity::delete_many()
            .filter(crate::entity::grant::Column::TargetId.eq(existing.id.clone()))
            .exec(&txn)
            .await?;
        target_group::Entity::delete_many()
            .filter(target_group::Column::TargetId.eq(existing.id.clone()))
            .exec(&txn)
            .await?;
        target::Entity::delete_by_id(existing.id.clone())
            .exec(&txn)
            .await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: Some(&existing.tenant_id),
                action: "target.remove",
                subject_type: &existing.kind,
                subject_id: Some(&existing.id),
                request_id: None,
                detail: json!({ "client_id": existing.client_id }),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(existing)
    }
}
