//! Order queries. Set-based: one statement per table per chunk, whatever
//! the number of orders and lines.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
    sea_query::{
        self, Alias, Asterisk, CommonTableExpression, Expr, ExprTrait, OnConflict, Order, Query,
        WithClause,
    },
};

use crate::db::{
    changes, chunk_rows,
    entities::{order_items, orders},
};

/// An order to upsert, as the domain has checked it.
#[derive(Debug, Clone)]
pub struct OrderRow<'a> {
    /// The ID it gets if it is new.
    pub fresh_id: String,
    pub external_id: &'a str,
    pub destination_country: &'a str,
    pub destination_region: Option<&'a str>,
    pub destination_postal_code: Option<&'a str>,
    pub metadata: Option<&'a serde_json::Value>,
    /// Exact decimal text.
    pub total_value_usd: String,
    pub content_hash: &'a str,
}

/// A line of an order to write.
#[derive(Debug, Clone, Copy)]
pub struct LineRow<'a> {
    pub product_id: &'a str,
    pub quantity: i64,
    pub unit_value_micros: i64,
}

/// An order as reads answer it: without metadata, timestamps, content
/// hash or change position, which a read would only decode to drop.
#[derive(Debug, Clone, FromQueryResult)]
pub struct OrderHead {
    pub id: String,
    pub account_id: String,
    pub external_id: String,
    pub destination_country: String,
    pub destination_region: Option<String>,
    pub destination_postal_code: Option<String>,
    pub total_value_usd: String,
}

/// A line of an order as reads answer it: product ID, quantity, unit
/// value in micro-dollars.
pub type LineOf = (String, i64, i64);

/// An order of a page with its lines, in position order, as the JSON text
/// `[[product_id, quantity, unit_value_micros], …]` ([`lines_json`]).
#[derive(Debug, FromQueryResult)]
pub struct OrderWithLines {
    #[sea_orm(nested)]
    pub head: OrderHead,
    pub lines: String,
}

impl OrderWithLines {
    pub fn into_parts(self) -> Result<(OrderHead, Vec<LineOf>), DbErr> {
        let lines = serde_json::from_str(&self.lines)
            .map_err(|e| DbErr::Type(format!("lines of order {}: {e}", self.head.id)))?;
        Ok((self.head, lines))
    }
}

/// One row of an order joined with one of its lines.
#[derive(Debug, FromQueryResult)]
struct HeadAndLine {
    #[sea_orm(nested)]
    head: OrderHead,
    product_id: String,
    quantity: i64,
    unit_value_micros: i64,
}

/// The columns of [`OrderHead`] but its lines.
const HEAD: [orders::Column; 7] = [
    orders::Column::Id,
    orders::Column::AccountId,
    orders::Column::ExternalId,
    orders::Column::DestinationCountry,
    orders::Column::DestinationRegion,
    orders::Column::DestinationPostalCode,
    orders::Column::TotalValueUsd,
];

/// The lines of the order of the enclosing query's `orders` row, as one
/// JSON array in position order (one range of the `(order_id, position)`
/// index). Each row of a result is a hand-off between threads in SQLite's
/// driver, so an order of a page is one row with its lines rather than one
/// row per line, and a page one statement instead of two. Raw SQL: the
/// JSON aggregates are each backend's own.
pub fn lines_json(backend: DbBackend) -> Expr {
    Expr::cust(match backend {
        DbBackend::Postgres => {
            r#"(SELECT json_agg(json_build_array("product_id", "quantity", "unit_value_micros") ORDER BY "position")::text FROM "order_items" WHERE "order_items"."order_id" = "orders"."id")"#
        }
        _ => {
            r#"(SELECT json_group_array(json_array("product_id", "quantity", "unit_value_micros") ORDER BY "position") FROM "order_items" WHERE "order_items"."order_id" = "orders"."id")"#
        }
    })
}

/// `query` selecting the columns of [`OrderWithLines`].
pub(crate) fn select_head(
    query: sea_orm::Select<orders::Entity>,
    backend: DbBackend,
) -> sea_orm::Select<orders::Entity> {
    query
        .select_only()
        .columns(HEAD)
        .expr_as(lines_json(backend), "lines")
}

