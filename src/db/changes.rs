//! The order change feed's positions. An order's `change_seq` says where
//! its latest change sits in commit order, and a reader only serves the
//! changes below a horizon that no unfinished write can fall under:
//!
//! - PostgreSQL: `change_seq` is the ID of the transaction that made the
//!   change (`pg_current_xact_id()`, 64 bits, never wraps). Transactions
//!   of several processes commit out of ID order, so the horizon is the
//!   reader's snapshot `xmin`: every transaction below it has finished, so
//!   each change below it is visible to this snapshot and to every later one.
//! - SQLite: `change_seq` is a counter that each write transaction advances
//!   once. A write holds the database's write lock from its first
//!   statement, so the counter follows commit order and the horizon is the
//!   counter's committed value plus one.
//!
//! The feed's raw SQL lives here (and the `DO UPDATE` stamp of the
//! order upsert, [`Stamp::on_update_sql`]); both backends answer through
//! the same functions.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Statement,
    sea_query::{Expr, ExprTrait},
};

use crate::db::{
    entities::{change_counter, orders},
    orders::{LINES_AT, OrderWithLines, by_position, select_with_lines},
};

/// PostgreSQL's ID of the current transaction, as a `bigint`.
const TRANSACTION_ID: &str = "pg_current_xact_id()::text::bigint";

/// How one write transaction stamps the orders it changes.
#[derive(Debug, Clone, Copy)]
pub enum Stamp {
    /// SQLite: the counter's value for this transaction.
    Counter(i64),
    /// PostgreSQL: the transaction's ID, which the database fills in.
    TransactionId,
}

impl Stamp {
    /// The `change_seq` of an inserted order, when the write gives one
    /// (SQLite); on PostgreSQL the column's default is the transaction's ID.
    pub fn counter(self) -> Option<i64> {
        match self {
            Stamp::Counter(n) => Some(n),
            Stamp::TransactionId => None,
        }
    }

    /// The `change_seq` of an updated order in an upsert's `DO UPDATE`:
    /// on SQLite the row proposed for insert carries this write's counter.
    pub fn on_update_sql(self) -> &'static str {
        match self {
            Stamp::Counter(_) => "\"excluded\".\"change_seq\"",
            Stamp::TransactionId => TRANSACTION_ID,
        }
    }
}

/// The stamp of the write transaction `txn` (call it inside the write).
pub async fn stamp(txn: &impl ConnectionTrait) -> Result<Stamp, DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        return Ok(Stamp::TransactionId);
    }
    let advanced = change_counter::Entity::update_many()
        .col_expr(
            change_counter::Column::Value,
            Expr::col(change_counter::Column::Value).add(1),
        )
        .filter(change_counter::Column::Id.eq(1))
        .exec_with_returning(txn)
        .await?;
    advanced
        .first()
        .map(|c| Stamp::Counter(c.value))
        .ok_or_else(|| DbErr::RecordNotFound("the change counter".into()))
}

/// The horizon of the read transaction `txn`: every change with a lower
/// `change_seq` is committed and visible to it, and no change committed
/// later will get one. Call it first in the transaction, so the pages read
/// after it come from the same snapshot.
pub async fn horizon(txn: &impl ConnectionTrait) -> Result<i64, DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        let sql = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon";
        let row = txn
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the snapshot's xmin".into()))?;
        return row.try_get("", "horizon");
    }
    let counter = change_counter::Entity::find_by_id(1)
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the change counter".into()))?;
    Ok(counter.value + 1)
}

/// Up to `limit` orders of the account whose change lies after `after`
/// (a `(change_seq, id)` position) and below `horizon`, in feed order: one
/// range of the index on `(account_id, change_seq, id)`.
pub async fn page(
    txn: &impl ConnectionTrait,
    account: &str,
    after: (i64, &str),
    horizon: i64,
    limit: u64,
) -> Result<Vec<ChangedOrder>, DbErr> {
    let query = page_query(txn.get_database_backend(), account, after, horizon, limit);
    txn.query_all(&query.into_query())
        .await?
        .iter()
        .map(|row| {
            by_position(row, |row| {
                Ok(ChangedOrder {
                    order: OrderWithLines::at(row)?,
                    change_seq: row.int(LINES_AT + 1)?,
                })
            })
        })
        .collect()
}

/// An order of the feed: as reads answer it, and its position.
#[derive(Debug)]
pub struct ChangedOrder {
    pub order: OrderWithLines,
    pub change_seq: i64,
}

/// The statement of [`page`] (the query-plan tests read it).
pub fn page_query(
    backend: DbBackend,
    account: &str,
    after: (i64, &str),
    horizon: i64,
    limit: u64,
) -> sea_orm::Select<orders::Entity> {
    let position = Expr::tuple([
        Expr::col(orders::Column::ChangeSeq),
        Expr::col(orders::Column::Id),
    ]);
    let after = Expr::tuple([Expr::val(after.0), Expr::val(after.1)]);
    select_with_lines(orders::Entity::find(), backend)
        .column(orders::Column::ChangeSeq)
        .filter(orders::Column::AccountId.eq(account))
        .filter(position.gt(after))
        .filter(orders::Column::ChangeSeq.lt(horizon))
        .order_by_asc(orders::Column::ChangeSeq)
        .order_by_asc(orders::Column::Id)
        .limit(limit)
}
