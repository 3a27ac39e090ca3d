//! What operators do beside the CLI's basics, for the admin API and the console: enable or
//! disable a relying party, cancel a waiting delivery, page through events and the audit
//! log, look at one delivery. Every change is written with its audit record in one
//! transaction.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;

use crate::audit::{self, AuditRecord};
use crate::entity::{audit_entry, delivery, event, target};
use crate::outbox::{CANCELLED, DEAD, DELIVERED, EventSummary, PENDING, RETRYING};
use crate::targets::{NewRelyingParty, RelyingParty, RelyingPartyConfig, write_enabled};
use crate::{Store, StoreError, now_millis};

pub use crate::entity::audit_entry::Model as AuditEntry;
pub use crate::entity::delivery::Model as Delivery;

impl Store {
    /// One relying party of a tenant, by id or client_id.
    pub async fn relying_party(
        &self,
        tenant_name: &str,
        id_or_client_id: &str,
    ) -> Result<RelyingParty, StoreError> {
        self.list_relying_parties(tenant_name)
            .await?
            .into_iter()
            .find(|rp| rp.id == id_or_client_id || rp.client_id == id_or_client_id)
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "tenant {tenant_name} has no relying party {id_or_client_id:?}"
                ))
            })
    }

    /// Enables or disables a relying party. A disabled one is sent nothing: no delivery is
    /// enqueued for it, and the worker cancels those already waiting when it claims them.
    /// Setting the state it already has writes nothing.
    pub async fn set_relying_party_enabled(
        &self,
        tenant_name: &str,
        id_or_client_id: &str,
        enabled: bool,
        actor: &str,
    ) -> Result<RelyingParty, StoreError> {
        let existing = self.relying_party(tenant_name, id_or_client_id).await?;
        if existing.enabled == enabled {
            return Ok(existing);
        }
        let tenant = self.tenant(tenant_name).await?;
        let txn = self.begin_write().await?;
        let now = write_enabled(
            &txn,
            actor,
            &tenant.id,
            "relying_party",
            &existing.id,
            &existing.client_id,
            enabled,
        )
        .await?;
        self.commit(txn).await?;
        Ok(RelyingParty {
            enabled,
            updated_at: now,
            ..existing
        })
    }

    /// Changes how a relying party is told: its logout URI, subject mapping, algorithm,
    /// `sid` requirement, issuer and key, from `settings` (validated by the caller, as for
    /// [`Store::add_relying_party`]). Its client_id, groups and enabled state are kept.
    /// Deliveries still waiting use the new settings at their next attempt.
    pub async fn update_relying_party(
        &self,
        tenant_name: &str,
        id_or_client_id: &str,
        settings: &NewRelyingParty,
        actor: &str,
    ) -> Result<RelyingParty, StoreError> {
        let existing = self.relying_party(tenant_name, id_or_client_id).await?;
        let config = RelyingPartyConfig {
            backchannel_logout_uri: settings.backchannel_logout_uri.to_string(),
            subject: settings.subject.to_string(),
            alg: settings.alg.to_string(),
            require_sid: settings.require_sid,
            issuer: settings.issuer.clone(),
            kid: settings.kid.clone(),
        };
        if config == existing.config {
            return Ok(existing);
        }
        let config_json =
            serde_json::to_value(&config).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
        let tenant = self.tenant(tenant_name).await?;
        let now = now_millis();
        let txn = self.begin_write().await?;
        target::Entity::update_many()
            .col_expr(target::Column::Config, Expr::value(config_json))
            .col_expr(target::Column::UpdatedAt, Expr::value(now))
            .filter(target::Column::Id.eq(existing.id.clone()))
            .exec(&txn)
            .await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: Some(&tenant.id),
                action: "target.update",
                subject_type: "relying_party",
                subject_id: Some(&existing.id),
                request_id: None,
                detail: json!({
                    "client_id": existing.client_id,
                    "was": existing.config,
                    "config": config,
                }),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(RelyingParty {
            config,
            updated_at: now,
            ..existing
        })
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(delivery::Entity::find_by_id(id.to_owned())
            .one(self.reader())
            .await?)
    }

    /// Cancels a delivery that is still waiting (`pending` or `retrying`): it is never sent
    /// again. An attempt already in flight may still reach its target; its outcome is
    /// recorded but cannot change the status back (the worker settles only waiting
    /// deliveries). Anything else is a [`StoreError::Conflict`].
    pub async fn cancel_delivery(&self, id: &str, actor: &str) -> Result<Delivery, StoreError> {
        let now = now_millis();
        let txn = self.begin_write().await?;
        let found = delivery::Entity::find_by_id(id.to_owned())
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no delivery {id:?}")))?;
        let changed = delivery::Entity::update_many()
            .col_expr(delivery::Column::Status, Expr::value(CANCELLED))
            .col_expr(delivery::Column::CompletedAt, Expr::value(now))
            .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
            .col_expr(
                delivery::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                delivery::Column::LeaseExpiresAt,
                Expr::value(Option::<i64>::None),
            )
            .filter(delivery::Column::Id.eq(id))
            .filter(delivery::Column::Status.is_in([PENDING, RETRYING]))
            .exec(&txn)
            .await?;
        if changed.rows_affected == 0 {
            return Err(StoreError::Conflict(format!(
                "delivery {id} is {}; only pending or retrying deliveries can be cancelled",
                found.status
            )));
        }
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: Some(&found.tenant_id),
                action: "delivery.cancel",
                subject_type: "delivery",
                subject_id: Some(id),
                request_id: None,
                detail: json!({ "event_id": found.event_id, "was": found.status }),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(Delivery {
            status: CANCELLED.to_owned(),
            completed_at: Some(now),
            updated_at: now,
            lease_owner: None,
            lease_expires_at: None,
            ..found
        })
    }

    /// A page of events, newest first (of one tenant, or all), with delivery counts, and
    /// how many there are in all.
    pub async fn events_page(
        &self,
        tenant_id: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> Result<(u64, Vec<EventSummary>), StoreError> {
        let mut query = event::Entity::find();
        if let Some(t) = tenant_id {
            query = query.filter(event::Column::TenantId.eq(t));
        }
        let total = query.clone().count(self.reader()).await?;
        let events = query
            .order_by_desc(event::Column::OccurredAt)
            .order_by_desc(event::Column::Id)
            .limit(limit)
            .offset(offset)
            .all(self.reader())
            .await?;
        // Rows are read by column name: SQLite's rows (sqlite.rs) have no column order.
        #[derive(sea_orm::FromQueryResult)]
        struct Count {
            event_id: String,
            status: String,
            n: i64,
        }
        let counts = delivery::Entity::find()
            .select_only()
            .column(delivery::Column::EventId)
            .column(delivery::Column::Status)
            .column_as(delivery::Column::Id.count(), "n")
            .filter(delivery::Column::EventId.is_in(events.iter().map(|e| e.id.clone())))
            .group_by(delivery::Column::EventId)
            .group_by(delivery::Column::Status)
            .into_model::<Count>()
            .all(self.reader())
            .await?;
        let items = events
            .into_iter()
            .map(|e| {
                let mut summary = EventSummary {
                    user_name: e
                        .user_snapshot
                        .get("userName")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                    id: e.id,
                    tenant_id: e.tenant_id,
                    kind: e.kind,
                    user_id: e.user_id,
                    group_display_name: e.group_display_name,
                    request_id: e.request_id,
                    occurred_at: e.occurred_at,
                    deliveries: 0,
                    delivered: 0,
                    dead: 0,
                };
                for Count {
                    event_id,
                    status,
                    n,
                } in &counts
                {
                    if *event_id == summary.id {
                        let n = u64::try_from(*n).unwrap_or(0);
                        summary.deliveries += n;
                        match status.as_str() {
                            DELIVERED => summary.delivered += n,
                            DEAD => summary.dead += n,
                            _ => {}
                        }
                    }
                }
                summary
            })
            .collect();
        Ok((total, items))
    }

    /// A page of the audit log, newest first (of one tenant, or all), and its total.
    pub async fn audit_page(
        &self,
        tenant_id: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> Result<(u64, Vec<AuditEntry>), StoreError> {
        let mut query = audit_entry::Entity::find();
        if let Some(t) = tenant_id {
            query = query.filter(audit_entry::Column::TenantId.eq(t));
        }
        let total = query.clone().count(self.reader()).await?;
        let rows = query
            .order_by_desc(audit_entry::Column::Id)
            .limit(limit)
            .offset(offset)
            .all(self.reader())
            .await?;
        Ok((total, rows))
    }
}
