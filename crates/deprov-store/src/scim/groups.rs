//! SCIM groups and their membership (RFC 7643 §4.2, RFC 7644 §3.5.2), and the
//! `RemovedFromGroup` events that leaving a bound group causes.
//!
//! Membership is applied as set operations, one statement per kind of change for up to
//! [`CHUNK`] members: an `INSERT … SELECT … ON CONFLICT DO NOTHING` for additions and a
//! `DELETE … RETURNING` for removals, the ids passed as one JSON array; never a statement
//! per member. Reading a group without its members never touches `group_members`.

use std::collections::{HashMap, HashSet};

use deprov_core::scim::{
    EventKind, ListQuery, MemberKind, MemberRef, MembershipChange, ResourceKind,
};
use sea_orm::{ConnectionTrait, FromQueryResult};
use tracing::instrument;

use super::events::{NewEvent, record_events, snapshot};
use super::list::list_rows;
use super::sql::{CHUNK, Sql};
use super::users::check_version;
use super::{GroupRecord, GroupWrite, RequestContext, fold};
use crate::WriteTxn;
use crate::decode::Decode as _;
use crate::entity::{group, user};
use crate::{Backend, Store, StoreError, now_millis};

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("no group {id:?}"))
}

fn kind_of(member_type: &str) -> MemberKind {
    if member_type == MemberKind::Group.as_str() {
        MemberKind::Group
    } else {
        MemberKind::User
    }
}

/// The members in request order, each id once (the first mention wins).
fn dedup(members: impl IntoIterator<Item = MemberRef>) -> Vec<MemberRef> {
    let mut seen = HashSet::new();
    members
        .into_iter()
        .filter(|m| seen.insert(m.value.clone()))
        .collect()
}

async fn lock_group(
    txn: &WriteTxn,
    backend: Backend,
    tenant_id: &str,
    id: &str,
) -> Result<Option<group::Model>, StoreError> {
    let mut sql = Sql::new(backend);
    let (i, t) = (sql.bind(id.to_owned()), sql.bind(tenant_id.to_owned()));
    let lock = sql.for_update();
    sql.push(&format!(
        "SELECT * FROM groups WHERE id = {i} AND tenant_id = {t}{lock}"
    ));
    Ok(group::Model::find_by_statement(sql.build())
        .one(txn)
        .await?)
}

/// Refuses members that are not users (or groups, by their kind) of the tenant, and a group
/// as its own member, with [`StoreError::InvalidMembers`] listing them. On PostgreSQL the
/// members found stay locked against deletion until the transaction ends.
async fn validate_members(
    txn: &WriteTxn,
    backend: Backend,
    tenant_id: &str,
    group_id: Option<&str>,
    members: &[MemberRef],
) -> Result<(), StoreError> {
    let mut found: HashSet<String> = HashSet::new();
    for (kind, table) in [(MemberKind::User, "users"), (MemberKind::Group, "groups")] {
        let ids: Vec<&str> = members
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.value.as_str())
            .collect();
        for chunk in ids.chunks(CHUNK) {
            let mut sql = Sql::new(backend);
            let t = sql.bind(tenant_id.to_owned());
            let set = sql.bind_set(chunk.iter().copied());
            let lock = sql.for_share();
            sql.push(&format!(
                "SELECT id FROM {table} WHERE tenant_id = {t} AND id IN ({set}){lock}"
            ));
            for row in txn.query_all_raw(sql.build()).await? {
                found.insert(row.try_get::<String>("", "id")?);
            }
        }
    }
    let invalid: Vec<String> = members
        .iter()
        .filter(|m| !found.contains(&m.value) || Some(m.value.as_str()) == group_id)
        .map(|m| m.value.clone())
        .collect();
    if invalid.is_empty() {
        Ok(())
    } else {
        Err(StoreError::InvalidMembers(invalid))
    }
}

