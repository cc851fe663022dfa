//! Products: upsert by (account, externalId); order lines reference them.

use std::collections::HashSet;

use crate::{
    db::{self, Db},
    domain::should_retry,
    error::AppResult,
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

/// A product as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: String,
    pub account_id: String,
    pub external_id: String,
    pub name: String,
    pub hs_code: Option<String>,
    pub country_of_origin: Option<String>,
    pub description: Option<String>,
}

/// Upserts `products` (external IDs unique) in one transaction; returns
/// them in request order. A re-sync replaces every field.
#[tracing::instrument(skip_all, fields(account_id = %account, products = products.len()))]
pub async fn sync(db: &Db, account: &str, products: &[ProductInput]) -> AppResult<Vec<Product>> {
    let mut attempts = 1;
    let ids = loop {
        match write(db, account, products).await {
            Err(e) if should_retry(&e, &mut attempts).await => continue,
            result => break result?,
        }
    };
    Ok(products
        .iter()
        .zip(ids)
        .map(|(p, id)| Product {
            id,
            account_id: account.to_owned(),
            external_id: p.external_id.clone(),
            name: p.name.clone(),
            hs_code: p.hs_code.clone(),
            country_of_origin: p.country_of_origin.clone(),
            description: p.description.clone(),
        })
        .collect())
}

/// Which of `ids` name no product of `account` (another account's products
/// count as unknown).
pub async fn unknown_ids(db: &Db, account: &str, ids: &[&str]) -> AppResult<HashSet<String>> {
    let known = db::products::existing_ids(db.conn(), account, ids).await?;
    Ok(ids
        .iter()
        .filter(|id| !known.contains(**id))
        .map(|id| (*id).to_owned())
        .collect())
}

async fn write(db: &Db, account: &str, products: &[ProductInput]) -> AppResult<Vec<String>> {
    let txn = db.begin_write().await?;
    let ids = db::products::upsert(&*txn, account, products).await?;
    txn.commit().await?;
    Ok(ids)
}
