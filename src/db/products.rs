//! Product queries, set-based like the orders'.

use std::collections::{HashMap, HashSet};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::OnConflict,
};

use crate::db::{chunk_rows, entities::products};

/// A product to upsert, as the domain has checked it.
#[derive(Debug, Clone)]
pub struct ProductRow<'a> {
    /// The ID it gets if it is new.
    pub fresh_id: String,
    pub external_id: &'a str,
    pub name: &'a str,
    pub hs_code: Option<&'a str>,
    pub country_of_origin: Option<&'a str>,
    pub description: Option<&'a str>,
}

/// Inserts new products and replaces existing ones by (account,
/// externalId); returns the stable ID of each, in the order of `inputs`.
pub async fn upsert(
    conn: &impl ConnectionTrait,
    account: &str,
    inputs: &[ProductRow<'_>],
) -> Result<Vec<String>, DbErr> {
    let now = chrono::Utc::now().fixed_offset();
    let mut rows: Vec<(&str, products::ActiveModel)> = inputs
        .iter()
        .map(|p| {
            let row = products::ActiveModel {
                id: Set(p.fresh_id.clone()),
                account_id: Set(account.to_owned()),
                external_id: Set(p.external_id.to_owned()),
                name: Set(p.name.to_owned()),
                hs_code: Set(p.hs_code.map(str::to_owned)),
                country_of_origin: Set(p.country_of_origin.map(str::to_owned)),
                description: Set(p.description.map(str::to_owned)),
                created_at: Set(now),
                updated_at: Set(now),
            };
            (p.external_id, row)
        })
        .collect();
    // One lock order for every writer: no deadlocks between batches.
    rows.sort_by(|a, b| a.0.cmp(b.0));

    let on_conflict =
        OnConflict::columns([products::Column::AccountId, products::Column::ExternalId])
            .update_columns([
                products::Column::Name,
                products::Column::HsCode,
                products::Column::CountryOfOrigin,
                products::Column::Description,
                products::Column::UpdatedAt,
            ])
            .to_owned();
    let mut ids: HashMap<String, String> = HashMap::with_capacity(inputs.len());
    let rows: Vec<products::ActiveModel> = rows.into_iter().map(|(_, row)| row).collect();
    for chunk in rows.chunks(chunk_rows(9)) {
        let stored = products::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict.clone())
            .exec_with_returning(conn)
            .await?;
        ids.extend(stored.into_iter().map(|m| (m.external_id, m.id)));
    }
    inputs
        .iter()
        .map(|p| {
            ids.remove(p.external_id).ok_or_else(|| {
                DbErr::RecordNotFound(format!("product {} after upsert", p.external_id))
            })
        })
        .collect()
}

/// The subset of `ids` that are products of `account`.
pub async fn existing_ids(
    conn: &impl ConnectionTrait,
    account: &str,
    ids: &[&str],
) -> Result<HashSet<String>, DbErr> {
    let mut found = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(chunk_rows(1)) {
        let rows: Vec<String> = products::Entity::find()
            .select_only()
            .column(products::Column::Id)
            .filter(products::Column::AccountId.eq(account))
            .filter(products::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(conn)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

/// One product of the account.
pub async fn find(
    conn: &impl ConnectionTrait,
    account: &str,
    id: &str,
) -> Result<Option<products::Model>, DbErr> {
    products::Entity::find_by_id(id)
        .filter(products::Column::AccountId.eq(account))
        .one(conn)
        .await
}

/// Up to `limit` products of the account after the ID `after`, in ID order
/// (keyset pagination, as for orders).
pub async fn page(
    conn: &impl ConnectionTrait,
    account: &str,
    external_id: Option<&str>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<products::Model>, DbErr> {
    page_query(account, external_id, after, limit)
        .all(conn)
        .await
}

/// The statement of [`page`]: one range of `(account_id, id)` or of
/// `(account_id, external_id)` (the query-plan tests read it).
pub fn page_query(
    account: &str,
    external_id: Option<&str>,
    after: Option<&str>,
    limit: u64,
) -> sea_orm::Select<products::Entity> {
    let mut query = products::Entity::find().filter(products::Column::AccountId.eq(account));
    if let Some(external_id) = external_id {
        query = query.filter(products::Column::ExternalId.eq(external_id));
    }
    if let Some(after) = after {
        query = query.filter(products::Column::Id.gt(after));
    }
    query.order_by_asc(products::Column::Id).limit(limit)
}

/// The account's products among `external_ids`, by external ID.
pub async fn by_external_ids(
    conn: &impl ConnectionTrait,
    account: &str,
    external_ids: &[&str],
) -> Result<HashMap<String, products::Model>, DbErr> {
    let mut found = HashMap::with_capacity(external_ids.len());
    for chunk in external_ids.chunks(chunk_rows(1)) {
        let rows = products::Entity::find()
            .filter(products::Column::AccountId.eq(account))
            .filter(products::Column::ExternalId.is_in(chunk.iter().copied()))
            .all(conn)
            .await?;
        found.extend(rows.into_iter().map(|p| (p.external_id.clone(), p)));
    }
    Ok(found)
}
