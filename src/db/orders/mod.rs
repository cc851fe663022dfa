//! Order queries. Set-based: one statement per table per chunk, whatever
//! the number of orders and lines. Writes here, reads in [`read`].

mod read;

pub use read::*;

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Statement, Value,
};

use crate::db::{
    changes, chunk_rows,
    entities::{order_items, orders},
    insert_sql,
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
    /// Its lines, in request order.
    pub lines: Vec<LineRow<'a>>,
}

/// A line of an order to write.
#[derive(Debug, Clone, Copy)]
pub struct LineRow<'a> {
    pub product_id: &'a str,
    pub quantity: i64,
    pub unit_value_micros: i64,
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
    // Every writer locks rows in external-ID order, so two batches that
    // share orders cannot deadlock on PostgreSQL.
    let mut sorted: Vec<&OrderRow<'_>> = inputs.iter().collect();
    sorted.sort_by_key(|o| o.external_id);
    let fresh: HashMap<&str, &str> = sorted
        .iter()
        .map(|o| (o.external_id, o.fresh_id.as_str()))
        .collect();

    // Raw SQL, for the reason of `replace_lines`. Only rows whose content
    // changed are updated (and returned); an unchanged row is still locked
    // on PostgreSQL, like an updated one.
    let backend = conn.get_database_backend();
    let counter = stamp.counter();
    let mut columns = ORDER_COLUMNS.to_vec();
    columns.extend(counter.map(|_| STAMP_COLUMNS).into_iter().flatten());
    let mut written: HashMap<String, (String, Written)> = HashMap::with_capacity(inputs.len());
    for chunk in sorted.chunks(chunk_rows(columns.len())) {
        let mut values = Vec::with_capacity(chunk.len() * columns.len());
        for o in chunk {
            values.extend([
                Value::from(o.fresh_id.as_str()),
                Value::from(account),
                Value::from(o.external_id),
                Value::from(o.destination_country),
                Value::from(o.destination_region),
                Value::from(o.destination_postal_code),
                Value::from(o.metadata.cloned()),
                Value::from(o.total_value_usd.as_str()),
                Value::from(now),
                Value::from(now),
                Value::from(o.content_hash),
                Value::from(lines_text(&o.lines)),
            ]);
            values.extend(
                counter
                    .into_iter()
                    .flat_map(|c| STAMP_COLUMNS.map(|_| Value::from(c))),
            );
        }
        let sql = format!(
            "{} {ORDER_ON_CONFLICT}, \"change_seq\" = {stamp}, \"lines_seq\" = {stamp} \
             WHERE \"orders\".\"content_hash\" IS NULL \
             OR \"orders\".\"content_hash\" <> \"excluded\".\"content_hash\" \
             RETURNING \"id\", \"external_id\"",
            insert_sql(backend, "orders", &columns, chunk.len()),
            stamp = stamp.on_update_sql(),
        );
        for row in conn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
        {
            let id: String = row.try_get("", "id")?;
            let external_id: String = row.try_get("", "external_id")?;
            let how = if fresh.get(external_id.as_str()) == Some(&id.as_str()) {
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

/// The columns [`upsert`] writes, but `change_seq` and `lines_seq`:
/// written on SQLite; on PostgreSQL, the columns' default (the
/// transaction's ID).
const ORDER_COLUMNS: [&str; 12] = [
    "id",
    "account_id",
    "external_id",
    "destination_country",
    "destination_region",
    "destination_postal_code",
    "metadata",
    "total_value_usd",
    "created_at",
    "updated_at",
    "content_hash",
    "lines",
];

/// The columns stamped with the write's `change_seq`: the order's version
/// and the version its `lines` text was written at.
const STAMP_COLUMNS: [&str; 2] = ["change_seq", "lines_seq"];

/// What an upsert updates in a stored order whose content changed
/// (`change_seq` is added per backend).
const ORDER_ON_CONFLICT: &str = "ON CONFLICT (\"account_id\", \"external_id\") DO UPDATE SET \
    \"destination_country\" = \"excluded\".\"destination_country\", \
    \"destination_region\" = \"excluded\".\"destination_region\", \
    \"destination_postal_code\" = \"excluded\".\"destination_postal_code\", \
    \"metadata\" = \"excluded\".\"metadata\", \
    \"total_value_usd\" = \"excluded\".\"total_value_usd\", \
    \"updated_at\" = \"excluded\".\"updated_at\", \
    \"content_hash\" = \"excluded\".\"content_hash\", \
    \"lines\" = \"excluded\".\"lines\"";

/// Replaces the line items of the orders `ids` with the lines of `orders`
/// (parallel to `ids`), in request order. Orders just inserted have no
/// lines to delete; unchanged orders are skipped.
pub async fn replace_lines(
    conn: &impl ConnectionTrait,
    orders: &[OrderRow<'_>],
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
    let rows: Vec<(&str, i32, &LineRow<'_>)> = orders
        .iter()
        .zip(ids)
        .filter(|(_, (_, how))| *how != Written::Unchanged)
        .flat_map(|(order, (id, _))| {
            order
                .lines
                .iter()
                .enumerate()
                .map(move |(position, l)| (id.as_str(), position as i32, l))
        })
        .collect();
    // Raw SQL: a 1,000-order batch has 3,000 lines, and building them
    // through active models and the query builder cost more of the
    // request's CPU than SQLite's own work of inserting them.
    let backend = conn.get_database_backend();
    for chunk in rows.chunks(chunk_rows(LINE_COLUMNS.len())) {
        let values = chunk.iter().flat_map(|(order_id, position, l)| {
            [
                Value::from(*order_id),
                Value::from(*position),
                Value::from(l.product_id),
                Value::from(l.quantity),
                Value::from(l.unit_value_micros),
            ]
        });
        let sql = insert_sql(backend, "order_items", &LINE_COLUMNS, chunk.len());
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// `lines` as the JSON text an order's `lines` column holds and reads
/// decode ([`OrderWithLines::into_parts`]).
fn lines_text(lines: &[LineRow<'_>]) -> String {
    let tuples: Vec<(&str, i64, i64)> = lines
        .iter()
        .map(|l| (l.product_id, l.quantity, l.unit_value_micros))
        .collect();
    serde_json::to_string(&tuples).expect("lines serialise")
}

/// The columns [`replace_lines`] writes.
const LINE_COLUMNS: [&str; 5] = [
    "order_id",
    "position",
    "product_id",
    "quantity",
    "unit_value_micros",
];

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