/// What a sync did to one stored order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A new order: it has no lines yet.
    Inserted,
    /// An existing order whose content changed: its lines are replaced.
    Updated,
    /// An existing order with the same content hash: nothing was written.
    Unchanged,
}

/// Inserts new orders and updates existing ones by (account, externalId),
/// leaving alone those whose stored `content_hash` equals the new one;
/// returns the stable ID of each, and what was done, in the order of
/// `inputs`.
///
/// A concurrent insert of the same external ID meets the unique index and
/// turns into an update of the one row, so no race makes two orders.
pub async fn upsert(
    conn: &impl ConnectionTrait,
    account: &str,
    inputs: &[OrderRow<'_>],
) -> Result<Vec<(String, Written)>, DbErr> {
    let now = chrono::Utc::now().fixed_offset();
    let stamp = changes::stamp(conn).await?;
    let mut rows: Vec<orders::ActiveModel> = inputs
        .iter()
        .map(|o| orders::ActiveModel {
            id: Set(o.fresh_id.clone()),
            account_id: Set(account.to_owned()),
            external_id: Set(o.external_id.to_owned()),
            destination_country: Set(o.destination_country.to_owned()),
            destination_region: Set(o.destination_region.map(str::to_owned)),
            destination_postal_code: Set(o.destination_postal_code.map(str::to_owned)),
            metadata: Set(o.metadata.cloned()),
            total_value_usd: Set(o.total_value_usd.clone()),
            created_at: Set(now),
            updated_at: Set(now),
            content_hash: Set(Some(o.content_hash.to_owned())),
            change_seq: stamp.on_insert(),
        })
        .collect();
    // Every writer locks rows in external-ID order, so two batches that
    // share orders cannot deadlock on PostgreSQL.
    rows.sort_by(|a, b| a.external_id.as_ref().cmp(b.external_id.as_ref()));
    let fresh: HashMap<String, String> = rows
        .iter()
        .map(|r| (r.external_id.as_ref().clone(), r.id.as_ref().clone()))
        .collect();

    // Only rows whose content changed are updated (and returned); an
    // unchanged row is still locked on PostgreSQL, like an updated one.
    let stored_hash = Expr::col((orders::Entity, orders::Column::ContentHash));
    let changed = stored_hash.clone().is_null().or(stored_hash.ne(Expr::col((
        Alias::new("excluded"),
        orders::Column::ContentHash,
    ))));
    let on_conflict = OnConflict::columns([orders::Column::AccountId, orders::Column::ExternalId])
        .update_columns([
            orders::Column::DestinationCountry,
            orders::Column::DestinationRegion,
            orders::Column::DestinationPostalCode,
            orders::Column::Metadata,
            orders::Column::TotalValueUsd,
            orders::Column::UpdatedAt,
            orders::Column::ContentHash,
        ])
        .value(orders::Column::ChangeSeq, stamp.on_update())
        .action_and_where(changed)
        .to_owned();
    let mut written: HashMap<String, (String, Written)> = HashMap::with_capacity(inputs.len());
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<orders::ActiveModel> = rows.by_ref().take(chunk_rows(12)).collect();
        let mut insert = orders::Entity::insert_many(chunk)
            .on_conflict(on_conflict.clone())
            .into_query();
        insert.returning(
            Query::returning().columns([orders::Column::Id, orders::Column::ExternalId]),
        );
        for row in conn.query_all(&insert).await? {
            let id: String = row.try_get("", "id")?;
            let external_id: String = row.try_get("", "external_id")?;
            let how = if fresh.get(&external_id) == Some(&id) {
                Written::Inserted
            } else {
                Written::Updated
            };
            written.insert(external_id, (id, how));
        }
    }
    // Orders left alone returned nothing: their IDs, in one more query.
    let unchanged: Vec<&str> = inputs
        .iter()
        .map(|o| o.external_id)
        .filter(|e| !written.contains_key(*e))
        .collect();
    written.extend(
        stored_hashes(conn, account, &unchanged)
            .await?
            .into_iter()
            .map(|(external_id, (id, _))| (external_id, (id, Written::Unchanged))),
    );
    inputs
        .iter()
        .map(|o| {
            written.remove(o.external_id).ok_or_else(|| {
                DbErr::RecordNotFound(format!("order {} after upsert", o.external_id))
            })
        })
        .collect()
}

