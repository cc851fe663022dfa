//! Orders: upsert by (account, externalId), full replacement of line items,
//! exact totals, one transaction per request.

use std::{collections::HashMap, str::FromStr, sync::Arc};

use rust_decimal::Decimal;
use serde_json::Value;

pub use crate::db::orders::OrderFilter;
use crate::{
    db::{
        self, Db,
        entities::{order_items, orders},
    },
    domain::{MAX_PAGE, Page, Render, execute_sync, money},
    error::{AppError, AppResult, Resource},
    idempotency::{Idempotent, Outcome},
    state::AppState,
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
/// the caller) in one transaction and answers `render(orders)`, the orders
/// in request order. With `idem`, a completed earlier request is replayed
/// instead, and the answer is stored with the writes.
#[tracing::instrument(skip_all, fields(account_id = %account, orders = orders.len()))]
pub async fn sync(
    state: &AppState,
    account: &str,
    orders: Vec<OrderInput>,
    idem: Option<Idempotent>,
    render: Render<Order>,
) -> AppResult<Outcome> {
    let totals = orders
        .iter()
        .map(OrderInput::total)
        .collect::<AppResult<Vec<_>>>()?;
    let job = Arc::new(SyncJob {
        state: state.clone(),
        account: account.to_owned(),
        orders,
        totals,
        idem: idem.clone(),
        render,
    });
    execute_sync(state, account, idem.as_ref(), move || {
        let job = job.clone();
        async move { job.write().await }
    })
    .await
}

struct SyncJob {
    state: AppState,
    account: String,
    orders: Vec<OrderInput>,
    totals: Vec<Decimal>,
    idem: Option<Idempotent>,
    render: Render<Order>,
}

impl SyncJob {
    async fn write(&self) -> AppResult<Outcome> {
        let (account, idem) = (self.account.as_str(), self.idem.as_ref());
        let txn = self.state.db.begin_write().await?;
        if let Some(replay) = self.state.idempotency.recheck(&*txn, account, idem).await? {
            return Ok(replay);
        }
        let ids = db::orders::upsert(&*txn, account, &self.orders, &self.totals).await?;
        db::orders::replace_lines(&*txn, &self.orders, &ids).await?;
        let synced: Vec<Order> = self
            .orders
            .iter()
            .zip(ids)
            .zip(&self.totals)
            .map(|((input, id), total)| input.to_order(id, account, *total))
            .collect();
        let body = (self.render)(&synced);
        self.state
            .idempotency
            .complete(&*txn, account, idem, &body)
            .await?;
        txn.commit().await?;
        Ok(Outcome {
            body,
            replayed: false,
        })
    }
}

impl OrderInput {
    fn to_order(&self, id: String, account: &str, total: Decimal) -> Order {
        Order {
            id,
            account_id: account.to_owned(),
            external_id: self.external_id.clone(),
            destination_country: self.destination_country.clone(),
            destination_region: self.destination_region.clone(),
            destination_postal_code: self.destination_postal_code.clone(),
            total_value_usd: total,
            lines: self
                .lines
                .iter()
                .map(|l| Line {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                    unit_value_micros: l.unit_value_micros,
                })
                .collect(),
        }
    }
}

/// One order of the account; another account's order is as missing as an
/// unknown ID.
pub async fn get(db: &Db, account: &str, id: &str) -> AppResult<Order> {
    let (order, lines) = db::orders::find_with_lines(db.conn(), account, id)
        .await?
        .ok_or(AppError::NotFound(Resource::Order))?;
    from_rows(order, lines)
}

/// A page of the account's orders in ID order, after the ID `after`.
pub async fn list(
    db: &Db,
    account: &str,
    filter: &OrderFilter,
    after: Option<&str>,
    limit: u64,
) -> AppResult<Page<Order>> {
    let limit = limit.clamp(1, MAX_PAGE);
    // One snapshot for the orders and their lines.
    let txn = db.begin_read().await?;
    let mut orders = db::orders::page(&txn, account, filter, after, limit + 1).await?;
    let more = orders.len() as u64 > limit;
    orders.truncate(limit as usize);
    let ids: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
    let mut lines_by_order: HashMap<String, Vec<order_items::Model>> = HashMap::new();
    for line in db::orders::lines_of(&txn, &ids).await? {
        lines_by_order
            .entry(line.order_id.clone())
            .or_default()
            .push(line);
    }
    txn.commit().await?;
    let items = orders
        .into_iter()
        .map(|o| {
            let lines = lines_by_order.remove(&o.id).unwrap_or_default();
            from_rows(o, lines)
        })
        .collect::<AppResult<Vec<_>>>()?;
    let next_after = more.then(|| items.last().map(|o| o.id.clone())).flatten();
    Ok(Page { items, next_after })
}

fn from_rows(order: orders::Model, lines: Vec<order_items::Model>) -> AppResult<Order> {
    let total = Decimal::from_str(&order.total_value_usd)
        .map_err(|e| anyhow::anyhow!("stored total of {} is not a decimal: {e}", order.id))?;
    Ok(Order {
        id: order.id,
        account_id: order.account_id,
        external_id: order.external_id,
        destination_country: order.destination_country,
        destination_region: order.destination_region,
        destination_postal_code: order.destination_postal_code,
        total_value_usd: total,
        lines: lines
            .into_iter()
            .map(|l| Line {
                product_id: l.product_id,
                quantity: l.quantity,
                unit_value_micros: l.unit_value_micros,
            })
            .collect(),
    })
}
