//! `/api/products`: the sync endpoint and its wire types.

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{Object, OpenApi};

use crate::{
    api::{
        body::SyncBody,
        error::{ApiError, GetError, ListError},
        pagination::{PageSize, ProductCursor},
        resource::resource_types,
        run_sync,
        types::{CountryCode, HsCode, IdempotencyKeyHeader},
    },
    auth::Caller,
    domain,
};

/// One product to create or update, matched by `externalId` (your SKU)
/// within the account. A re-sync replaces every field: an optional field
/// left out becomes `null`.
#[derive(Object, Debug)]
#[oai(rename_all = "camelCase")]
pub struct SyncProductInput {
    /// Your SKU.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub external_id: String,
    /// Product name.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub name: String,
    /// Harmonized System code: 6 to 10 digits.
    #[oai(nullable)]
    pub hs_code: Option<HsCode>,
    /// Country of origin (ISO 3166-1 alpha-2); stored upper case.
    #[oai(nullable)]
    pub country_of_origin: Option<CountryCode>,
    /// Customs description, at most 2,000 characters.
    #[oai(validator(max_length = 2000), nullable)]
    pub description: Option<String>,
}

/// A synced EntryGo product.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct ProductView {
    /// EntryGo product ID: reference it as `productId` on order lines.
    pub id: String,
    /// Account scope.
    pub account_id: String,
    /// Your SKU.
    pub external_id: String,
    pub name: String,
    #[oai(nullable)]
    pub hs_code: Option<String>,
    #[oai(nullable)]
    pub country_of_origin: Option<String>,
    #[oai(nullable)]
    pub description: Option<String>,
}

resource_types! {
    /// Body of `POST /api/products/sync`. No string in it may contain U+0000:
    /// PostgreSQL cannot store it, so it is an `invalid_string` issue at the
    /// field's path.
    request: SyncProductsRequest {
        /// Products to create or update (1 to 1,000), each `externalId` once.
        items: SyncProductInput,
    },
    /// Synced products, in the order of the request's `items`.
    result: SyncProductsResult(ProductView),
    /// Every product was created or updated, in one transaction. With an
    /// idempotency key, a retry of the same request gets this same response
    /// again, byte for byte, and writes nothing.
    sync: SyncProductsResponse,
    /// A page of products.
    page: ProductList,
    /// The product, in the sync response's shape.
    get: GetProductResponse(domain::products::Product),
    /// One page of products.
    list: ListProductsResponse,
}

pub struct ProductsApi;

#[OpenApi(prefix_path = "/api/products", tag = "super::ApiTags::Products")]
impl ProductsApi {
    /// Sync products
    ///
    /// Creates or updates products by `externalId` within the authenticated
    /// account and returns their EntryGo product IDs, which order lines
    /// reference as `productId`. Atomic: all products are written, or none.
    #[oai(path = "/sync", method = "post", operation_id = "syncProducts")]
    async fn sync(
        &self,
        caller: Caller<'_>,
        /// Idempotency key of this product sync, for retries (1 to 255
        /// visible ASCII characters); wins over the body's `idempotencyKey`.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKeyHeader>>,
        body: SyncBody<SyncProductsRequest>,
    ) -> Result<SyncProductsResponse, ApiError> {
        Ok(run_sync::<domain::products::Products, _>(&caller, body)
            .await?
            .into())
    }

    /// Get a product
    ///
    /// One product of the authenticated account by its EntryGo ID. Another
    /// account's product answers `404 PRODUCT_NOT_FOUND`, exactly like an
    /// unknown ID.
    #[oai(path = "/:id", method = "get", operation_id = "getProduct")]
    async fn get(
        &self,
        caller: Caller<'_>,
        /// EntryGo product ID (`prod_…`).
        id: Path<String>,
    ) -> Result<GetProductResponse, GetError> {
        Ok(
            domain::products::get(&caller.state.db, &caller.account, &id.0)
                .await?
                .into(),
        )
    }

    /// List products
    ///
    /// The authenticated account's products in a stable order (by ID), one
    /// page at a time; filter by `externalId` (the SKU).
    #[oai(path = "/", method = "get", operation_id = "listProducts")]
    async fn list(
        &self,
        caller: Caller<'_>,
        /// Only the product with this SKU.
        #[oai(name = "externalId", validator(min_length = 1, max_length = 255))]
        external_id: Query<Option<String>>,
        /// Page size, 1 to 200.
        #[oai(default)]
        limit: Query<PageSize>,
        /// The `nextCursor` of the previous page: the ID of its last item.
        cursor: Query<Option<ProductCursor>>,
    ) -> Result<ListProductsResponse, ListError> {
        let page = domain::products::list(
            &caller.state.db,
            &caller.account,
            external_id.0.as_deref(),
            limit.0.after(cursor.0.as_ref().map(|c| c.0.as_str())),
        )
        .await?;
        Ok(page.into())
    }
}

impl From<SyncProductInput> for domain::products::ProductInput {
    fn from(p: SyncProductInput) -> Self {
        Self {
            external_id: p.external_id,
            name: p.name,
            hs_code: p.hs_code.map(|h| h.0),
            country_of_origin: p.country_of_origin.map(|c| c.0),
            description: p.description,
        }
    }
}
