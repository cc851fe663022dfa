//! Order queries. Set-based: one statement per table per chunk, whatever
//! the number of orders and lines.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::OnConflict,
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
    inputs: &[OrderInput],
    totals: &[rust_decimal::Decimal],
) -> Result<Vec<String>, DbErr> {
    let now = chrono::Utc::now().fixed_offset();
    let mut rows: Vec<(&OrderInput, orders::ActiveModel)> = inputs
        .iter()
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
    inputs: &[OrderInput],
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
