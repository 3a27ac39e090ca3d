//! What the web console needs beyond the admin API's queries: its sessions (the
//! `console_sessions` table) and the overview's aggregates (events over time, the health
//! of each target).
//!
//! A session is a random `deprov_session_…` value in an HttpOnly cookie; only its SHA-256
//! is stored, so reading this table signs nobody in. A session lives until its absolute
//! expiry, or until it has been unused for the idle timeout, or until sign-out deletes it.
//! Sign-in and sign-out are audited with the operator's admin identity.

use deprov_core::{IssuedToken, TokenHash, TokenKind};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, Statement,
};
use serde_json::json;

use crate::audit::{self, AuditRecord};
use crate::entity::{admin_token, console_session};
use crate::{Store, StoreError, now_millis};

pub use crate::entity::console_session::Model as ConsoleSession;

/// `last_seen_at` is written at most this often per session (one write per click would
/// be wasted on a read-mostly console), and at least four times per idle timeout, so a
/// session in use never looks idle.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The `credential` of a session opened with the stored admin token `id`.
pub fn stored_admin_credential(id: &str) -> String {
    format!("{STORED_PREFIX}{id}")
}

const STORED_PREFIX: &str = "admin_token:";

/// Deliveries to one target and how they went, over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetHealth {
    pub target_id: String,
    /// Attempts started in the window.
    pub attempts: u64,
    /// Of those, attempts that did not deliver (any status but 200/204, or no answer).
    pub failures: u64,
    /// The last successful attempt in the longer window.
    pub last_success_at: Option<i64>,
    /// The last failed attempt in the longer window.
    pub last_failure_at: Option<i64>,
}

impl TargetHealth {
    /// Failed attempts per attempt in the window, when there were any.
    pub fn failure_rate(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        (self.attempts > 0).then(|| self.failures as f64 / self.attempts as f64)
    }
}

fn randomness(e: deprov_core::token::RandomnessUnavailable) -> StoreError {
    StoreError::Db(sea_orm::DbErr::Custom(e.to_string()))
}

impl Store {
    /// A new session id, to put in the cookie (its hash goes into the session).
    pub fn new_console_session_id() -> Result<IssuedToken, StoreError> {
        IssuedToken::generate(TokenKind::ConsoleSession).map_err(randomness)
    }

    /// Opens session `token` for `actor`, signed in with `credential`, ending
    /// `lifetime_ms` from now at the latest; audits the sign-in, and drops the sessions
    /// that have expired (of anyone) on the way.
    pub async fn open_console_session(
        &self,
        token: &IssuedToken,
        actor: &str,
        credential: &str,
        lifetime_ms: i64,
        idle_ms: i64,
    ) -> Result<ConsoleSession, StoreError> {
        let now = now_millis();
        let txn = self.begin_write().await?;
        purge_expired(&txn, now, idle_ms).await?;
        let session = console_session::ActiveModel {
            id_hash: Set(token.hash.to_hex()),
            actor: Set(actor.to_owned()),
            credential: Set(credential.to_owned()),
            created_at: Set(now),
            last_seen_at: Set(now),
            expires_at: Set(now.saturating_add(lifetime_ms)),
        }
        .insert(&txn)
        .await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id: None,
                action: "console.sign_in",
                subject_type: "console_session",
                subject_id: None,
                request_id: None,
                detail: json!({ "expires_at": session.expires_at }),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(session)
    }

    /// The live session a cookie value names, if any; notes that it was used. A session
    /// past its absolute expiry, idle for `idle_ms`, or opened with a stored admin token
    /// that has since been revoked, is deleted and is `None`. (Sessions of the configured
    /// token are checked by the caller, which knows the configuration.)
    pub async fn console_session(
        &self,
        presented: &str,
        idle_ms: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        if !deprov_core::token::looks_like(TokenKind::ConsoleSession, presented) {
            return Ok(None);
        }
        let hash = TokenHash::of(presented);
        let Some(found) = console_session::Entity::find_by_id(hash.to_hex())
            .one(self.reader())
            .await?
        else {
            return Ok(None);
        };
        let stored_matches = TokenHash::from_hex(&found.id_hash).is_some_and(|h| h.matches(&hash));
        if !stored_matches {
            return Ok(None);
        }
        let now = now_millis();
        let revoked = match found.credential.strip_prefix(STORED_PREFIX) {
            Some(id) => admin_token::Entity::find_by_id(id.to_owned())
                .one(self.reader())
                .await?
                .is_none_or(|t| t.revoked_at.is_some()),
            None => false,
        };
        if revoked || now >= found.expires_at || now.saturating_sub(found.last_seen_at) >= idle_ms {
            console_session::Entity::delete_by_id(found.id_hash.clone())
                .exec(self.writer())
                .await?;
            return Ok(None);
        }
        if now.saturating_sub(found.last_seen_at) >= TOUCH_EVERY_MS.min(idle_ms / 4) {
            console_session::Entity::update_many()
                .col_expr(console_session::Column::LastSeenAt, Expr::value(now))
                .filter(console_session::Column::IdHash.eq(found.id_hash.clone()))
                .exec(self.writer())
                .await?;
            return Ok(Some(ConsoleSession {
                last_seen_at: now,
                ..found
            }));
        }
        Ok(Some(found))
    }