/// Adds members; members already there are left as they are.
async fn insert_members(
    txn: &WriteTxn,
    backend: Backend,
    tenant_id: &str,
    group_id: &str,
    members: &[MemberRef],
) -> Result<(), StoreError> {
    let now = now_millis();
    for chunk in members.chunks(CHUNK) {
        let mut sql = Sql::new(backend);
        let g = sql.bind(group_id.to_owned());
        let t = sql.bind(tenant_id.to_owned());
        let at = sql.bind(now);
        let rows = chunk
            .iter()
            .map(|m| serde_json::json!({ "id": m.value, "kind": m.kind.as_str() }))
            .collect();
        let (from, cols) = sql.bind_rows(rows, &[("id", "text"), ("kind", "text")]);
        let (id, kind) = (&cols[0], &cols[1]);
        // `WHERE TRUE` keeps SQLite from reading ON CONFLICT as part of a join.
        sql.push(&format!(
            "INSERT INTO group_members (group_id, member_id, tenant_id, member_type, created_at) \
             SELECT {g}, {id}, {t}, {kind}, {at} {from} WHERE TRUE \
             ON CONFLICT (group_id, member_id) DO NOTHING"
        ));
        txn.execute_raw(sql.build()).await?;
    }
    Ok(())
}

/// Removes members by id and returns the ids of the users among those that were members
/// (a removed id that was no member is no-op, RFC 7644 §3.5.2.2).
async fn delete_members(
    txn: &WriteTxn,
    backend: Backend,
    group_id: &str,
    ids: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut left = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let mut sql = Sql::new(backend);
        let g = sql.bind(group_id.to_owned());
        let set = sql.bind_set(chunk.iter().cloned());
        sql.push(&format!(
            "DELETE FROM group_members WHERE group_id = {g} AND member_id IN ({set}) \
             RETURNING member_id, member_type"
        ));
        for row in txn.query_all_raw(sql.build()).await? {
            if kind_of(&row.try_get::<String>("", "member_type")?) == MemberKind::User {
                left.push(row.try_get::<String>("", "member_id")?);
            }
        }
    }
    Ok(left)
}

/// The members of each of `group_ids`, ordered by member id.
async fn members_of<C: ConnectionTrait>(
    conn: &C,
    backend: Backend,
    group_ids: &[String],
) -> Result<HashMap<String, Vec<MemberRef>>, StoreError> {
    let mut out: HashMap<String, Vec<MemberRef>> = HashMap::new();
    for chunk in group_ids.chunks(CHUNK) {
        let mut sql = Sql::new(backend);
        let set = sql.bind_set(chunk.iter().cloned());
        sql.push(&format!(
            "SELECT group_id, member_id, member_type FROM group_members \
             WHERE group_id IN ({set}) ORDER BY group_id, member_id"
        ));
        for row in conn.query_all_raw(sql.build()).await? {
            out.entry(row.try_get::<String>("", "group_id")?)
                .or_default()
                .push(MemberRef {
                    value: row.try_get::<String>("", "member_id")?,
                    kind: kind_of(&row.try_get::<String>("", "member_type")?),
                });
        }
    }
    Ok(out)
}

/// Applies `change` to the membership of `group_id` (locked in `txn`) and returns the ids
/// of the users who left: `members := (replace_all or current) ∪ add ∖ remove`.
async fn apply_membership(
    txn: &WriteTxn,
    backend: Backend,
    tenant_id: &str,
    group_id: &str,
    change: MembershipChange,
) -> Result<Vec<String>, StoreError> {
    let remove: HashSet<String> = change.remove.into_iter().collect();
    match change.replace_all {
        Some(all) => {
            let target = dedup(all.into_iter().chain(change.add))
                .into_iter()
                .filter(|m| !remove.contains(&m.value))
                .collect::<Vec<_>>();
            let current = members_of(txn, backend, &[group_id.to_owned()])
                .await?
                .remove(group_id)
                .unwrap_or_default();
            let wanted: HashSet<&str> = target.iter().map(|m| m.value.as_str()).collect();
            let have: HashSet<&str> = current.iter().map(|m| m.value.as_str()).collect();
            let joining: Vec<MemberRef> = target
                .iter()
                .filter(|m| !have.contains(m.value.as_str()))
                .cloned()
                .collect();
            let leaving: Vec<String> = current
                .iter()
                .filter(|m| !wanted.contains(m.value.as_str()))
                .map(|m| m.value.clone())
                .collect();
            validate_members(txn, backend, tenant_id, Some(group_id), &joining).await?;
            let left = delete_members(txn, backend, group_id, &leaving).await?;
            insert_members(txn, backend, tenant_id, group_id, &joining).await?;
            Ok(left)
        }
        None => {
            let add: Vec<MemberRef> = dedup(change.add)
                .into_iter()
                .filter(|m| !remove.contains(&m.value))
                .collect();
            validate_members(txn, backend, tenant_id, Some(group_id), &add).await?;
            insert_members(txn, backend, tenant_id, group_id, &add).await?;
            let remove: Vec<String> = remove.into_iter().collect();
            delete_members(txn, backend, group_id, &remove).await
        }
    }
}

