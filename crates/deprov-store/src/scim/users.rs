//! SCIM users (RFC 7644 §3.3, §3.4.1, §3.5.1, §3.6) and the events their changes cause.

use deprov_core::scim::{
    CompareOp, EventKind, Filter, FilterValue, ListQuery, ResourceKind, activity_transition,
};
use sea_orm::{ConnectionTrait, FromQueryResult};
use tracing::instrument;

use super::events::{NewEvent, change_with_event, record_event, snapshot};
use super::list::list_rows;
use super::read_batch::Key;
use super::sql::Sql;
use super::user_batch::{Creation, Deletion, Replacement, UserBatches};
use super::{CreateOutcome, RequestContext, UserRecord, UserWrite, fold};
use crate::WriteTxn;
use crate::entity::user;
use crate::error::is_unique_violation;
use crate::{Backend, Store, StoreError, now_millis};

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("no user {id:?}"))
}

fn taken(user_name: &str) -> StoreError {
    StoreError::Conflict(format!("userName {user_name:?} is already taken"))
}

/// Refuses a conditional write whose expected version is not the current one.
pub(crate) fn check_version(expected: Option<i64>, current: i64) -> Result<(), StoreError> {
    match expected {
        Some(v) if v != current => Err(StoreError::VersionMismatch { current }),
        _ => Ok(()),
    }
}

/// Reads one user of the tenant in `txn`, locking it until the transaction ends
/// (PostgreSQL; SQLite transactions are serialised by the single writer).
async fn lock_user(
    txn: &WriteTxn,
    backend: Backend,
    tenant_id: &str,
    id: &str,
) -> Result<Option<user::Model>, StoreError> {
    let mut sql = Sql::new(backend);
    let (i, t) = (sql.bind(id.to_owned()), sql.bind(tenant_id.to_owned()));
    let lock = sql.for_update();
    let cols = user::select_list();
    sql.push(&format!(
        "SELECT {cols} FROM users WHERE id = {i} AND tenant_id = {t}{lock}"
    ));
    Ok(user::Model::find_by_statement(sql.build()).one(txn).await?)
}

/// The user a POST may reuse: the one with the same userName (case-insensitively), else
/// one with the same externalId; among several of the latter, the one whose activity the
/// POST changes (an inactive one to restore, or an active one to deactivate).
async fn lock_match(
    txn: &WriteTxn,
    backend: Backend,
    tenant_id: &str,
    write: &UserWrite,
) -> Result<Option<user::Model>, StoreError> {
    let mut sql = Sql::new(backend);
    let (t, n) = (
        sql.bind(tenant_id.to_owned()),
        sql.bind(fold(&write.user_name)),
    );
    let lock = sql.for_update();
    let cols = user::select_list();
    sql.push(&format!(
        "SELECT {cols} FROM users WHERE tenant_id = {t} AND user_name_folded = {n}{lock}"
    ));
    if let Some(found) = user::Model::find_by_statement(sql.build()).one(txn).await? {
        return Ok(Some(found));
    }
    let Some(external_id) = &write.external_id else {
        return Ok(None);
    };
    let mut sql = Sql::new(backend);
    let (t, e) = (
        sql.bind(tenant_id.to_owned()),
        sql.bind(external_id.clone()),
    );
    let order = if write.active { "ASC" } else { "DESC" };
    let lock = sql.for_update();
    let cols = user::select_list();
    sql.push(&format!(
        "SELECT {cols} FROM users WHERE tenant_id = {t} AND external_id = {e} \
         ORDER BY active {order}, created_at DESC, id LIMIT 1{lock}"
    ));
    Ok(user::Model::find_by_statement(sql.build()).one(txn).await?)
}

/// Inserts a new user.
async fn insert_user(
    txn: &WriteTxn,
    backend: Backend,
    tenant_id: &str,
    write: &UserWrite,
) -> Result<user::Model, StoreError> {
    let model = new_user(tenant_id, write);
    match insert(txn, backend, &model, false).await? {
        true => Ok(model),
        false => Err(StoreError::Db(sea_orm::DbErr::RecordNotInserted)),
    }
}

