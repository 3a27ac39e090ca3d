//! The audit log: who changed what, when. Written in the same transaction as the change.

use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::Value;

use crate::entity::audit_entry;
use crate::{StoreError, now_millis};

/// One audit record to write.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    /// Who: `cli`, `admin:<token hint>`, `scim:<tenant>`, `system`.
    pub actor: &'a str,
    pub tenant_id: Option<&'a str>,
    /// What, as `noun.verb`: `tenant.create`, `scim_token.revoke`, `target.add`…
    pub action: &'a str,
    pub subject_type: &'a str,
    pub subject_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// Details; never secrets.
    pub detail: Value,
}

pub async fn record(db: &impl ConnectionTrait, rec: AuditRecord<'_>) -> Result<(), StoreError> {
    audit_entry::ActiveModel {
        occurred_at: Set(now_millis()),
        actor: Set(rec.actor.to_owned()),
        tenant_id: Set(rec.tenant_id.map(str::to_owned)),
        action: Set(rec.action.to_owned()),
        subject_type: Set(rec.subject_type.to_owned()),
        subject_id: Set(rec.subject_id.map(str::to_owned)),
        request_id: Set(rec.request_id.map(str::to_owned)),
        detail: Set(rec.detail),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}
