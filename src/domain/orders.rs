//! Orders: upsert by (account, externalId), full replacement of line items,
//! exact totals, one transaction per request.

use std::{str::FromStr, sync::Arc};

use rust_decimal::Decimal;
use serde_json::Value;

use sea_orm::DatabaseTransaction;
use serde::Serialize;

use crate::{
    db::{
        self, Db,
        orders::{LineOf, LineRow, OrderHead, OrderRow, OrderWithLines, Written},
    },
    domain::{
        Page, Paging, digest, money, new_id,
        preview::{Action, Planned, Previewable},
        products, render, storable,
        sync::{Syncable, batch_items},
        unstorable_filter,
        writer::{self, ItemCounts, Writer},
    },
    error::{AppError, AppResult, Issue, Resource},
    state::AppState,
};

/// Which orders a listing returns.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub external_id: Option<String>,
    pub updated_since: Option<chrono::DateTime<chrono::FixedOffset>>,
}

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

/// An order as stored, and as a sync answers it (the response body is
/// this, serialised; `OrderView` in `api/` documents the same shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: String,
    pub account_id: String,
    pub external_id: String,
    pub destination_country: String,
    pub destination_region: Option<String>,
    pub destination_postal_code: Option<String>,
    #[serde(serialize_with = "money::serialize_usd")]
    pub total_value_usd: Decimal,
    #[serde(rename = "items")]
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub product_id: String,
    pub quantity: i64,
    #[serde(rename = "unitValueUsd", serialize_with = "money::serialize_micros")]
    pub unit_value_micros: i64,
}

impl OrderInput {
    /// Σ quantity × unit value.
    pub fn total(&self) -> AppResult<Decimal> {
        money::total(self.lines.iter().map(|l| (l.quantity, l.unit_value_micros)))
            .ok_or_else(|| anyhow::anyhow!("order total overflows").into())
    }

    /// SHA-256 (hex) of everything a sync stores for the order: destination,
    /// metadata as written, lines in order. Equal hashes mean a re-sync would
    /// store exactly what is there, so it writes nothing. Metadata keys in
    /// another order count as a change (stored as sent), which only costs
    /// a write.
    pub fn content_hash(&self) -> String {
        let lines: Vec<(&str, i64, i64)> = self
            .lines
            .iter()
            .map(|l| (l.product_id.as_str(), l.quantity, l.unit_value_micros))
            .collect();
        digest::json_sha256_hex(&(
            "order.v1",
            &self.destination_country,
            &self.destination_region,
            &self.destination_postal_code,
            &self.metadata,
            lines,
        ))
    }
}

/// Orders as a resource of the sync use case and its writer.
pub struct Orders;

/// What a request computes for its orders before they are queued.
pub struct Prepared {
    totals: Vec<Decimal>,
    /// [`OrderInput::content_hash`] of each order.
    hashes: Vec<String>,
}

/// Largest metadata object, as compact JSON in UTF-8 bytes.
pub const METADATA_MAX_BYTES: usize = 64 * 1024;

impl writer::Resource for Orders {
    type Input = OrderInput;
    type Prepared = Prepared;
    const NAME: &'static str = "order";

    fn prepare(inputs: &[OrderInput]) -> AppResult<Prepared> {
        Ok(Prepared {
            totals: inputs
                .iter()
                .map(OrderInput::total)
                .collect::<AppResult<_>>()?,
            hashes: inputs.iter().map(OrderInput::content_hash).collect(),
        })
    }

    fn external_id(input: &OrderInput) -> &str {
        &input.external_id
    }

    /// One upsert of all the orders, one replacement of all their lines.
    async fn write(
        txn: &DatabaseTransaction,
        account: &str,
        syncs: &[(&[OrderInput], &Prepared)],
    ) -> AppResult<(Vec<String>, ItemCounts)> {
        let rows: Vec<OrderRow<'_>> = syncs
            .iter()
            .flat_map(|(inputs, prepared)| {
                inputs
                    .iter()
                    .zip(&prepared.totals)
                    .zip(&prepared.hashes)
                    .map(|((o, total), hash)| o.row(total, hash))
            })
            .collect();
        let ids = db::orders::upsert(txn, account, &rows).await?;
        // The answers are rendered while the database writes the lines:
        // the statement is on the driver's side (SQLite's thread,
        // PostgreSQL's server) once `replace_lines` first waits.
        let render_answers = async {
            let mut ids = ids.iter();
            syncs
                .iter()
                .map(|(inputs, prepared)| {
                    let synced: Vec<Order> = inputs
                        .iter()
                        .zip(ids.by_ref())
                        .zip(&prepared.totals)
                        .map(|((input, (id, _)), total)| {
                            input.to_order(id.clone(), account, *total)
                        })
                        .collect();
                    render(&synced)
                })
                .collect::<Vec<String>>()
        };
        let (written, bodies) =
            futures_util::join!(db::orders::replace_lines(txn, &rows, &ids), render_answers);
        written?;
        let mut counts = ItemCounts::default();
        for (_, written) in &ids {
            match written {
                Written::Inserted => counts.created += 1,
                Written::Updated => counts.updated += 1,
                Written::Unchanged => counts.unchanged += 1,
            }
        }
        Ok((bodies, counts))
    }
}

