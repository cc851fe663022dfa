//! Order queries. Set-based: one statement per table per chunk, whatever
//! the number of orders and lines.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::OnConflict,
};

use crate::{
    db::{
        chunk_rows,
        entities::{order_items, orders},
    },
    domain::{new_id, orders::OrderInput},
};

/// Inserts new orders and updates existing ones by (account, externalId);
/// returns the stable ID of each, in the order of `inputs`.
///
/// A concurrent insert of the same external ID meets the unique index and
/// turns into an update of the one row, so no race makes two orders.
pub async fn upsert(
    conn: &impl ConnectionTrait,
    account: &str,
    inputs: &[&OrderInput],
    totals: &[rust_decimal::Decimal],
) -> Result<Vec<String>, DbErr> {
    let now = chrono::Utc::now().fixed_offset();
    let mut rows: Vec<(&OrderInput, orders::ActiveModel)> = inputs
        .iter()
        .copied()
        .zip(totals)
        .map(|(o, total)| {
            let row = orders::ActiveModel {
                id: Set(new_id("ord")),
                account_id: Set(account.to_owned()),
                external_id: Set(o.external_id.clone()),
                destination_country: Set(o.destination_country.clone()),
                destination_region: Set(o.destination_region.clone()),
                destination_postal_code: Set(o.destination_postal_code.clone()),
                metadata: Set(o.metadata.clone()),
                total_value_usd: Set(total.to_string()),
                created_at: Set(now),
                updated_at: Set(now),
            };
            (o, row)
        })
        .collect();
    // Every writer locks rows in external-ID order, so two batches that
    // share orders cannot deadlock on PostgreSQL.
    rows.sort_by(|a, b| a.0.external_id.cmp(&b.0.external_id));

    let on_conflict = OnConflict::columns([orders::Column::AccountId, orders::Column::ExternalId])
        .update_columns([
            orders::Column::DestinationCountry,
            orders::Column::DestinationRegion,
            orders::Column::DestinationPostalCode,
            orders::Column::Metadata,
            orders::Column::TotalValueUsd,
            orders::Column::UpdatedAt,
        ])
        .to_owned();
    let mut ids: HashMap<String, String> = HashMap::with_capacity(inputs.len());
    let rows: Vec<orders::ActiveModel> = rows.into_iter().map(|(_, row)| row).collect();
    for chunk in rows.chunks(chunk_rows(11)) {
        let stored = orders::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict.clone())
            .exec_with_returning(conn)
            .await?;
        ids.extend(stored.into_iter().map(|m| (m.external_id, m.id)));
    }
    inputs
        .iter()
        .map(|o| {
            ids.remove(&o.external_id).ok_or_else(|| {
                DbErr::RecordNotFound(format!("order {} after upsert", o.external_id))
            })
        })
        .collect()
}

/// Replaces the line items of the orders `ids` (parallel to `inputs`) with
/// the lines of `inputs`, in request order.
pub async fn replace_lines(
    conn: &impl ConnectionTrait,
    inputs: &[&OrderInput],
    ids: &[String],
) -> Result<(), DbErr> {
    for chunk in ids.chunks(chunk_rows(1)) {
        order_items::Entity::delete_many()
            .filter(order_items::Column::OrderId.is_in(chunk.to_vec()))
            .exec(conn)
            .await?;
    }
    let lines: Vec<order_items::ActiveModel> = inputs
        .iter()
        .zip(ids)
        .flat_map(|(o, id)| {
            o.lines
                .iter()
                .enumerate()
                .map(move |(position, l)| order_items::ActiveModel {
                    order_id: Set(id.clone()),
                    position: Set(position as i32),
                    product_id: Set(l.product_id.clone()),
                    quantity: Set(l.quantity),
                    unit_value_micros: Set(l.unit_value_micros),
                    ..Default::default()
                })
        })
        .collect();
    for chunk in lines.chunks(chunk_rows(5)) {
        order_items::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Which orders a listing returns.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub external_id: Option<String>,
    pub updated_since: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// One order of the account with its lines in position order: a single
/// joined statement, so header and lines come from one snapshot.
pub async fn find_with_lines(
    conn: &impl ConnectionTrait,
    account: &str,
    id: &str,
) -> Result<Option<(orders::Model, Vec<order_items::Model>)>, DbErr> {
    let mut found = orders::Entity::find_by_id(id)
        .filter(orders::Column::AccountId.eq(account))
        .find_with_related(order_items::Entity)
        .order_by_asc(order_items::Column::Position)
        .all(conn)
        .await?;
    Ok(found.pop())
}

/// Up to `limit` orders of the account after the ID `after`, in ID order:
/// keyset pagination on the primary key, so a walk sees each order once
/// even while orders are inserted or updated.
pub async fn page(
    conn: &impl ConnectionTrait,
    account: &str,
    filter: &OrderFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<orders::Model>, DbErr> {
    let mut query = orders::Entity::find().filter(orders::Column::AccountId.eq(account));
    if let Some(external_id) = &filter.external_id {
        query = query.filter(orders::Column::ExternalId.eq(external_id.as_str()));
    }
    if let Some(since) = filter.updated_since {
        query = query.filter(orders::Column::UpdatedAt.gte(since.to_utc().fixed_offset()));
    }
    if let Some(after) = after {
        query = query.filter(orders::Column::Id.gt(after));
    }
    query
        .order_by_asc(orders::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// The lines of the orders `ids`, by order and position: one query.
pub async fn lines_of(
    conn: &impl ConnectionTrait,
    ids: &[String],
) -> Result<Vec<order_items::Model>, DbErr> {
    let mut lines = Vec::new();
    for chunk in ids.chunks(chunk_rows(1)) {
        lines.extend(
            order_items::Entity::find()
                .filter(order_items::Column::OrderId.is_in(chunk.to_vec()))
                .order_by_asc(order_items::Column::OrderId)
                .order_by_asc(order_items::Column::Position)
                .all(conn)
                .await?,
        );
    }
    Ok(lines)
}
