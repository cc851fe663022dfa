//! `/api/orders`: the sync endpoint and its wire types.

use chrono::{DateTime, FixedOffset};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use crate::{
    api::{
        body::SyncBody,
        error::{ApiError, GetError, ListError},
        pagination::{FeedToken, OrderCursor, PageSize},
        payload::JsonText,
        resource::resource_types,
        run_sync,
        types::{CountryCode, IdempotencyKeyHeader, Metadata, Quantity, UnitValueUsd, Usd},
    },
    auth::Caller,
    domain::{self, money},
};

/// One order to create or update, matched by `externalId` within the account.
#[derive(Object, Debug)]
#[oai(rename_all = "camelCase")]
pub struct SyncOrderInput {
    /// Your source-system order identifier.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub external_id: String,
    /// Two-letter ISO 3166-1 country code; lower case is accepted and stored
    /// upper case.
    pub destination_country: CountryCode,
    /// Region or state.
    #[oai(validator(max_length = 100), nullable)]
    pub destination_region: Option<String>,
    /// Postal code.
    #[oai(validator(max_length = 32), nullable)]
    pub destination_postal_code: Option<String>,
    /// Line items (1 to 1,000); they replace the order's lines on re-sync.
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub items: Vec<LineItem>,
    /// Source metadata preserved with the order: a JSON object of at most
    /// 64 KiB (compact JSON, UTF-8). Replaced on re-sync. No key or string
    /// in it, at any depth, may contain U+0000, and its numbers must fit a
    /// 64-bit float with at most 1,000 digits.
    #[oai(nullable)]
    pub metadata: Option<Metadata>,
}

/// One order line, in request and response alike.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct LineItem {
    /// Existing EntryGo product ID of your account.
    #[oai(validator(min_length = 1))]
    pub product_id: String,
    /// Quantity for this product: a whole number, 1 to 1,000,000,000.
    pub quantity: Quantity,
    /// Unit value in USD: 0 to 1,000,000,000, at most 6 decimal places, read
    /// exactly as written.
    pub unit_value_usd: UnitValueUsd,
}

/// A synced EntryGo order.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct OrderView {
    /// EntryGo order ID: use it in export planning.
    pub id: String,
    /// Account scope.
    pub account_id: String,
    /// Original source order reference.
    pub external_id: String,
    /// Destination country (ISO 3166-1 alpha-2, upper case).
    pub destination_country: String,
    /// Destination region.
    #[oai(nullable)]
    pub destination_region: Option<String>,
    /// Destination postal code.
    #[oai(nullable)]
    pub destination_postal_code: Option<String>,
    /// Σ quantity × unitValueUsd, in exact decimal arithmetic.
    pub total_value_usd: Usd,
    /// Normalized line items, in request order.
    pub items: Vec<LineItem>,
}

resource_types! {
    /// Body of `POST /api/orders/sync`. No string in it (`metadata` keys and
    /// values included) may contain U+0000: PostgreSQL cannot store it, so it
    /// is an `invalid_string` issue at the field's path.
    request: SyncOrdersRequest {
        /// Orders to create or update (1 to 1,000), each `externalId` once.
        items: SyncOrderInput,
    },
    /// Synced orders, in the order of the request's `items`.
    result: SyncOrdersResult(OrderView),
    /// Every order was created or updated, in one transaction (an order
    /// whose content is unchanged is left as it is, and answered the same
    /// way). With an idempotency key, a retry of the same request gets this
    /// same response again, byte for byte, and writes nothing.
    sync: SyncOrdersResponse,
    /// A page of orders.
    page: OrderList,
    /// The order, in the sync response's shape.
    get: GetOrderResponse(domain::orders::Order),
    /// One page of orders.
    list: ListOrdersResponse,
}

pub struct OrdersApi;

#[OpenApi(prefix_path = "/api/orders", tag = "super::ApiTags::Orders")]
impl OrdersApi {
    /// Sync orders
    ///
    /// Creates or updates orders by `externalId` within the authenticated
    /// account, replaces their line items, recalculates `totalValueUsd`, and
    /// returns the EntryGo order IDs that export planning expects. The
    /// request is atomic: all orders are written, or none.
    #[oai(path = "/sync", method = "post", operation_id = "syncOrders")]
    async fn sync(
        &self,
        caller: Caller<'_>,
        /// Idempotency key of this order sync, for retries (1 to 255
        /// visible ASCII characters); wins over the body's `idempotencyKey`.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKeyHeader>>,
        body: SyncBody<SyncOrdersRequest>,
    ) -> Result<SyncOrdersResponse, ApiError> {
        Ok(run_sync::<domain::orders::Orders, _>(&caller, body)
            .await?
            .into())
    }