/// The row of a new user of the tenant: a new id, version 1, created now.
fn new_user(tenant_id: &str, write: &UserWrite) -> user::Model {
    let now = now_millis();
    user::Model {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant_id.to_owned(),
        user_name_folded: fold(&write.user_name),
        user_name: write.user_name.clone(),
        external_id: write.external_id.clone(),
        display_name: write.display_name.clone(),
        active: write.active,
        resource: write.resource.clone(),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// Inserts `model`; with `unless_matched`, only if no user of the tenant has its userName
/// (case-insensitively) or its externalId, the users a POST may reuse ([`lock_match`]).
/// Whether it was inserted.
async fn insert(
    txn: &WriteTxn,
    backend: Backend,
    model: &user::Model,
    unless_matched: bool,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(backend);
    let values = [
        sql.bind(model.id.clone()),
        sql.bind(model.tenant_id.clone()),
        sql.bind(model.user_name.clone()),
        sql.bind(model.user_name_folded.clone()),
        sql.bind(model.external_id.clone()),
        sql.bind(model.display_name.clone()),
        sql.bind(model.active),
        sql.bind(model.resource.clone()),
        sql.bind(model.version),
        sql.bind(model.created_at),
        sql.bind(model.updated_at),
    ];
    sql.push(&format!(
        "INSERT INTO users (id, tenant_id, user_name, user_name_folded, external_id, \
         display_name, active, resource, version, created_at, updated_at) SELECT {}",
        values.join(", ")
    ));
    if unless_matched {
        let (t, n, e) = (&values[1], &values[3], &values[4]);
        sql.push(&format!(
            " WHERE NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = {t} \
             AND user_name_folded = {n})"
        ));
        if model.external_id.is_some() {
            sql.push(&format!(
                " AND NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = {t} \
                 AND external_id = {e})"
            ));
        }
    }
    let done = txn
        .execute_raw(sql.build())
        .await
        .map_err(name_taken(&model.user_name))?;
    Ok(done.rows_affected() == 1)
}

/// The user `old` becomes with `write`: its version bumped, its update time moved on.
fn updated(old: &user::Model, write: UserWrite) -> user::Model {
    user::Model {
        id: old.id.clone(),
        tenant_id: old.tenant_id.clone(),
        user_name_folded: fold(&write.user_name),
        user_name: write.user_name,
        external_id: write.external_id,
        display_name: write.display_name,
        active: write.active,
        resource: write.resource,
        version: old.version + 1,
        created_at: old.created_at,
        updated_at: now_millis().max(old.updated_at),
    }
}

/// `UPDATE users …` from `old` to `new`, if the row is still at `old.version`.
fn update_statement(sql: &mut Sql, old: &user::Model, new: &user::Model) -> String {
    // Only the columns that change: SQLite rewrites the entries of every index on a column
    // the SET names, even to the same value (a deactivation would dirty four index pages).
    let mut set = Vec::with_capacity(8);
    if new.user_name != old.user_name {
        set.push(format!("user_name = {}", sql.bind(new.user_name.clone())));
        set.push(format!(
            "user_name_folded = {}",
            sql.bind(new.user_name_folded.clone())
        ));
    }
    if new.external_id != old.external_id {
        set.push(format!(
            "external_id = {}",
            sql.bind(new.external_id.clone())
        ));
    }
    if new.display_name != old.display_name {
        set.push(format!(
            "display_name = {}",
            sql.bind(new.display_name.clone())
        ));
    }
    if new.active != old.active {
        set.push(format!("active = {}", sql.bind(new.active)));
    }
    set.push(format!("resource = {}", sql.bind(new.resource.clone())));
    set.push(format!("version = {}", sql.bind(new.version)));
    set.push(format!("updated_at = {}", sql.bind(new.updated_at)));
    let (i, t, v) = (
        sql.bind(old.id.clone()),
        sql.bind(old.tenant_id.clone()),
        sql.bind(old.version),
    );
    format!(
        "UPDATE users SET {} WHERE id = {i} AND tenant_id = {t} AND version = {v}",
        set.join(", ")
    )
}

/// A unique violation of a write that set `user_name` is that name being taken.
fn name_taken(user_name: &str) -> impl FnOnce(sea_orm::DbErr) -> StoreError + '_ {
    move |e| {
        if is_unique_violation(&e) {
            taken(user_name)
        } else {
            e.into()
        }
    }
}

/// Replaces the attributes of `old` and bumps its version, if the row is still at
/// `old.version` (locked in `txn`, or as read before it); [`StoreError::VersionMismatch`]
/// otherwise, also when the row is gone.
async fn update_user(
    txn: &WriteTxn,
    backend: Backend,
    old: &user::Model,
    write: UserWrite,
) -> Result<user::Model, StoreError> {
    let new = updated(old, write);
    let mut sql = Sql::new(backend);
    let update = update_statement(&mut sql, old, &new);
    sql.push(&update);
    let done = txn
        .execute_raw(sql.build())
        .await
        .map_err(name_taken(&new.user_name))?;
    if done.rows_affected() != 1 {
        return Err(StoreError::VersionMismatch {
            current: old.version,
        });
    }
    Ok(new)
}

/// Records `Deactivated` or `Reactivated` when `active` changed; nothing otherwise.
async fn record_activity(
    txn: &WriteTxn,
    backend: Backend,
    ctx: &RequestContext,
    was_active: bool,
    now: &user::Model,
) -> Result<usize, StoreError> {
    let mut deliveries = 0;
    if let Some(kind) = activity_transition(was_active, now.active) {
        deliveries = record_event(
            txn,
            backend,
            ctx,
            NewEvent {
                kind,
                user_id: now.id.clone(),
                user_snapshot: snapshot(now),
                group: None,
            },
        )
        .await?
        .deliveries;
    }
    Ok(deliveries)
}

/// The row a caller read (`seen`), as the update of [`Store::replace_seen_user`] expects
/// to find it. Its resource is not needed: the update replaces it.
fn seen_row(ctx: &RequestContext, seen: &UserRecord) -> user::Model {
    user::Model {
        id: seen.id.clone(),
        tenant_id: ctx.tenant_id.clone(),
        user_name: seen.user_name.clone(),
        user_name_folded: fold(&seen.user_name),
        external_id: seen.external_id.clone(),
        display_name: seen.display_name.clone(),
        active: seen.active,
        resource: serde_json::Value::Null,
        version: seen.version,
        created_at: seen.created_at,
        updated_at: seen.updated_at,
    }
}

/// The replacement of `old` by `write` for a batch, and the row it writes.
fn replacement(
    ctx: &RequestContext,
    old: user::Model,
    write: UserWrite,
) -> (Replacement, user::Model) {
    let kind = activity_transition(old.active, write.active);
    let new = updated(&old, write);
    let replacement = Replacement {
        ctx: ctx.clone(),
        old,
        new: new.clone(),
        kind,
    };
    (replacement, new)
}

/// The userName a list asks for when it is exactly `userName eq "…"` (case-insensitively,
/// as RFC 7643 defines userName), from the first result, unsorted: what identity providers
/// send before every create. At most one user matches (userName is unique per tenant,
/// case-insensitively), so the answer is that user or none, with its count.
fn user_name_lookup(query: &ListQuery) -> Option<&str> {
    let Some(Filter::Compare {
        attr,
        op: CompareOp::Eq,
        value: FilterValue::String(name),
    }) = &query.filter
    else {
        return None;
    };
    let plain = attr.path == ["userName"] && !attr.case_exact && attr.multi_valued_at.is_none();
    let first_page = query.start_index <= 1 && query.count >= 1 && query.sort_by.is_none();
    (plain && first_page).then_some(name.as_str())
}

/// PostgreSQL: writes `r` in `txn`, a single-statement write: the update and, with an
/// event kind, the event and its deliveries ([`change_with_event`]). Returns the
/// deliveries written, or `None` when the user changed (or went) since it was read.
pub(crate) async fn replace_alone(
    txn: &WriteTxn,
    r: &Replacement,
) -> Result<Option<usize>, StoreError> {
    let mut sql = Sql::new(Backend::Postgres);
    let update = update_statement(&mut sql, &r.old, &r.new);
    match r.kind {
        Some(kind) => change_with_event(txn, sql, &update, None, &r.ctx, kind)
            .await
            .map_err(name_taken(&r.new.user_name)),
        None => {
            sql.push(&update);
            let done = txn
                .execute_raw(sql.build())
                .await
                .map_err(name_taken(&r.new.user_name))?;
            Ok((done.rows_affected() == 1).then_some(0))
        }
    }
}

/// PostgreSQL: writes `c` in `txn` unless a user matches it ([`insert`]): `Some(0)` when
/// inserted, `None` when not.
pub(crate) async fn create_alone(
    txn: &WriteTxn,
    c: &Creation,
) -> Result<Option<usize>, StoreError> {
    Ok(insert(txn, Backend::Postgres, &c.new, true)
        .await?
        .then_some(0))
}

/// PostgreSQL: writes `d` in `txn`, one statement ([`change_with_event`]): the deletion, its
/// `Deleted` event and deliveries, and the memberships' removal. Returns the deliveries
/// written, or `None` when no user was deleted (gone, or at another version).
pub(crate) async fn delete_alone(
    txn: &WriteTxn,
    d: &Deletion,
) -> Result<Option<usize>, StoreError> {
    let mut sql = Sql::new(Backend::Postgres);
    let (i, t) = (sql.bind(d.id.clone()), sql.bind(d.ctx.tenant_id.clone()));
    let mut change = format!("DELETE FROM users WHERE id = {i} AND tenant_id = {t}");
    if let Some(v) = d.version {
        change.push_str(&format!(" AND version = {}", sql.bind(v)));
    }
    let memberships = format!(
        "memberships AS (DELETE FROM group_members WHERE tenant_id = {t} \
         AND member_id IN (SELECT id FROM changed))"
    );
    let kind = EventKind::Deleted;
    Ok(change_with_event(txn, sql, &change, Some(&memberships), &d.ctx, kind).await?)
}

impl Store {
    /// Creates a user (RFC 7644 §3.3), or reuses the user the POST identifies.
    ///
    /// userName is unique per tenant, case-insensitively. A POST whose userName (or, when no
    /// userName matches, externalId) matches an existing user:
    /// - inactive: re-provisioning (Okta re-POSTs after re-assignment). The user keeps its
    ///   id and group memberships, takes the posted attributes, and records `Reactivated`
    ///   when the POST is active. Answer [`CreateOutcome::Restored`].
    /// - active, and the POST says `active: false`: a de-provisioning; the user takes the
    ///   posted attributes and `Deactivated` is recorded. Also `Restored`.
    /// - active, POST active, same userName: [`StoreError::Conflict`].
    /// - active, POST active, only the externalId matches: a new user (externalId is not a
    ///   uniqueness key in RFC 7643 §3.1).
    #[instrument(skip_all, fields(tenant = %ctx.tenant_id, request_id = %ctx.request_id))]
    pub async fn create_user(
        &self,
        ctx: &RequestContext,
        write: UserWrite,
    ) -> Result<(UserRecord, CreateOutcome), StoreError> {
        let backend = self.backend();
        // Most POSTs are of someone new: one statement inserts the user unless another
        // matches (on PostgreSQL, without BEGIN and COMMIT). Only then are the matches read.
        let model = new_user(&ctx.tenant_id, &write);
        let inserted = match self.user_batches() {
            Some(batches) => {
                let creation = Creation { new: model.clone() };
                batches.create.write(creation).await?.is_some()
            }
            None => self.insert_unmatched(&model).await?,
        };
        if inserted {
            return Ok((model.into(), CreateOutcome::Created));
        }
        let txn = self.begin_write().await?;
        let found = lock_match(&txn, backend, &ctx.tenant_id, &write).await?;
        let mut deliveries = 0;
        let (model, outcome) = match found {
            Some(old) if !old.active || !write.active => {
                let new = update_user(&txn, backend, &old, write).await?;
                deliveries = record_activity(&txn, backend, ctx, old.active, &new).await?;
                (new, CreateOutcome::Restored)
            }
            Some(old) if old.user_name_folded == fold(&write.user_name) => {
                return Err(taken(&write.user_name));
            }
            // Only an active user with the same externalId, or the match is gone again.
            _ => (
                insert_user(&txn, backend, &ctx.tenant_id, &write).await?,
                CreateOutcome::Created,
            ),
        };
        self.commit(txn).await?;
        self.wake_outbox_if(deliveries);
        Ok((model.into(), outcome))
    }

    /// One user of the tenant.
    pub async fn get_user(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.read_user(tenant_id, Key::Id, id).await
    }

    /// The user of `tenant_id` whose `key` is `value`: on PostgreSQL in a read batch, on
    /// SQLite by one prepared statement in place.
    async fn read_user(
        &self,
        tenant_id: &str,
        key: Key,
        value: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        if let Some(reads) = self.user_reads() {
            return reads.read(tenant_id, key, value).await;
        }
        let mut sql = Sql::new(self.backend());
        let (k, t) = (sql.bind(value.to_owned()), sql.bind(tenant_id.to_owned()));
        debug_assert_eq!((k.as_str(), t.as_str()), ("$1", "$2"));
        sql.push(key.one());
        let rows = self.reader().rows::<UserRecord>(sql.build()).await?;
        Ok(rows.into_iter().next())
    }

    /// [`Store::get_user`] of the users `ids` and the `userName eq` lookups of `names` (each
    /// with its tenant), all at once: on PostgreSQL as one batch (scim/read_batch.rs),
    /// whatever else is queued; on SQLite one after the other. The users found, in the order
    /// asked, ids first. For tests of what a batch does.
    #[cfg(any(test, feature = "testing"))]
    pub async fn read_users_together(
        &self,
        ids: Vec<(String, String)>,
        names: Vec<(String, String)>,
    ) -> Vec<Result<Option<UserRecord>, StoreError>> {
        if let Some(reads) = self.user_reads() {
            let ids = ids.into_iter().map(|(t, id)| (t, Key::Id, id));
            let names = names
                .into_iter()
                .map(|(t, name)| (t, Key::FoldedName, fold(&name)));
            return reads.read_together(ids.chain(names).collect()).await;
        }
        let mut read = Vec::with_capacity(ids.len() + names.len());
        for (tenant_id, id) in ids {
            read.push(self.get_user(&tenant_id, &id).await);
        }
        for (tenant_id, name) in names {
            let query = ListQuery {
                filter: Some(Filter::Compare {
                    attr: deprov_core::scim::AttrRef {
                        path: vec!["userName".to_owned()],
                        kind: deprov_core::scim::AttrType::String,
                        case_exact: false,
                        multi_valued_at: None,
                    },
                    op: CompareOp::Eq,
                    value: FilterValue::String(name),
                }),
                sort_by: None,
                sort_order: deprov_core::scim::SortOrder::Ascending,
                start_index: 1,
                count: 10,
            };
            let found = self.list_users(&tenant_id, &query).await;
            read.push(found.map(|(_, users)| users.into_iter().next()));
        }
        read
    }

    /// Replaces a user's attributes (PUT, RFC 7644 §3.5.1; also the result of a PATCH).
    ///
    /// With `expected_version` (an `If-Match`), a user at another version is refused with
    /// [`StoreError::VersionMismatch`]. A change of `active` records `Deactivated` or
    /// `Reactivated` in the same transaction; deactivating an inactive user records nothing.
    #[instrument(skip_all, fields(tenant = %ctx.tenant_id, request_id = %ctx.request_id, user = %id))]
    pub async fn replace_user(
        &self,
        ctx: &RequestContext,
        id: &str,
        expected_version: Option<i64>,
        write: UserWrite,
    ) -> Result<UserRecord, StoreError> {
        let backend = self.backend();
        let txn = self.begin_write().await?;
        let old = lock_user(&txn, backend, &ctx.tenant_id, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        check_version(expected_version, old.version)?;
        let new = update_user(&txn, backend, &old, write).await?;
        let deliveries = record_activity(&txn, backend, ctx, old.active, &new).await?;
        self.commit(txn).await?;
        self.wake_outbox_if(deliveries);
        Ok(new.into())
    }

    /// Replaces the attributes of a user as the caller read it (`seen`, from
    /// [`Store::get_user`]): a read-modify-write in one statement fewer than
    /// [`Store::replace_user`], which locks the row first. Refused with
    /// [`StoreError::VersionMismatch`] when the user changed (or went) since it was read;
    /// the caller reads again. The `active` transition is judged from `seen`, which is the
    /// row the update replaced, so no deactivation goes unrecorded. On PostgreSQL the write
    /// goes with the replacements of other users waiting at the same moment, in one
    /// statement (scim/user_batch.rs).
    #[instrument(skip_all, fields(tenant = %ctx.tenant_id, request_id = %ctx.request_id, user = %seen.id))]
    pub async fn replace_seen_user(
        &self,
        ctx: &RequestContext,
        seen: &UserRecord,
        write: UserWrite,
    ) -> Result<UserRecord, StoreError> {
        let backend = self.backend();
        let old = seen_row(ctx, seen);
        if let Some(batches) = self.user_batches() {
            let (replacement, new) = replacement(ctx, old, write);
            let written = batches.replace.write(replacement).await;
            return self.replaced(written, seen.version, new);
        }
        let transition = activity_transition(old.active, write.active);
        // Without a change of `active` there is no event to write: the update is the
        // whole write (what most attribute syncs from an identity provider are).
        let txn = match transition {
            None => self.begin_single_write().await?,
            Some(_) => self.begin_write().await?,
        };
        let new = update_user(&txn, backend, &old, write).await?;
        let deliveries = record_activity(&txn, backend, ctx, old.active, &new).await?;
        self.commit(txn).await?;
        self.wake_outbox_if(deliveries);
        Ok(new.into())
    }

    /// [`Store::replace_seen_user`] of several users at once. On PostgreSQL they are
    /// written as one batch (scim/user_batch.rs), whatever else is queued; on SQLite one
    /// after the other. For tests of what a batch does.
    #[cfg(any(test, feature = "testing"))]
    pub async fn replace_seen_users_together(
        &self,
        writes: Vec<(RequestContext, UserRecord, UserWrite)>,
    ) -> Vec<Result<UserRecord, StoreError>> {
        let mut done = Vec::with_capacity(writes.len());
        let Some(batches) = self.user_batches() else {
            for (ctx, seen, write) in writes {
                done.push(self.replace_seen_user(&ctx, &seen, write).await);
            }
            return done;
        };
        let (replacements, news): (Vec<_>, Vec<_>) = writes
            .iter()
            .map(|(ctx, seen, write)| replacement(ctx, seen_row(ctx, seen), write.clone()))
            .unzip();
        let written = batches.replace.write_together(replacements).await;
        for ((written, new), (_, seen, _)) in written.into_iter().zip(news).zip(&writes) {
            done.push(self.replaced(written, seen.version, new));
        }
        done
    }

    /// Inserts each of `writes` as a new user unless it matches a user (its userName or
    /// externalId): on PostgreSQL as one batch (scim/user_batch.rs), on SQLite one after
    /// the other. Whether each was inserted. For tests of what a batch does.
    #[cfg(any(test, feature = "testing"))]
    pub async fn insert_users_together(
        &self,
        writes: Vec<(RequestContext, UserWrite)>,
    ) -> Vec<Result<bool, StoreError>> {
        let creations: Vec<Creation> = writes
            .iter()
            .map(|(ctx, write)| Creation {
                new: new_user(&ctx.tenant_id, write),
            })
            .collect();
        let Some(batches) = self.user_batches() else {
            let mut done = Vec::with_capacity(creations.len());
            for c in creations {
                done.push(self.insert_unmatched(&c.new).await);
            }
            return done;
        };
        let written = batches.create.write_together(creations).await;
        written
            .into_iter()
            .map(|w| w.map(|w| w.is_some()))
            .collect()
    }

    /// Deletes each of `deletions` (a user's id, at a version if given): on PostgreSQL as
    /// one batch (scim/user_batch.rs), on SQLite one after the other. Whether each was
    /// deleted. For tests of what a batch does.
    #[cfg(any(test, feature = "testing"))]
    pub async fn delete_users_together(
        &self,
        deletions: Vec<(RequestContext, String, Option<i64>)>,
    ) -> Vec<Result<bool, StoreError>> {
        let Some(batches) = self.user_batches() else {
            let mut done = Vec::with_capacity(deletions.len());
            for (ctx, id, version) in deletions {
                done.push(match self.delete_user(&ctx, &id, version).await {
                    Ok(()) => Ok(true),
                    Err(StoreError::NotFound(_) | StoreError::VersionMismatch { .. }) => Ok(false),
                    Err(e) => Err(e),
                });
            }
            return done;
        };
        let deletions = deletions
            .into_iter()
            .map(|(ctx, id, version)| Deletion { ctx, id, version })
            .collect();
        let written = batches.delete.write_together(deletions).await;
        written
            .into_iter()
            .map(|w| w.map(|w| w.is_some()))
            .collect()
    }

    /// [`insert`] of `model` unless a user matches it, as a write of its own (SQLite).
    async fn insert_unmatched(&self, model: &user::Model) -> Result<bool, StoreError> {
        let txn = self.begin_single_write().await?;
        let inserted = insert(&txn, self.backend(), model, true).await?;
        self.commit(txn).await?;
        Ok(inserted)
    }

    /// The answer to a batched replacement: the user it wrote, its deliveries' worker woken.
    fn replaced(
        &self,
        written: super::user_batch::Written,
        seen_version: i64,
        new: user::Model,
    ) -> Result<UserRecord, StoreError> {
        let deliveries = written?.ok_or(StoreError::VersionMismatch {
            current: seen_version,
        })?;
        self.wake_outbox_if(deliveries);
        Ok(new.into())
    }

    /// Deletes a user and its memberships (RFC 7644 §3.6) and records `Deleted`, also for an
    /// inactive user: the deletion still ends whatever access is left. Leaving groups by
    /// deletion records no `RemovedFromGroup`; `Deleted` already revokes everything.
    #[instrument(skip_all, fields(tenant = %ctx.tenant_id, request_id = %ctx.request_id, user = %id))]
    pub async fn delete_user(
        &self,
        ctx: &RequestContext,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let backend = self.backend();
        if let Some(batches) = self.user_batches() {
            return self
                .delete_user_at_once(batches, ctx, id, expected_version)
                .await;
        }
        let txn = self.begin_write().await?;
        let old = lock_user(&txn, backend, &ctx.tenant_id, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        check_version(expected_version, old.version)?;
        // First the event and its deliveries: group-bound targets are found through the
        // memberships deleted below.
        let deliveries = record_event(
            &txn,
            backend,
            ctx,
            NewEvent {
                kind: EventKind::Deleted,
                user_id: old.id.clone(),
                user_snapshot: snapshot(&old),
                group: None,
            },
        )
        .await?
        .deliveries;
        let mut sql = Sql::new(backend);
        let (i, t) = (sql.bind(old.id.clone()), sql.bind(old.tenant_id.clone()));
        sql.push(&format!(
            "DELETE FROM users WHERE id = {i} AND tenant_id = {t}"
        ));
        txn.execute_raw(sql.build()).await?;
        let mut sql = Sql::new(backend);
        let (i, t) = (sql.bind(old.id.clone()), sql.bind(old.tenant_id.clone()));
        sql.push(&format!(
            "DELETE FROM group_members WHERE tenant_id = {t} AND member_id = {i}"
        ));
        txn.execute_raw(sql.build()).await?;
        self.commit(txn).await?;
        self.wake_outbox_if(deliveries);
        Ok(())
    }

    /// [`Store::delete_user`] on PostgreSQL: the deletion, its event and deliveries, and the
    /// memberships' removal in one statement, with other deletions waiting at the same
    /// moment (scim/user_batch.rs).
    async fn delete_user_at_once(
        &self,
        batches: &UserBatches,
        ctx: &RequestContext,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let deletion = Deletion {
            ctx: ctx.clone(),
            id: id.to_owned(),
            version: expected_version,
        };
        let deleted = batches.delete.write(deletion).await?;
        match deleted {
            Some(deliveries) => {
                self.wake_outbox_if(deliveries);
                Ok(())
            }
            // Gone, or (with `expected_version`) at another version.
            None => match self.get_user(&ctx.tenant_id, id).await? {
                Some(user) => Err(StoreError::VersionMismatch {
                    current: user.version,
                }),
                None => Err(not_found(id)),
            },
        }
    }

    /// Users of the tenant matching `query` (RFC 7644 §3.4.2): the total number of matches
    /// and the requested page. The filter and the sort run in the database.
    pub async fn list_users(
        &self,
        tenant_id: &str,
        query: &ListQuery,
    ) -> Result<(u64, Vec<UserRecord>), StoreError> {
        if let Some(name) = user_name_lookup(query) {
            let found = self
                .read_user(tenant_id, Key::FoldedName, &fold(name))
                .await?;
            let rows: Vec<UserRecord> = found.into_iter().collect();
            return Ok((rows.len() as u64, rows));
        }
        list_rows::<UserRecord>(self, "users", ResourceKind::User, tenant_id, query).await
    }
}
