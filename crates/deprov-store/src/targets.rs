//! Targets: where de-provisioning is delivered. Today relying parties that receive
//! OpenID Connect back-channel logouts; the table is shared with later target kinds.

use deprov_core::{SigningAlgorithm, SubjectMapping};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, AuditRecord};
use crate::entity::{target, target_group};
use crate::error::is_unique_violation;
use crate::{Store, StoreError, WriteTxn, now_millis};

/// `targets.kind` of a relying party that receives back-channel logouts.
pub const KIND_BACKCHANNEL_LOGOUT: &str = "backchannel_logout";

/// The settings of a relying party, stored as `targets.config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelyingPartyConfig {
    pub backchannel_logout_uri: String,
    /// Textual [`SubjectMapping`].
    pub subject: String,
    /// JOSE `alg` of its logout tokens.
    pub alg: String,
    /// The RP requires `sid` in logout tokens (`backchannel_logout_session_required`).
    #[serde(default)]
    pub require_sid: bool,
    /// `iss` to put in its logout tokens instead of deprov's public URL, when deprov signs
    /// for the OP the application logs in with.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The signing key to use (an imported key published in that OP's JWKS); the default
    /// key of `alg` when absent.
    #[serde(default)]
    pub kid: Option<String>,
}

/// What the operator asks for with `deprov rp add`; validated by the caller.
#[derive(Debug, Clone)]
pub struct NewRelyingParty {
    pub client_id: String,
    pub backchannel_logout_uri: url::Url,
    pub subject: SubjectMapping,
    pub alg: SigningAlgorithm,
    pub require_sid: bool,
    pub issuer: Option<String>,
    pub kid: Option<String>,
    /// Group display names or ids; removal from one of them also logs the user out.
    pub groups: Vec<String>,
    pub enabled: bool,
}