    /// Get an order
    ///
    /// One order of the authenticated account by its EntryGo ID, in the
    /// sync response's shape. Another account's order answers
    /// `404 ORDER_NOT_FOUND`, exactly like an unknown ID.
    #[oai(path = "/:id", method = "get", operation_id = "getOrder")]
    async fn get(
        &self,
        caller: Caller<'_>,
        /// EntryGo order ID (`ord_…`).
        id: Path<String>,
    ) -> Result<GetOrderResponse, GetError> {
        let state = &caller.state;
        let body =
            domain::orders::get(&state.db, &state.order_reads, &caller.account, &id.0).await?;
        Ok(GetOrderResponse::Ok(JsonText::from_text(body)))
    }

    /// List orders
    ///
    /// The authenticated account's orders in a stable order (by ID), one
    /// page at a time: a full walk with `cursor` returns every order exactly
    /// once, even while orders are being synced. Filter by `externalId` to
    /// recover the EntryGo ID after an ambiguous write. For incremental
    /// sync, follow `GET /api/orders/changes`.
    #[oai(path = "/", method = "get", operation_id = "listOrders")]
    async fn list(
        &self,
        caller: Caller<'_>,
        /// Only the order with this external reference.
        #[oai(name = "externalId", validator(min_length = 1, max_length = 255))]
        external_id: Query<Option<String>>,
        /// Only orders created or updated at or after this instant (RFC 3339).
        /// A re-sync with unchanged content is not an update. Approximate:
        /// an order's time is taken before its write commits, so a pull can
        /// miss orders being written meanwhile. Not for incremental sync:
        /// follow `GET /api/orders/changes` instead.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<DateTime<FixedOffset>>>,
        /// Page size, 1 to 200.
        #[oai(default)]
        limit: Query<PageSize>,
        /// The `nextCursor` of the previous page: the ID of its last item.
        cursor: Query<Option<OrderCursor>>,
    ) -> Result<ListOrdersResponse, ListError> {
        let filter = domain::orders::OrderFilter {
            external_id: external_id.0,
            updated_since: updated_since.0,
        };
        let page = domain::orders::list(
            &caller.state.db,
            &caller.account,
            &filter,
            limit.0.after(cursor.0.as_ref().map(|c| c.0.as_str())),
        )
        .await?;
        Ok(page.into())
    }

    /// Follow order changes
    ///
    /// The change feed for incremental sync: the account's orders that were
    /// created or changed after `after`, each in its current state, in
    /// commit order. Start without `after`, then pass each page's
    /// `nextToken` as `after`, forever: every order that any instance
    /// acknowledged arrives, in its latest acknowledged state (possibly
    /// after earlier states), whatever the concurrency or the clocks. At
    /// least once: an order may come again, always whole. An unchanged
    /// re-sync is no change. An empty page still has a `nextToken`: poll
    /// with it.
    #[oai(path = "/changes", method = "get", operation_id = "listOrderChanges")]
    async fn changes(
        &self,
        caller: Caller<'_>,
        /// The `nextToken` of the previous page, as it was received (opaque);
        /// absent to start from the beginning.
        after: Query<Option<FeedToken>>,
        /// Page size, 1 to 200.
        #[oai(default)]
        limit: Query<PageSize>,
    ) -> Result<ListOrderChangesResponse, ListError> {
        let changes = domain::changes::list(
            &caller.state.db,
            &caller.account,
            limit.0.after(after.0.as_ref().map(|t| t.0.as_str())),
        )
        .await?;
        Ok(ListOrderChangesResponse::Ok(JsonText::from_text(
            changes.render(),
        )))
    }
}

/// A page of the change feed.
#[derive(Object, Debug)]
#[oai(rename_all = "camelCase")]
pub struct OrderChanges {
    /// Orders created or changed, each in its current state, in commit
    /// order.
    pub data: Vec<OrderView>,
    /// Pass as `after` for the next page; present on every page, even an
    /// empty one.
    pub next_token: String,
}

#[derive(poem_openapi::ApiResponse)]
pub enum ListOrderChangesResponse {
    /// One page of the change feed.
    #[oai(status = 200)]
    Ok(JsonText<OrderChanges>),
}

impl From<SyncOrderInput> for domain::orders::OrderInput {
    fn from(o: SyncOrderInput) -> Self {
        Self {
            external_id: o.external_id,
            destination_country: o.destination_country.0,
            destination_region: o.destination_region,
            destination_postal_code: o.destination_postal_code,
            metadata: o.metadata.map(|m| Value::Object(m.0)),
            lines: o
                .items
                .into_iter()
                .map(|l| domain::orders::LineInput {
                    product_id: l.product_id,
                    quantity: l.quantity.0,
                    unit_value_micros: money::to_micros(l.unit_value_usd.0)
                        .expect("validated: at most 6 decimal places, at most 1e9"),
                })
                .collect(),
        }
    }
}
