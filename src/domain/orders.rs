//! Orders: upsert by (account, externalId), full replacement of line items,
//! exact totals, one transaction per request.

use rust_decimal::Decimal;
use serde_json::Value;

use crate::{
    db::{self, Db},
    domain::{money, should_retry},
    error::AppResult,
};

/// An order as a client syncs it, already validated.
#[derive(Debug, Clone)]
pub struct OrderInput {
    pub external_id: String,
    pub destination_country: String,
    pub destination_region: Option<String>,
    pub destination_postal_code: Option<String>,
    pub metadata: Option<Value>,
    pub lines: Vec<LineInput>,
}

#[derive(Debug, Clone)]
pub struct LineInput {
    pub product_id: String,
    pub quantity: i64,
    pub unit_value_micros: i64,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: String,
    pub account_id: String,
    pub external_id: String,
    pub destination_country: String,
    pub destination_region: Option<String>,
    pub destination_postal_code: Option<String>,
    pub total_value_usd: Decimal,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub product_id: String,
    pub quantity: i64,
    pub unit_value_micros: i64,
}

impl OrderInput {
    /// Σ quantity × unit value.
    pub fn total(&self) -> AppResult<Decimal> {
        money::total(self.lines.iter().map(|l| (l.quantity, l.unit_value_micros)))
            .ok_or_else(|| anyhow::anyhow!("order total overflows").into())
    }
}

/// Upserts `orders` (external IDs unique, products of `account` checked by
/// the caller) in one transaction; returns them in request order.
#[tracing::instrument(skip_all, fields(account_id = %account, orders = orders.len()))]
pub async fn sync(db: &Db, account: &str, orders: &[OrderInput]) -> AppResult<Vec<Order>> {
    let totals = orders
        .iter()
        .map(OrderInput::total)
        .collect::<AppResult<Vec<_>>>()?;
    let mut attempts = 1;
    let ids = loop {
        match write(db, account, orders, &totals).await {
            Err(e) if should_retry(&e, &mut attempts).await => continue,
            result => break result?,
        }
    };
    Ok(orders
        .iter()
        .zip(ids)
        .zip(totals)
        .map(|((input, id), total)| Order {
            id,
            account_id: account.to_owned(),
            external_id: input.external_id.clone(),
            destination_country: input.destination_country.clone(),
            destination_region: input.destination_region.clone(),
            destination_postal_code: input.destination_postal_code.clone(),
            total_value_usd: total,
            lines: input
                .lines
                .iter()
                .map(|l| Line {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                    unit_value_micros: l.unit_value_micros,
                })
                .collect(),
        })
        .collect())
}

async fn write(
    db: &Db,
    account: &str,
    orders: &[OrderInput],
    totals: &[Decimal],
) -> AppResult<Vec<String>> {
    let txn = db.begin_write().await?;
    let ids = db::orders::upsert(&*txn, account, orders, totals).await?;
    db::orders::replace_lines(&*txn, orders, &ids).await?;
    txn.commit().await?;
    Ok(ids)
}