/// Whether a target of the tenant is bound to the group, by its id or by one of `names`
/// (display names, compared folded). A rename in the same request counts under either name.
async fn is_bound(
    txn: &WriteTxn,
    backend: Backend,
    tenant_id: &str,
    group_id: &str,
    names: &[&str],
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(backend);
    let t = sql.bind(tenant_id.to_owned());
    let refs = sql.bind_list(std::iter::once(fold(group_id)).chain(names.iter().map(|n| fold(n))));
    sql.push(&format!(
        "SELECT 1 AS bound FROM target_groups tg JOIN targets t ON t.id = tg.target_id \
         WHERE t.tenant_id = {t} AND tg.group_ref_folded IN ({refs}) LIMIT 1"
    ));
    Ok(txn.query_one_raw(sql.build()).await?.is_some())
}

/// Records one `RemovedFromGroup` per user in `user_ids`, with their current snapshots.
async fn record_removals(
    txn: &WriteTxn,
    backend: Backend,
    ctx: &RequestContext,
    group: (&str, &str),
    user_ids: &[String],
) -> Result<usize, StoreError> {
    let mut users: HashMap<String, user::Model> = HashMap::new();
    for chunk in user_ids.chunks(CHUNK) {
        let mut sql = Sql::new(backend);
        let t = sql.bind(ctx.tenant_id.clone());
        let set = sql.bind_set(chunk.iter().cloned());
        let cols = user::select_list();
        sql.push(&format!(
            "SELECT {cols} FROM users WHERE tenant_id = {t} AND id IN ({set})"
        ));
        for u in user::Model::find_by_statement(sql.build()).all(txn).await? {
            users.insert(u.id.clone(), u);
        }
    }
    let events = user_ids
        .iter()
        .map(|id| NewEvent {
            kind: EventKind::RemovedFromGroup,
            user_id: id.clone(),
            user_snapshot: users
                .get(id)
                .map(snapshot)
                .unwrap_or_else(|| serde_json::json!({ "id": id })),
            group: Some(group),
        })
        .collect();
    Ok(record_events(txn, backend, ctx, events).await?.deliveries)
}