/// Replaces the line items of the orders `ids` with `lines` (parallel to
/// `ids`), in request order. Orders just inserted have no lines to delete;
/// unchanged orders are skipped.
pub async fn replace_lines(
    conn: &impl ConnectionTrait,
    lines: &[Vec<LineRow<'_>>],
    ids: &[(String, Written)],
) -> Result<(), DbErr> {
    let updated: Vec<&str> = ids
        .iter()
        .filter(|(_, how)| *how == Written::Updated)
        .map(|(id, _)| id.as_str())
        .collect();
    for chunk in updated.chunks(chunk_rows(1)) {
        order_items::Entity::delete_many()
            .filter(order_items::Column::OrderId.is_in(chunk.iter().copied()))
            .exec(conn)
            .await?;
    }
    let mut lines = lines
        .iter()
        .zip(ids)
        .filter(|(_, (_, how))| *how != Written::Unchanged)
        .flat_map(|(order_lines, (id, _))| {
            order_lines
                .iter()
                .enumerate()
                .map(move |(position, l)| order_items::ActiveModel {
                    order_id: Set(id.clone()),
                    position: Set(position as i32),
                    product_id: Set(l.product_id.to_owned()),
                    quantity: Set(l.quantity),
                    unit_value_micros: Set(l.unit_value_micros),
                    ..Default::default()
                })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .peekable();
    while lines.peek().is_some() {
        let chunk: Vec<order_items::ActiveModel> = lines.by_ref().take(chunk_rows(5)).collect();
        order_items::Entity::insert_many(chunk)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// One order of the account with its lines in position order: one joined
/// statement, a row per line (for a few rows, cheaper than aggregating
/// them).
pub async fn find(
    conn: &impl ConnectionTrait,
    account: &str,
    id: &str,
) -> Result<Option<(OrderHead, Vec<LineOf>)>, DbErr> {
    let rows = orders::Entity::find_by_id(id)
        .filter(orders::Column::AccountId.eq(account))
        .select_only()
        .columns(HEAD)
        .columns([
            order_items::Column::ProductId,
            order_items::Column::Quantity,
            order_items::Column::UnitValueMicros,
        ])
        .inner_join(order_items::Entity)
        .order_by_asc(order_items::Column::Position)
        .into_model::<HeadAndLine>()
        .all(conn)
        .await?;
    let Some(head) = rows.first().map(|r| r.head.clone()) else {
        return Ok(None);
    };
    let lines = rows
        .into_iter()
        .map(|r| (r.product_id, r.quantity, r.unit_value_micros))
        .collect();
    Ok(Some((head, lines)))
}

/// Most `updatedSince` matches a page is cut from.
const SINCE_MATCHES_SORTED: u64 = 10_000;

/// Up to `limit` orders of the account after the ID `after`, in ID order:
/// keyset pagination on the primary key, so a walk sees each order once
/// even while orders are inserted or updated.
pub async fn page(
    conn: &impl ConnectionTrait,
    account: &str,
    external_id: Option<&str>,
    updated_since: Option<chrono::DateTime<chrono::FixedOffset>>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<OrderWithLines>, DbErr> {
    // With `updatedSince`, walking the account in ID order can read every
    // order before it meets the recent ones (IDs grow with creation, and
    // recent updates sit at the end), and the planner, which cannot know
    // that, chooses that walk on PostgreSQL. So the matches are read off
    // the `updated_at` index first; when they are few, the page is cut
    // from them, and only when they are many, so that an ID walk meets
    // them soon, does the plain statement run.
    if let (Some(since), None) = (updated_since, external_id) {
        let rows = since_page_query(conn.get_database_backend(), account, since, after, limit);
        let rows = conn.query_all(&rows).await?;
        let matches = match rows.first() {
            Some(row) => row.try_get::<i64>("", "matches")?,
            None => 0,
        };
        if matches as u64 <= SINCE_MATCHES_SORTED {
            return rows
                .iter()
                .map(|row| OrderWithLines::from_query_result(row, ""))
                .collect();
        }
    }
    page_query(
        conn.get_database_backend(),
        account,
        external_id,
        updated_since,
        after,
        limit,
    )
    .into_model()
    .all(conn)
    .await
}

/// The `updatedSince` page cut from the matches, in one statement: the
/// matches (`m`, up to one more than [`SINCE_MATCHES_SORTED`]) are one
/// range of `(account_id, updated_at, id)` read in its own order, so no
/// plan but that index range serves them; the page is the first `limit`
/// of them by ID, each row carrying how many matched (`matches`). The
/// query-plan tests read it.
pub fn since_page_query(
    backend: DbBackend,
    account: &str,
    since: chrono::DateTime<chrono::FixedOffset>,
    after: Option<&str>,
    limit: u64,
) -> sea_query::WithQuery {
    let m = Alias::new("m");
    let mut matches = Query::select()
        .column(orders::Column::Id)
        .from(orders::Entity)
        .and_where(orders::Column::AccountId.eq(account))
        .and_where(orders::Column::UpdatedAt.gte(since.to_utc().fixed_offset()))
        .to_owned();
    if let Some(after) = after {
        matches.and_where(orders::Column::Id.gt(after));
    }
    matches
        .order_by(orders::Column::UpdatedAt, Order::Asc)
        .order_by(orders::Column::Id, Order::Asc)
        .limit(SINCE_MATCHES_SORTED + 1);
    let page_ids = Query::select()
        .column(orders::Column::Id)
        .from(m.clone())
        .order_by(orders::Column::Id, Order::Asc)
        .limit(limit)
        .to_owned();
    let count = Query::select()
        .expr(Expr::col(Asterisk).count())
        .from(m.clone())
        .to_owned();
    Query::select()
        .columns(HEAD.map(|c| (orders::Entity, c)))
        .expr_as(lines_json(backend), Alias::new("lines"))
        .expr_as(
            Expr::SubQuery(None, Box::new(count.into())),
            Alias::new("matches"),
        )
        .from(orders::Entity)
        .and_where(Expr::col((orders::Entity, orders::Column::Id)).in_subquery(page_ids))
        .order_by((orders::Entity, orders::Column::Id), Order::Asc)
        .to_owned()
        .with(
            WithClause::new()
                .cte(
                    CommonTableExpression::new()
                        .query(matches)
                        .table_name(m)
                        .to_owned(),
                )
                .to_owned(),
        )
}

/// The statement of [`page`]: one range of `(account_id, id)`, of
/// `(account_id, external_id)` or of `(account_id, updated_at, id)` (the
/// query-plan tests read it).
pub fn page_query(
    backend: DbBackend,
    account: &str,
    external_id: Option<&str>,
    updated_since: Option<chrono::DateTime<chrono::FixedOffset>>,
    after: Option<&str>,
    limit: u64,
) -> sea_orm::Select<orders::Entity> {
    let mut query =
        select_head(orders::Entity::find(), backend).filter(orders::Column::AccountId.eq(account));
    if let Some(external_id) = external_id {
        query = query.filter(orders::Column::ExternalId.eq(external_id));
    }
    if let Some(since) = updated_since {
        query = query.filter(orders::Column::UpdatedAt.gte(since.to_utc().fixed_offset()));
    }
    if let Some(after) = after {
        query = query.filter(orders::Column::Id.gt(after));
    }
    query.order_by_asc(orders::Column::Id).limit(limit)
}

/// The stored ID and content hash of each of the account's orders among
/// `external_ids`, by external ID (what an upsert would compare).
pub async fn stored_hashes(
    conn: &impl ConnectionTrait,
    account: &str,
    external_ids: &[&str],
) -> Result<HashMap<String, (String, Option<String>)>, DbErr> {
    let mut found = HashMap::with_capacity(external_ids.len());
    for chunk in external_ids.chunks(chunk_rows(1)) {
        let rows: Vec<(String, String, Option<String>)> = orders::Entity::find()
            .select_only()
            .columns([
                orders::Column::ExternalId,
                orders::Column::Id,
                orders::Column::ContentHash,
            ])
            .filter(orders::Column::AccountId.eq(account))
            .filter(orders::Column::ExternalId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(conn)
            .await?;
        found.extend(rows.into_iter().map(|(e, id, hash)| (e, (id, hash))));
    }
    Ok(found)
}