    /// Deletes a session that is no longer valid (its credential changed), without an
    /// audit record: nobody signed out.
    pub async fn discard_console_session(&self, presented: &str) -> Result<(), StoreError> {
        console_session::Entity::delete_by_id(TokenHash::of(presented).to_hex())
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Ends a session (sign-out) and audits it. Ending one that is already gone changes
    /// nothing and writes nothing.
    pub async fn close_console_session(&self, presented: &str) -> Result<bool, StoreError> {
        let hash = TokenHash::of(presented).to_hex();
        let txn = self.begin_write().await?;
        let Some(found) = console_session::Entity::find_by_id(hash.clone())
            .one(&txn)
            .await?
        else {
            return Ok(false);
        };
        console_session::Entity::delete_by_id(hash)
            .exec(&txn)
            .await?;
        audit::record(
            &txn,
            AuditRecord {
                actor: &found.actor,
                tenant_id: None,
                action: "console.sign_out",
                subject_type: "console_session",
                subject_id: None,
                request_id: None,
                detail: json!({}),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(true)
    }

    /// How many events occurred in each of `buckets` consecutive windows of `bucket_ms`
    /// starting at `since` (oldest first); events after the last window are not counted.
    pub async fn event_histogram(
        &self,
        since: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let mut counts = vec![0u64; buckets];
        if bucket_ms <= 0 || buckets == 0 {
            return Ok(counts);
        }
        let backend = self.reader().get_database_backend();
        // The values are integers computed here, not input: inlined, so that one statement
        // serves both backends' placeholder syntaxes.
        let rows = self
            .reader()
            .query_all_raw(Statement::from_string(
                backend,
                format!(
                    "SELECT (occurred_at - {since}) / {bucket_ms} AS bucket, COUNT(*) AS n \
                     FROM events WHERE occurred_at >= {since} GROUP BY bucket"
                ),
            ))
            .await?;
        for row in rows {
            let bucket: i64 = row.try_get("", "bucket")?;
            let n: i64 = row.try_get("", "n")?;
            if let Some(slot) = usize::try_from(bucket).ok().and_then(|b| counts.get_mut(b)) {
                *slot = u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(counts)
    }

    /// Per target attempted since `seen_since`: its attempts and failures since
    /// `rate_since`, and its last success and last failure since `seen_since`. Both
    /// windows are bounded, so the overview reads recent attempts only (through
    /// `ix_attempts_time`), however long deprov has been running.
    pub async fn target_health(
        &self,
        rate_since: i64,
        seen_since: i64,
    ) -> Result<Vec<TargetHealth>, StoreError> {
        let backend = self.reader().get_database_backend();
        let rows = self
            .reader()
            .query_all_raw(Statement::from_string(
                backend,
                format!(
                    "SELECT d.target_id AS target_id, \
                     COUNT(CASE WHEN a.started_at >= {rate_since} THEN 1 END) AS attempts, \
                     COUNT(CASE WHEN a.started_at >= {rate_since} AND a.outcome <> 'delivered' \
                       THEN 1 END) AS failures, \
                     MAX(CASE WHEN a.outcome = 'delivered' THEN a.started_at END) AS last_success, \
                     MAX(CASE WHEN a.outcome <> 'delivered' THEN a.started_at END) AS last_failure \
                     FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
                     WHERE a.started_at >= {seen_since} \
                     GROUP BY d.target_id"
                ),
            ))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(TargetHealth {
                target_id: row.try_get("", "target_id")?,
                attempts: u64::try_from(row.try_get::<i64>("", "attempts")?).unwrap_or(0),
                failures: u64::try_from(row.try_get::<i64>("", "failures")?).unwrap_or(0),
                last_success_at: row.try_get("", "last_success")?,
                last_failure_at: row.try_get("", "last_failure")?,
            });
        }
        Ok(out)
    }
}

/// Deletes every session past its absolute expiry or idle for `idle_ms`.
async fn purge_expired(
    db: &impl ConnectionTrait,
    now: i64,
    idle_ms: i64,
) -> Result<(), StoreError> {
    console_session::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(console_session::Column::ExpiresAt.lte(now))
                .add(console_session::Column::LastSeenAt.lte(now.saturating_sub(idle_ms))),
        )
        .exec(db)
        .await?;
    Ok(())
}
