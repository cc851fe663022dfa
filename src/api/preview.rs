//! `POST /api/orders/sync/preview` and `POST /api/products/sync/preview`:
//! a sync's checks and what its write would do, without writing.

use poem_openapi::{Enum, Object, OpenApi, param::Header, payload::Json};

use crate::{
    api::{
        ApiTags,
        body::SyncBody,
        error::ApiError,
        orders::SyncOrdersRequest,
        products::SyncProductsRequest,
        run_preview,
        types::{IdempotencyKeyHeader, Usd},
    },
    auth::Caller,
    domain::{
        self,
        preview::{Action, Planned, Preview},
    },
};

/// What the sync would do to the item.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum PreviewAction {
    /// A new item: the sync creates it.
    Create,
    /// An existing item whose content differs: the sync updates it.
    Update,
    /// An existing item with the same content: the sync leaves it as it is.
    Unchanged,
}

/// How the sync would treat its idempotency key.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum PreviewIdempotency {
    /// No key, or a key not used yet: the sync would execute.
    New,
    /// The key's earlier request was this one: the sync would replay its
    /// response and change nothing.
    Replay,
}

/// What a sync would do to one order.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct OrderPreview {
    /// The order's `externalId`, as sent.
    pub external_id: String,
    /// The existing EntryGo order ID; `null` for a new order.
    #[oai(nullable)]
    pub id: Option<String>,
    pub action: PreviewAction,
    /// The total the sync would store.
    pub total_value_usd: Usd,
}

/// What a sync would do to one product.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct ProductPreview {
    /// The product's `externalId` (SKU), as sent.
    pub external_id: String,
    /// The existing EntryGo product ID; `null` for a new product.
    #[oai(nullable)]
    pub id: Option<String>,
    pub action: PreviewAction,
}

/// A preview of an order sync.
#[derive(Object, Debug)]
pub struct OrdersPreview {
    /// One entry per item of the request, in request order.
    pub data: Vec<OrderPreview>,
    pub idempotency: PreviewIdempotency,
}

/// A preview of a product sync.
#[derive(Object, Debug)]
pub struct ProductsPreview {
    /// One entry per item of the request, in request order.
    pub data: Vec<ProductPreview>,
    pub idempotency: PreviewIdempotency,
}

#[derive(poem_openapi::ApiResponse)]
pub enum PreviewOrdersResponse {
    /// Every check passed: what the sync would do. Nothing was written.
    #[oai(status = 200)]
    Ok(Json<OrdersPreview>),
}

#[derive(poem_openapi::ApiResponse)]
pub enum PreviewProductsResponse {
    /// Every check passed: what the sync would do. Nothing was written.
    #[oai(status = 200)]
    Ok(Json<ProductsPreview>),
}

pub struct PreviewApi;

#[OpenApi]
impl PreviewApi {
    /// Preview an order sync
    ///
    /// Takes the body of `POST /api/orders/sync` and runs the sync's checks
    /// in the sync's order, with the same errors (product references
    /// included), then answers what the sync would do to each order:
    /// `create`, `update` or `unchanged` (judged from the same content hash
    /// as the sync). Writes nothing and stores no idempotency record; an
    /// `Idempotency-Key` is judged as the sync would judge it (`replay`, or
    /// `422 IDEMPOTENCY_KEY_REUSED`). Reads one snapshot and never waits
    /// for writes.
    #[oai(
        path = "/api/orders/sync/preview",
        method = "post",
        operation_id = "previewOrdersSync",
        tag = "ApiTags::Orders"
    )]
    async fn orders(
        &self,
        caller: Caller<'_>,
        /// The key the sync would carry (1 to 255 visible ASCII
        /// characters); wins over the body's `idempotencyKey`.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKeyHeader>>,
        body: SyncBody<SyncOrdersRequest>,
    ) -> Result<PreviewOrdersResponse, ApiError> {
        let preview = run_preview::<domain::orders::Orders, _>(&caller, body).await?;
        Ok(PreviewOrdersResponse::Ok(Json(OrdersPreview {
            idempotency: idempotency(&preview),
            data: preview.items.into_iter().map(Into::into).collect(),
        })))
    }

    /// Preview a product sync
    ///
    /// Takes the body of `POST /api/products/sync`, runs the sync's checks
    /// with the same errors, and answers what the sync would do to each
    /// product: `create`, `update`, or `unchanged` when every field already
    /// holds the synced value. Writes nothing; an `Idempotency-Key` is
    /// judged as the sync would judge it.
    #[oai(
        path = "/api/products/sync/preview",
        method = "post",
        operation_id = "previewProductsSync",
        tag = "ApiTags::Products"
    )]
    async fn products(
        &self,
        caller: Caller<'_>,
        /// The key the sync would carry; wins over the body's
        /// `idempotencyKey`.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKeyHeader>>,
        body: SyncBody<SyncProductsRequest>,
    ) -> Result<PreviewProductsResponse, ApiError> {
        let preview = run_preview::<domain::products::Products, _>(&caller, body).await?;
        Ok(PreviewProductsResponse::Ok(Json(ProductsPreview {
            idempotency: idempotency(&preview),
            data: preview.items.into_iter().map(Into::into).collect(),
        })))
    }
}

fn idempotency(preview: &Preview) -> PreviewIdempotency {
    if preview.replay {
        PreviewIdempotency::Replay
    } else {
        PreviewIdempotency::New
    }
}

impl From<Action> for PreviewAction {
    fn from(action: Action) -> Self {
        match action {
            Action::Create => PreviewAction::Create,
            Action::Update => PreviewAction::Update,
            Action::Unchanged => PreviewAction::Unchanged,
        }
    }
}

impl From<Planned> for OrderPreview {
    fn from(p: Planned) -> Self {
        Self {
            external_id: p.external_id,
            id: p.id,
            action: p.action.into(),
            total_value_usd: Usd(p.total_value_usd.unwrap_or_default()),
        }
    }
}

impl From<Planned> for ProductPreview {
    fn from(p: Planned) -> Self {
        Self {
            external_id: p.external_id,
            id: p.id,
            action: p.action.into(),
        }
    }
}
