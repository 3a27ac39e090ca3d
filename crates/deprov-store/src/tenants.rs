//! Tenants and their SCIM bearer tokens.

use deprov_core::token::looks_like;
use deprov_core::{IssuedToken, TenantName, TokenHash, TokenKind};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;

use crate::audit::{self, AuditRecord};
use crate::entity::{scim_token, tenant};
use crate::error::is_unique_violation;
use crate::{Store, StoreError, now_millis};

pub use crate::entity::scim_token::Model as ScimToken;
pub use crate::entity::tenant::Model as Tenant;

/// A tenant just created, with its first SCIM token in clear (shown once, never stored).
#[derive(Debug)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub token: IssuedToken,
    pub token_id: String,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn token_error(e: deprov_core::token::RandomnessUnavailable) -> StoreError {
    StoreError::Db(sea_orm::DbErr::Custom(e.to_string()))
}

impl Store {
    /// Creates a tenant and its first SCIM token in one transaction.
    pub async fn create_tenant(
        &self,
        name: &TenantName,
        actor: &str,
    ) -> Result<CreatedTenant, StoreError> {
        let token = IssuedToken::generate(TokenKind::Scim).map_err(token_error)?;
        let now = now_millis();
        let txn = self.begin_write().await?;
        let tenant = tenant::ActiveModel {
            id: Set(new_id()),
            name: Set(name.to_string()),
            created_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("tenant {name} already exists"))
            } else {
                e.into()
            }
        })?;
        let token_id = insert_token(&txn, &tenant.id, &token, Some("initial")).await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: Some(&tenant.id),
                action: "tenant.create",
                subject_type: "tenant",
                subject_id: Some(&tenant.id),
                request_id: None,
                detail: json!({ "name": tenant.name, "token_id": token_id, "token_hint": token.hint }),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(CreatedTenant {
            tenant,
            token,
            token_id,
        })
    }

    /// Creates tenant `default` when the database holds no tenant at all (first start).
    /// Returns `None` when a tenant exists, including when another process created one first.
    pub async fn ensure_first_tenant(&self) -> Result<Option<CreatedTenant>, StoreError> {
        if tenant::Entity::find().count(self.writer()).await? > 0 {
            return Ok(None);
        }
        let name = TenantName::parse("default")
            .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        match self.create_tenant(&name, "system").await {
            Ok(created) => Ok(Some(created)),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        Ok(tenant::Entity::find()
            .order_by_asc(tenant::Column::Name)
            .all(self.reader())
            .await?)
    }

    pub async fn find_tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        Ok(tenant::Entity::find()
            .filter(tenant::Column::Name.eq(name))
            .one(self.reader())
            .await?)
    }

    pub async fn tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        self.find_tenant(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no tenant named {name:?}")))
    }

    /// Issues an additional SCIM token for a tenant (for rotation: issue, reconfigure the
    /// IdP, then revoke the old one).
    pub async fn issue_scim_token(
        &self,
        tenant_name: &str,
        label: Option<&str>,
        actor: &str,
    ) -> Result<(ScimToken, IssuedToken), StoreError> {
        let tenant = self.tenant(tenant_name).await?;
        let token = IssuedToken::generate(TokenKind::Scim).map_err(token_error)?;
        let txn = self.begin_write().await?;
        let id = insert_token(&txn, &tenant.id, &token, label).await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: Some(&tenant.id),
                action: "scim_token.issue",
                subject_type: "scim_token",
                subject_id: Some(&id),
                request_id: None,
                detail: json!({ "hint": token.hint, "label": label }),
            },
        )
        .await?;
        let model = scim_token::Entity::find_by_id(id.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("token {id} vanished")))?;
        self.commit(txn).await?;
        Ok((model, token))
    }

    pub async fn list_scim_tokens(&self, tenant_name: &str) -> Result<Vec<ScimToken>, StoreError> {
        let tenant = self.tenant(tenant_name).await?;
        Ok(scim_token::Entity::find()
            .filter(scim_token::Column::TenantId.eq(tenant.id))
            .order_by_asc(scim_token::Column::CreatedAt)
            .all(self.reader())
            .await?)
    }

    /// Revokes one token of a tenant by its id. Revoking twice is not an error.
    pub async fn revoke_scim_token(
        &self,
        tenant_name: &str,
        token_id: &str,
        actor: &str,
    ) -> Result<ScimToken, StoreError> {
        let tenant = self.tenant(tenant_name).await?;
        let txn = self.begin_write().await?;
        let found = scim_token::Entity::find_by_id(token_id.to_owned())
            .filter(scim_token::Column::TenantId.eq(tenant.id.clone()))
            .one(&txn)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("tenant {tenant_name} has no token {token_id:?}"))
            })?;
        if found.revoked_at.is_some() {
            return Ok(found);
        }
        let mut active: scim_token::ActiveModel = found.into();
        active.revoked_at = Set(Some(now_millis()));
        let updated = active.update(&txn).await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: Some(&tenant.id),
                action: "scim_token.revoke",
                subject_type: "scim_token",
                subject_id: Some(token_id),
                request_id: None,
                detail: json!({ "hint": updated.hint }),
            },
        )
        .await?;
        self.commit(txn).await?;
        // After the commit: a request authenticating meanwhile may have remembered the
        // token as it was.
        self.auth_cache.clear();
        Ok(updated)
    }

    /// The tenant a presented SCIM token belongs to, if it is a live token of the tenant
    /// named in the URL. A token of another tenant is treated exactly like a wrong token.
    pub async fn authenticate_scim(
        &self,
        tenant_name: &str,
        presented: &str,
    ) -> Result<Option<Tenant>, StoreError> {
        if !looks_like(TokenKind::Scim, presented) {
            return Ok(None);
        }
        let hash = TokenHash::of(presented);
        if let Some(tenant) = self.auth_cache.get(hash.as_bytes()) {
            return Ok((tenant.name == tenant_name).then_some(tenant));
        }
        let Some(stored) = scim_token::Entity::find()
            .filter(scim_token::Column::TokenHash.eq(hash.to_hex()))
            .one(self.reader())
            .await?
        else {
            return Ok(None);
        };
        let stored_hash = TokenHash::from_hex(&stored.token_hash);
        if stored.revoked_at.is_some() || !stored_hash.is_some_and(|h| h.matches(&hash)) {
            return Ok(None);
        }
        let Some(tenant) = tenant::Entity::find_by_id(stored.tenant_id)
            .one(self.reader())
            .await?
        else {
            return Ok(None);
        };
        self.auth_cache.put(*hash.as_bytes(), tenant.clone());
        Ok((tenant.name == tenant_name).then_some(tenant))
    }
}

async fn insert_token(
    db: &impl sea_orm::ConnectionTrait,
    tenant_id: &str,
    token: &IssuedToken,
    label: Option<&str>,
) -> Result<String, StoreError> {
    let id = new_id();
    scim_token::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant_id.to_owned()),
        token_hash: Set(token.hash.to_hex()),
        hint: Set(token.hint.clone()),
        label: Set(label.map(str::to_owned)),
        created_at: Set(now_millis()),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(id)
}