impl Store {
    /// Creates a group with its first members (RFC 7644 §3.3). Members that are not users
    /// (or groups) of the tenant refuse the whole request with [`StoreError::InvalidMembers`].
    #[instrument(skip_all, fields(tenant = %ctx.tenant_id, request_id = %ctx.request_id))]
    pub async fn create_group(
        &self,
        ctx: &RequestContext,
        write: GroupWrite,
        members: Vec<MemberRef>,
    ) -> Result<GroupRecord, StoreError> {
        let backend = self.backend();
        let members = dedup(members);
        let now = now_millis();
        let model = group::Model {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: ctx.tenant_id.clone(),
            display_name_folded: fold(&write.display_name),
            display_name: write.display_name,
            external_id: write.external_id,
            resource: write.resource,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let txn = self.begin_write().await?;
        validate_members(&txn, backend, &ctx.tenant_id, None, &members).await?;
        let mut sql = Sql::new(backend);
        let values = [
            sql.bind(model.id.clone()),
            sql.bind(model.tenant_id.clone()),
            sql.bind(model.display_name.clone()),
            sql.bind(model.display_name_folded.clone()),
            sql.bind(model.external_id.clone()),
            sql.bind(model.resource.clone()),
            sql.bind(model.version),
            sql.bind(model.created_at),
            sql.bind(model.updated_at),
        ];
        sql.push(&format!(
            "INSERT INTO groups (id, tenant_id, display_name, display_name_folded, external_id, \
             resource, version, created_at, updated_at) VALUES ({})",
            values.join(", ")
        ));
        txn.execute_raw(sql.build()).await?;
        insert_members(&txn, backend, &ctx.tenant_id, &model.id, &members).await?;
        self.commit(txn).await?;
        Ok(GroupRecord::from_model(model, Some(members)))
    }

    /// One group of the tenant; its members only when `include_members` (Entra reads groups
    /// with `excludedAttributes=members`: then `group_members` is not queried at all).
    pub async fn get_group(
        &self,
        tenant_id: &str,
        id: &str,
        include_members: bool,
    ) -> Result<Option<GroupRecord>, StoreError> {
        let mut sql = Sql::new(self.backend());
        let (i, t) = (sql.bind(id.to_owned()), sql.bind(tenant_id.to_owned()));
        sql.push(&format!(
            "SELECT {} FROM groups g WHERE g.id = {i} AND g.tenant_id = {t}",
            group::Model::select("g")
        ));
        let rows = self.reader().rows::<group::Model>(sql.build()).await?;
        let Some(model) = rows.into_iter().next() else {
            return Ok(None);
        };
        let members = if include_members {
            let mut all = members_of(
                self.reader(),
                self.backend(),
                std::slice::from_ref(&model.id),
            )
            .await?;
            Some(all.remove(&model.id).unwrap_or_default())
        } else {
            None
        };
        Ok(Some(GroupRecord::from_model(model, members)))
    }

    /// Changes a group's attributes (`Some(write)`) and/or membership in one transaction
    /// (PUT, RFC 7644 §3.5.1, and PATCH, §3.5.2), bumping its version.
    ///
    /// Every user who actually leaves the group gets one `RemovedFromGroup` event when a
    /// target of the tenant is bound to the group (by id, or by its display name before or
    /// after this change). New members must be users (or groups) of the tenant, else
    /// [`StoreError::InvalidMembers`] and nothing is written. The returned record has
    /// `members: None`; read the group to get them.
    #[instrument(skip_all, fields(tenant = %ctx.tenant_id, request_id = %ctx.request_id, group = %id))]
    pub async fn replace_group(
        &self,
        ctx: &RequestContext,
        id: &str,
        expected_version: Option<i64>,
        write: Option<GroupWrite>,
        change: MembershipChange,
    ) -> Result<GroupRecord, StoreError> {
        let backend = self.backend();
        let txn = self.begin_write().await?;
        let old = lock_group(&txn, backend, &ctx.tenant_id, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        check_version(expected_version, old.version)?;
        if write.is_none() && change.is_empty() {
            return Ok(GroupRecord::from_model(old, None));
        }
        let left = apply_membership(&txn, backend, &ctx.tenant_id, &old.id, change).await?;

        let mut new = old.clone();
        if let Some(w) = write {
            new.display_name_folded = fold(&w.display_name);
            new.display_name = w.display_name;
            new.external_id = w.external_id;
            new.resource = w.resource;
        }
        new.version = old.version + 1;
        new.updated_at = now_millis().max(old.updated_at);
        let mut sql = Sql::new(backend);
        let set = [
            format!("display_name = {}", sql.bind(new.display_name.clone())),
            format!(
                "display_name_folded = {}",
                sql.bind(new.display_name_folded.clone())
            ),
            format!("external_id = {}", sql.bind(new.external_id.clone())),
            format!("resource = {}", sql.bind(new.resource.clone())),
            format!("version = {}", sql.bind(new.version)),
            format!("updated_at = {}", sql.bind(new.updated_at)),
        ];
        let (i, t, v) = (
            sql.bind(old.id.clone()),
            sql.bind(old.tenant_id.clone()),
            sql.bind(old.version),
        );
        sql.push(&format!(
            "UPDATE groups SET {} WHERE id = {i} AND tenant_id = {t} AND version = {v}",
            set.join(", ")
        ));
        if txn.execute_raw(sql.build()).await?.rows_affected() != 1 {
            return Err(StoreError::VersionMismatch {
                current: old.version,
            });
        }

        let mut deliveries = 0;
        if !left.is_empty()
            && is_bound(
                &txn,
                backend,
                &ctx.tenant_id,
                &old.id,
                &[&old.display_name, &new.display_name],
            )
            .await?
        {
            deliveries =
                record_removals(&txn, backend, ctx, (&new.id, &new.display_name), &left).await?;
        }
        self.commit(txn).await?;
        self.wake_outbox_if(deliveries);
        Ok(GroupRecord::from_model(new, None))
    }

    /// Deletes a group (RFC 7644 §3.6); when it is bound to a target, each user member gets
    /// one `RemovedFromGroup` event. Its membership in other groups goes with it.
    #[instrument(skip_all, fields(tenant = %ctx.tenant_id, request_id = %ctx.request_id, group = %id))]
    pub async fn delete_group(
        &self,
        ctx: &RequestContext,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let backend = self.backend();
        let txn = self.begin_write().await?;
        let old = lock_group(&txn, backend, &ctx.tenant_id, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        check_version(expected_version, old.version)?;

        let mut sql = Sql::new(backend);
        let g = sql.bind(old.id.clone());
        sql.push(&format!(
            "DELETE FROM group_members WHERE group_id = {g} RETURNING member_id, member_type"
        ));
        let mut left = Vec::new();
        for row in txn.query_all_raw(sql.build()).await? {
            if kind_of(&row.try_get::<String>("", "member_type")?) == MemberKind::User {
                left.push(row.try_get::<String>("", "member_id")?);
            }
        }
        let mut sql = Sql::new(backend);
        let (g, t) = (sql.bind(old.id.clone()), sql.bind(old.tenant_id.clone()));
        sql.push(&format!(
            "DELETE FROM group_members WHERE tenant_id = {t} AND member_id = {g}"
        ));
        txn.execute_raw(sql.build()).await?;
        let mut sql = Sql::new(backend);
        let (g, t) = (sql.bind(old.id.clone()), sql.bind(old.tenant_id.clone()));
        sql.push(&format!(
            "DELETE FROM groups WHERE id = {g} AND tenant_id = {t}"
        ));
        txn.execute_raw(sql.build()).await?;

        let mut deliveries = 0;
        if !left.is_empty()
            && is_bound(&txn, backend, &ctx.tenant_id, &old.id, &[&old.display_name]).await?
        {
            deliveries =
                record_removals(&txn, backend, ctx, (&old.id, &old.display_name), &left).await?;
        }
        self.commit(txn).await?;
        self.wake_outbox_if(deliveries);
        Ok(())
    }

    /// Groups of the tenant matching `query` (RFC 7644 §3.4.2), with their members when
    /// `include_members` (read in one query per thousand groups of the page).
    pub async fn list_groups(
        &self,
        tenant_id: &str,
        query: &ListQuery,
        include_members: bool,
    ) -> Result<(u64, Vec<GroupRecord>), StoreError> {
        let (total, rows) =
            list_rows::<group::Model>(self, "groups", ResourceKind::Group, tenant_id, query)
                .await?;
        let mut members = if include_members && !rows.is_empty() {
            let ids: Vec<String> = rows.iter().map(|g| g.id.clone()).collect();
            Some(members_of(self.reader(), self.backend(), &ids).await?)
        } else {
            None
        };
        let groups = rows
            .into_iter()
            .map(|g| {
                let m = members
                    .as_mut()
                    .map(|all| all.remove(&g.id).unwrap_or_default());
                GroupRecord::from_model(g, m)
            })
            .collect();
        Ok((total, groups))
    }
}
