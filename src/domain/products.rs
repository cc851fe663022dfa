//! Products: upsert by (account, externalId); order lines reference them.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use sea_orm::DatabaseTransaction;
use serde::Serialize;

use crate::{
    db::{self, Db, entities::products, products::ProductRow},
    domain::{
        Page, Paging, new_id,
        preview::{Action, Planned, Previewable},
        render, storable,
        sync::Syncable,
        unstorable_filter,
        writer::{self, ItemCounts, Writer},
    },
    error::{AppError, AppResult, Resource},
    state::AppState,
};

/// A product as a client syncs it, already validated.
#[derive(Debug, Clone)]
pub struct ProductInput {
    pub external_id: String,
    pub name: String,
    pub hs_code: Option<String>,
    pub country_of_origin: Option<String>,
    pub description: Option<String>,
}

impl ProductInput {
    /// The row to upsert; a new product gets a fresh ID.
    fn row(&self) -> ProductRow<'_> {
        ProductRow {
            fresh_id: new_id("prod"),
            external_id: &self.external_id,
            name: &self.name,
            hs_code: self.hs_code.as_deref(),
            country_of_origin: self.country_of_origin.as_deref(),
            description: self.description.as_deref(),
        }
    }
}

/// A product as stored, and as a sync answers it (`ProductView` in `api/`
/// documents the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: String,
    pub account_id: String,
    pub external_id: String,
    pub name: String,
    pub hs_code: Option<String>,
    pub country_of_origin: Option<String>,
    pub description: Option<String>,
}

/// A product is unchanged when every field a sync replaces already holds
/// the synced value: the write would store the same product.
impl Previewable for Products {
    async fn plan(
        txn: &DatabaseTransaction,
        account: &str,
        inputs: &[ProductInput],
        _prepared: &(),
    ) -> AppResult<Vec<Planned>> {
        let external_ids: Vec<&str> = inputs.iter().map(|p| p.external_id.as_str()).collect();
        let mut stored = db::products::by_external_ids(txn, account, &external_ids).await?;
        Ok(inputs
            .iter()
            .map(|input| {
                let (id, action) = match stored.remove(&input.external_id) {
                    None => (None, Action::Create),
                    Some(p) => {
                        let same = p.name == input.name
                            && p.hs_code == input.hs_code
                            && p.country_of_origin == input.country_of_origin
                            && p.description == input.description;
                        let action = if same {
                            Action::Unchanged
                        } else {
                            Action::Update
                        };
                        (Some(p.id), action)
                    }
                };
                Planned {
                    external_id: input.external_id.clone(),
                    id,
                    action,
                    total_value_usd: None,
                }
            })
            .collect())
    }
}

/// Products as a resource of the sync use case and its writer: upsert by
/// (account, externalId); a re-sync replaces every field.
pub struct Products;

impl writer::Resource for Products {
    type Input = ProductInput;
    type Prepared = ();
    const NAME: &'static str = "product";

    fn prepare(_inputs: &[ProductInput]) -> AppResult<()> {
        Ok(())
    }

    fn external_id(input: &ProductInput) -> &str {
        &input.external_id
    }

    /// One upsert of all the products.
    async fn write(
        txn: &DatabaseTransaction,
        account: &str,
        syncs: &[(&[ProductInput], &())],
    ) -> AppResult<(Vec<String>, ItemCounts)> {
        let rows: Vec<ProductRow<'_>> = syncs
            .iter()
            .flat_map(|(inputs, _)| inputs.iter().map(ProductInput::row))
            .collect();
        let ids = db::products::upsert(txn, account, &rows).await?;
        // A product keeps its ID: one that got the fresh ID is new. A
        // re-sync rewrites every field, so none is unchanged.
        let created = rows
            .iter()
            .zip(&ids)
            .filter(|(r, id)| r.fresh_id == **id)
            .count() as u64;
        let counts = ItemCounts {
            created,
            updated: ids.len() as u64 - created,
            unchanged: 0,
        };
        let mut ids = ids.into_iter();
        let bodies = syncs
            .iter()
            .map(|(inputs, _)| {
                let synced: Vec<Product> = inputs
                    .iter()
                    .zip(ids.by_ref())
                    .map(|(p, id)| Product {
                        id,
                        account_id: account.to_owned(),
                        external_id: p.external_id.clone(),
                        name: p.name.clone(),
                        hs_code: p.hs_code.clone(),
                        country_of_origin: p.country_of_origin.clone(),
                        description: p.description.clone(),
                    })
                    .collect();
                render(&synced)
            })
            .collect();
        Ok((bodies, counts))
    }
}