/// A relying party as stored, with its group bindings.
#[derive(Debug, Clone, Serialize)]
pub struct RelyingParty {
    pub id: String,
    pub tenant: String,
    pub client_id: String,
    #[serde(flatten)]
    pub config: RelyingPartyConfig,
    pub groups: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    pub async fn add_relying_party(
        &self,
        tenant_name: &str,
        rp: NewRelyingParty,
        actor: &str,
    ) -> Result<RelyingParty, StoreError> {
        let tenant = self.tenant(tenant_name).await?;
        let config = RelyingPartyConfig {
            backchannel_logout_uri: rp.backchannel_logout_uri.to_string(),
            subject: rp.subject.to_string(),
            alg: rp.alg.to_string(),
            require_sid: rp.require_sid,
            issuer: rp.issuer.clone(),
            kid: rp.kid.clone(),
        };
        let config_json =
            serde_json::to_value(&config).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
        let now = now_millis();
        let id = uuid::Uuid::now_v7().to_string();
        let txn = self.begin_write().await?;
        let model = target::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant.id.clone()),
            kind: Set(KIND_BACKCHANNEL_LOGOUT.to_owned()),
            client_id: Set(rp.client_id.clone()),
            config: Set(config_json),
            enabled: Set(rp.enabled),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!(
                    "tenant {tenant_name} already has a relying party with client_id {:?}",
                    rp.client_id
                ))
            } else {
                e.into()
            }
        })?;
        let groups = bind_groups(&txn, &id, &rp.groups).await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: Some(&tenant.id),
                action: "target.add",
                subject_type: "relying_party",
                subject_id: Some(&id),
                request_id: None,
                detail: json!({ "client_id": rp.client_id, "config": config, "groups": groups }),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(RelyingParty {
            id,
            tenant: tenant.name,
            client_id: model.client_id,
            config,
            groups,
            enabled: model.enabled,
            created_at: model.created_at,
            updated_at: model.updated_at,
        })
    }

    pub async fn list_relying_parties(
        &self,
        tenant_name: &str,
    ) -> Result<Vec<RelyingParty>, StoreError> {
        let tenant = self.tenant(tenant_name).await?;
        let targets = target::Entity::find()
            .filter(target::Column::TenantId.eq(tenant.id.clone()))
            .filter(target::Column::Kind.eq(KIND_BACKCHANNEL_LOGOUT))
            .order_by_asc(target::Column::ClientId)
            .all(self.reader())
            .await?;
        let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
        let bindings = target_group::Entity::find()
            .filter(target_group::Column::TargetId.is_in(ids))
            .order_by_asc(target_group::Column::GroupRef)
            .all(self.reader())
            .await?;
        targets
            .into_iter()
            .map(|t| {
                let config: RelyingPartyConfig =
                    serde_json::from_value(t.config.clone()).map_err(|e| {
                        StoreError::Db(sea_orm::DbErr::Custom(format!(
                            "relying party {} has an unreadable config: {e}",
                            t.id
                        )))
                    })?;
                Ok(RelyingParty {
                    groups: bindings
                        .iter()
                        .filter(|b| b.target_id == t.id)
                        .map(|b| b.group_ref.clone())
                        .collect(),
                    id: t.id,
                    tenant: tenant.name.clone(),
                    client_id: t.client_id,
                    config,
                    enabled: t.enabled,
                    created_at: t.created_at,
                    updated_at: t.updated_at,
                })
            })
            .collect()
    }

    /// Removes a relying party, by id or client_id. Deliveries already enqueued for it keep
    /// their record.
    pub async fn remove_relying_party(
        &self,
        tenant_name: &str,
        id_or_client_id: &str,
        actor: &str,
    ) -> Result<RelyingParty, StoreError> {
        let existing = self
            .list_relying_parties(tenant_name)
            .await?
            .into_iter()
            .find(|rp| rp.id == id_or_client_id || rp.client_id == id_or_client_id)
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "tenant {tenant_name} has no relying party {id_or_client_id:?}"
                ))
            })?;
        let tenant = self.tenant(tenant_name).await?;
        let txn = self.begin_write().await?;
        target::Entity::delete_by_id(existing.id.clone())
            .exec(&txn)
            .await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: Some(&tenant.id),
                action: "target.remove",
                subject_type: "relying_party",
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

/// Binds a new target to `groups` (display names or ids), each once whatever its case.
/// Returns the groups bound, as given.
pub(crate) async fn bind_groups(
    txn: &WriteTxn,
    target_id: &str,
    groups: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut bound: Vec<String> = Vec::new();
    for g in groups {
        let folded = g.to_lowercase();
        if bound.iter().any(|x| x.to_lowercase() == folded) {
            continue;
        }
        target_group::ActiveModel {
            target_id: Set(target_id.to_owned()),
            group_ref: Set(g.clone()),
            group_ref_folded: Set(folded),
        }
        .insert(txn)
        .await?;
        bound.push(g.clone());
    }
    Ok(bound)
}

/// Enables or disables a target and audits it, in `txn`. Returns the time written.
pub(crate) async fn write_enabled(
    txn: &WriteTxn,
    actor: &str,
    tenant_id: &str,
    subject_type: &str,
    target_id: &str,
    client_id: &str,
    enabled: bool,
) -> Result<i64, StoreError> {
    let now = now_millis();
    target::Entity::update_many()
        .col_expr(target::Column::Enabled, Expr::value(enabled))
        .col_expr(target::Column::UpdatedAt, Expr::value(now))
        .filter(target::Column::Id.eq(target_id))
        .exec(txn)
        .await?;
    audit::record(
        txn,
        AuditRecord {
            actor,
            tenant_id: Some(tenant_id),
            action: if enabled {
                "target.enable"
            } else {
                "target.disable"
            },
            subject_type,
            subject_id: Some(target_id),
            request_id: None,
            detail: json!({ "client_id": client_id }),
        },
    )
    .await?;
    Ok(now)
}
