//! Order queries. Set-based: one statement per table per chunk, whatever
//! the number of orders and lines. Writes here, reads in [`read`].

mod read;

pub use read::*;

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    sea_query::{Alias, Expr, ExprTrait, OnConflict, Query},
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