impl Syncable for Products {
    const OPERATION: &'static str = "syncProducts";

    fn writer(state: &AppState) -> &Writer<Self> {
        &state.product_writer
    }
}

/// Products known to exist, by (account, product ID). A product is never
/// deleted and never changes account (a sync upserts by account and
/// external ID and keeps the ID), so once seen it stays valid on every
/// instance: the cache can only miss, never lie. Bounded: cleared when full.
#[derive(Debug, Default, Clone)]
pub struct KnownProducts(Arc<Mutex<HashSet<(String, String)>>>);

/// Entries before the cache starts over.
const KNOWN_PRODUCTS_MAX: usize = 100_000;

/// Which of `ids` name no product of `account` (another account's products
/// count as unknown). Only IDs not seen before cost a query.
pub async fn unknown_ids(
    db: &Db,
    known: &KnownProducts,
    account: &str,
    ids: &[&str],
) -> AppResult<HashSet<String>> {
    let misses: Vec<&str> = {
        let cache = known.0.lock().expect("product cache");
        ids.iter()
            .copied()
            // An ID holding U+0000 is an issue of its own already.
            .filter(|id| storable(id))
            .filter(|id| !cache.contains(&(account.to_owned(), (*id).to_owned())))
            .collect()
    };
    if misses.is_empty() {
        return Ok(HashSet::new());
    }
    let found = db::products::existing_ids(db.conn(), account, &misses).await?;
    let mut cache = known.0.lock().expect("product cache");
    if cache.len() + found.len() > KNOWN_PRODUCTS_MAX {
        cache.clear();
    }
    cache.extend(found.iter().map(|id| (account.to_owned(), id.clone())));
    Ok(misses
        .into_iter()
        .filter(|id| !found.contains(*id))
        .map(str::to_owned)
        .collect())
}

/// One product of the account; another account's product is as missing as
/// an unknown ID.
pub async fn get(db: &Db, account: &str, id: &str) -> AppResult<Product> {
    if !storable(id) {
        return Err(AppError::NotFound(Resource::Product));
    }
    db::products::find(db.conn(), account, id)
        .await?
        .map(Product::from)
        .ok_or(AppError::NotFound(Resource::Product))
}

/// A page of the account's products in ID order, after the ID `after`.
pub async fn list(
    db: &Db,
    account: &str,
    external_id: Option<&str>,
    paging: Paging<'_>,
) -> AppResult<Page<Product>> {
    if external_id.is_some_and(|e| !storable(e)) {
        return Err(unstorable_filter("externalId"));
    }
    let Paging { after, limit } = paging;
    let mut rows = db::products::page(db.conn(), account, external_id, after, limit + 1).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let items: Vec<Product> = rows.into_iter().map(Product::from).collect();
    let next_after = more.then(|| items.last().map(|p| p.id.clone())).flatten();
    Ok(Page { items, next_after })
}

impl From<products::Model> for Product {
    fn from(p: products::Model) -> Self {
        Self {
            id: p.id,
            account_id: p.account_id,
            external_id: p.external_id,
            name: p.name,
            hs_code: p.hs_code,
            country_of_origin: p.country_of_origin,
            description: p.description,
        }
    }
}
