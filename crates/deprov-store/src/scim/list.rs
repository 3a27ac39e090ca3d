//! Listing with filter, sort and paging (RFC 7644 §3.4.2), shared by users and groups.

use deprov_core::scim::{ListQuery, ResourceKind};
use sea_orm::{ConnectionTrait, FromQueryResult};

use super::filter::{self, ROW};
use super::sql::Sql;
use crate::decode::Decode;
use crate::{Store, StoreError};

/// `total` (every match, RFC 7644 §3.4.2 `totalResults`) and the requested page of rows of
/// `table`, both from one snapshot of the data.
///
/// A filtered list (what identity providers send: `userName eq "…"` before every create)
/// reads its answer with one statement: a first page that is not full is its own count;
/// any other page carries a window function that counts every match (a full first page is
/// read again with it). An unfiltered list counts and reads in one read-only transaction
/// instead, because the window would read every row of the tenant to return one page.
pub(crate) async fn list_rows<M: Decode + FromQueryResult>(
    store: &Store,
    table: &'static str,
    kind: ResourceKind,
    tenant_id: &str,
    query: &ListQuery,
) -> Result<(u64, Vec<M>), StoreError> {
    let backend = store.backend();
    // `WHERE …` of both statements, written onto `sql`.
    let condition = |sql: &mut Sql| -> Result<(), StoreError> {
        let tenant = sql.bind(tenant_id.to_owned());
        let filter = match &query.filter {
            Some(f) => Some(filter::predicate(sql, kind, f)?),
            None => None,
        };
        sql.push(" WHERE ")
            .push(ROW)
            .push(".tenant_id = ")
            .push(&tenant);
        if let Some(filter) = filter {
            sql.push(" AND ").push(&filter);
        }
        Ok(())
    };

    // Built when needed: a filtered first page that is not full does without it.
    let count = || -> Result<Sql, StoreError> {
        let mut count = Sql::new(backend);
        count
            .push("SELECT COUNT(*) AS n FROM ")
            .push(table)
            .push(" ")
            .push(ROW);
        condition(&mut count)?;
        Ok(count)
    };

    // Written with `push`, not `format!`: this runs for every filtered read.
    let page = |total_column: &str| -> Result<Sql, StoreError> {
        let mut sql = Sql::new(backend);
        sql.push("SELECT ")
            .push(M::select_row())
            .push(total_column)
            .push(" FROM ")
            .push(table)
            .push(" ")
            .push(ROW);
        condition(&mut sql)?;
        let order = filter::order_by(&mut sql, kind, query.sort_by.as_ref(), query.sort_order)?;
        let limit = sql.bind(i64::try_from(query.count).unwrap_or(i64::MAX));
        let offset =
            sql.bind(i64::try_from(query.start_index.saturating_sub(1)).unwrap_or(i64::MAX));
        sql.push(" ORDER BY ")
            .push(&order)
            .push(" LIMIT ")
            .push(&limit)
            .push(" OFFSET ")
            .push(&offset);
        Ok(sql)
    };

    if query.count > 0 && query.filter.is_some() && query.start_index <= 1 {
        // What identity providers send matches one user or none: a first page that is not
        // full holds every match, so it is its own count, without a window over the rows.
        let rows = store.reader().rows::<M>(page("")?.build()).await?;
        if (rows.len() as u64) < query.count {
            return Ok((rows.len() as u64, rows));
        }
    }

    if query.count > 0 && query.filter.is_some() {
        let rows = store
            .reader()
            .rows_with::<M>(page(", COUNT(*) OVER () AS total_n")?.build())
            .await?;
        if let Some(&(_, total)) = rows.first() {
            let records = rows.into_iter().map(|(row, _)| row).collect();
            return Ok((u64::try_from(total).unwrap_or(0), records));
        }
        // No row: nothing matches, or the page starts past the end (then only the count
        // is wanted, and a count alone is consistent with itself).
        let total = count_of(store.reader(), count()?).await?;
        return Ok((total, Vec::new()));
    }

    let page = if query.count == 0 {
        None
    } else {
        Some(page("")?)
    };
    let count = count()?;
    let txn = store.begin_read().await?;
    let total = count_of(&txn, count).await?;
    let rows = match page {
        Some(sql) => txn.rows::<M>(sql.build()).await?,
        None => Vec::new(),
    };
    txn.finish().await?;
    Ok((total, rows))
}

async fn count_of(db: &impl ConnectionTrait, count: Sql) -> Result<u64, StoreError> {
    let n = db
        .query_one_raw(count.build())
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}
