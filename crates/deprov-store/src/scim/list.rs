//! Listing with filter, sort and paging (RFC 7644 §3.4.2), shared by users and groups.

use deprov_core::scim::{ListQuery, ResourceKind};
use sea_orm::{AccessMode, ConnectionTrait, FromQueryResult, IsolationLevel, TransactionTrait};

use super::filter::{self, ROW};
use super::sql::Sql;
use crate::{Backend, Store, StoreError};

/// `total` (every match, RFC 7644 §3.4.2 `totalResults`) and the requested page of rows of
/// `table`, counted and read in one read-only transaction so that both see the same data.
pub(crate) async fn list_rows<M: FromQueryResult>(
    store: &Store,
    table: &'static str,
    kind: ResourceKind,
    tenant_id: &str,
    query: &ListQuery,
) -> Result<(u64, Vec<M>), StoreError> {
    let backend = store.backend();
    let condition = |sql: &mut Sql| -> Result<String, StoreError> {
        let tenant = sql.bind(tenant_id.to_owned());
        let mut cond = format!("{ROW}.tenant_id = {tenant}");
        if let Some(f) = &query.filter {
            cond.push_str(" AND ");
            cond.push_str(&filter::predicate(sql, kind, f)?);
        }
        Ok(cond)
    };

    let mut count = Sql::new(backend);
    let cond = condition(&mut count)?;
    count.push(&format!(
        "SELECT COUNT(*) AS n FROM {table} {ROW} WHERE {cond}"
    ));

    let page = if query.count == 0 {
        None
    } else {
        let mut sql = Sql::new(backend);
        let cond = condition(&mut sql)?;
        let order = filter::order_by(&mut sql, kind, query.sort_by.as_ref(), query.sort_order)?;
        let limit = sql.bind(i64::try_from(query.count).unwrap_or(i64::MAX));
        let offset =
            sql.bind(i64::try_from(query.start_index.saturating_sub(1)).unwrap_or(i64::MAX));
        sql.push(&format!(
            "SELECT {ROW}.* FROM {table} {ROW} WHERE {cond} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
        ));
        Some(sql)
    };

    let txn = match backend {
        Backend::Postgres => {
            store
                .reader()
                .begin_with_config(
                    Some(IsolationLevel::RepeatableRead),
                    Some(AccessMode::ReadOnly),
                )
                .await?
        }
        // A SQLite transaction reads one snapshot of the WAL from its first read on.
        Backend::Sqlite => store.reader().begin().await?,
    };
    let total = txn
        .query_one_raw(count.build())
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    let rows = match page {
        Some(sql) => M::find_by_statement(sql.build()).all(&txn).await?,
        None => Vec::new(),
    };
    txn.commit().await?;
    Ok((u64::try_from(total).unwrap_or(0), rows))
}