impl Previewable for Orders {
    /// An order is unchanged when its stored content hash is the one the
    /// upsert would write, exactly the upsert's own test.
    async fn plan(
        txn: &DatabaseTransaction,
        account: &str,
        inputs: &[OrderInput],
        prepared: &Prepared,
    ) -> AppResult<Vec<Planned>> {
        let external_ids: Vec<&str> = inputs.iter().map(|o| o.external_id.as_str()).collect();
        let mut stored = db::orders::stored_hashes(txn, account, &external_ids).await?;
        Ok(inputs
            .iter()
            .zip(&prepared.hashes)
            .zip(&prepared.totals)
            .map(|((input, hash), total)| {
                let (id, action) = match stored.remove(&input.external_id) {
                    None => (None, Action::Create),
                    Some((id, Some(stored))) if stored == *hash => (Some(id), Action::Unchanged),
                    Some((id, _)) => (Some(id), Action::Update),
                };
                Planned {
                    external_id: input.external_id.clone(),
                    id,
                    action,
                    total_value_usd: Some(*total),
                }
            })
            .collect())
    }
}

impl Syncable for Orders {
    const OPERATION: &'static str = "syncOrders";

    fn writer(state: &AppState) -> &Writer<Self> {
        &state.order_writer
    }

    /// Metadata over 64 KiB as compact JSON.
    fn body_rules(body: &Value) -> Vec<Issue> {
        batch_items(body)
            .enumerate()
            .filter_map(|(i, order)| {
                let metadata = order.get("metadata").filter(|m| m.is_object())?;
                let size = serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len());
                (size > METADATA_MAX_BYTES).then(|| {
                    Issue::new(
                        format!("items.{i}.metadata"),
                        "too_big",
                        format!(
                            "Metadata must be at most {METADATA_MAX_BYTES} bytes as compact JSON"
                        ),
                    )
                })
            })
            .collect()
    }

    /// Line items whose `productId` names no product of the account.
    async fn stored_rules(state: &AppState, account: &str, body: &Value) -> AppResult<Vec<Issue>> {
        // (order, line, product ID); a path is written only for an issue.
        let refs: Vec<(usize, usize, &str)> = batch_items(body)
            .enumerate()
            .flat_map(|(i, order)| {
                batch_items(order).enumerate().filter_map(move |(j, line)| {
                    let id = line.get("productId")?.as_str().filter(|s| !s.is_empty())?;
                    Some((i, j, id))
                })
            })
            .collect();
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<&str> = refs.iter().map(|(_, _, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let unknown =
            products::unknown_ids(&state.db, &state.known_products, account, &ids).await?;
        Ok(refs
            .into_iter()
            .filter(|(_, _, id)| unknown.contains(*id))
            .map(|(i, j, id)| {
                Issue::new(
                    format!("items.{i}.items.{j}.productId"),
                    "custom",
                    format!("Unknown productId {id} in this account"),
                )
            })
            .collect())
    }
}

impl OrderInput {
    /// The row to upsert; a new order gets a fresh ID.
    pub(crate) fn row<'a>(&'a self, total: &Decimal, hash: &'a str) -> OrderRow<'a> {
        OrderRow {
            fresh_id: new_id("ord"),
            external_id: &self.external_id,
            destination_country: &self.destination_country,
            destination_region: self.destination_region.as_deref(),
            destination_postal_code: self.destination_postal_code.as_deref(),
            metadata: self.metadata.as_ref(),
            total_value_usd: total.to_string(),
            content_hash: hash,
            lines: self.line_rows(),
        }
    }

    /// The lines to write, in request order.
    pub(crate) fn line_rows(&self) -> Vec<LineRow<'_>> {
        self.lines
            .iter()
            .map(|l| LineRow {
                product_id: &l.product_id,
                quantity: l.quantity,
                unit_value_micros: l.unit_value_micros,
            })
            .collect()
    }

    pub(crate) fn to_order(&self, id: String, account: &str, total: Decimal) -> Order {
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

/// One order of the account as its JSON text, in the sync response's
/// shape; another account's order is as missing as an unknown ID.
///
/// Never stale, whichever instance wrote last: an order this process has
/// rendered is answered from `cache` only when the database still holds it
/// at the version it was rendered at ([`db::orders::version`], a read of one
/// indexed row); otherwise it is read whole, rendered and remembered.
pub async fn get(db: &Db, cache: &ReadCache, account: &str, id: &str) -> AppResult<String> {
    if !storable(id) {
        return Err(AppError::NotFound(Resource::Order));
    }
    if let Some(cached) = cache.get(account, id) {
        match db::orders::version(db.conn(), account, id).await? {
            Some(version) if version == cached.version => return Ok(cached.body.clone()),
            Some(_) => {}
            None => return Err(AppError::NotFound(Resource::Order)),
        }
    }
    let found = db::orders::find(db.conn(), account, id)
        .await?
        .ok_or(AppError::NotFound(Resource::Order))?;
    let version = found.version;
    let body =
        serde_json::to_string(&from_rows(found.head, found.lines)?).expect("an order serialises");
    cache.remember(account, id, version, &body);
    Ok(body)
}

/// Orders this process has rendered for `GET /api/orders/{id}`, by account
/// and ID, each with the version (`change_seq`) it was read at. A `GET`
/// checks the version before answering from it ([`get`]), so the cache
/// only saves reading and rendering the order again: for PostgreSQL one
/// indexed row instead of a join, for both backends one value decoded
/// instead of a row per line. Bounded by size (`--order-cache-mb`); 0
/// turns it off.
#[derive(Clone)]
pub struct ReadCache(Option<Arc<RenderedOrders>>);

/// Rendered orders by (account, ID).
type RenderedOrders = quick_cache::sync::Cache<(String, String), Arc<Rendered>, RenderedWeight>;

/// An order's JSON text at a version.
#[derive(Debug)]
struct Rendered {
    version: i64,
    body: String,
}

#[derive(Clone)]
struct RenderedWeight;

impl quick_cache::Weighter<(String, String), Arc<Rendered>> for RenderedWeight {
    /// Bytes held, roughly: the key's and body's text and the entry's
    /// allocations.
    fn weight(&self, key: &(String, String), rendered: &Arc<Rendered>) -> u64 {
        (key.0.len() + key.1.len() + rendered.body.len() + 96) as u64
    }
}

impl ReadCache {
    /// A cache of up to `bytes` of rendered orders (0: none).
    pub fn new(bytes: u64) -> Self {
        Self((bytes > 0).then(|| {
            Arc::new(quick_cache::sync::Cache::with_weighter(
                (bytes / 512).max(1) as usize,
                bytes,
                RenderedWeight,
            ))
        }))
    }

    fn get(&self, account: &str, id: &str) -> Option<Arc<Rendered>> {
        self.0.as_ref()?.get(&(account.to_owned(), id.to_owned()))
    }

    fn remember(&self, account: &str, id: &str, version: i64, body: &str) {
        if let Some(cache) = &self.0 {
            cache.insert(
                (account.to_owned(), id.to_owned()),
                Arc::new(Rendered {
                    version,
                    body: body.to_owned(),
                }),
            );
        }
    }
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("entries", &self.0.as_ref().map_or(0, |c| c.len()))
            .finish()
    }
}

/// A page of the account's orders in ID order, after the ID `after`: one
/// statement (two when `updatedSince` matches many), each order with its
/// lines, so the page is one snapshot.
pub async fn list(
    db: &Db,
    account: &str,
    filter: &OrderFilter,
    paging: Paging<'_>,
) -> AppResult<Page<Order>> {
    if filter.external_id.as_deref().is_some_and(|e| !storable(e)) {
        return Err(unstorable_filter("externalId"));
    }
    let Paging { after, limit } = paging;
    let mut orders = db::orders::page(
        db.conn(),
        account,
        filter.external_id.as_deref(),
        filter.updated_since,
        after,
        limit + 1,
    )
    .await?;
    let more = orders.len() as u64 > limit;
    orders.truncate(limit as usize);
    let items = orders
        .into_iter()
        .map(from_row)
        .collect::<AppResult<Vec<_>>>()?;
    let next_after = more.then(|| items.last().map(|o| o.id.clone())).flatten();
    Ok(Page { items, next_after })
}

/// An order of a page as the domain answers it.
pub(super) fn from_row(order: OrderWithLines) -> AppResult<Order> {
    let (order, lines) = order.into_parts()?;
    from_rows(order, lines)
}

/// An order as the domain answers it, from its stored row and lines.
fn from_rows(order: OrderHead, lines: Vec<LineOf>) -> AppResult<Order> {
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
            .map(|(product_id, quantity, unit_value_micros)| Line {
                product_id,
                quantity,
                unit_value_micros,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Content hashes are stored with orders: a re-sync after an upgrade
    /// must hash as before, or every unchanged order would be rewritten.
    #[test]
    fn content_hashes_are_stable_across_versions() {
        let line = |product_id: &str, quantity, unit_value_micros| LineInput {
            product_id: product_id.into(),
            quantity,
            unit_value_micros,
        };
        let mut order = OrderInput {
            external_id: "A-1".into(),
            destination_country: "US".into(),
            destination_region: Some("C\"A\u{e9}\n".into()),
            destination_postal_code: None,
            metadata: Some(serde_json::json!({"z": true, "a": [1.50, {"b": null}]})),
            lines: vec![line("prd_1", 3, 10_500_000), line("prd_2", 1, 1)],
        };
        assert_eq!(
            order.content_hash(),
            "fe017d1a7dd7616fb4ef9bb4fabe9a9b10c0ee77811c96e5b8d961c09fc8e93a"
        );
        order.metadata = None;
        assert_eq!(
            order.content_hash(),
            "2551a02eee050fc2ba89afdd76bb47a3bd720dfbbeb7b60b1fc356b2fa795ae0"
        );
    }
}
