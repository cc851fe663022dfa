//! Accounts and API keys.

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, OnConflict},
};

use crate::db::entities::{accounts, api_keys, products};

pub async fn account_exists(conn: &impl ConnectionTrait, id: &str) -> Result<bool, DbErr> {
    Ok(accounts::Entity::find_by_id(id).one(conn).await?.is_some())
}

/// Inserts an account unless one with `id` exists; true when inserted.
pub async fn insert_account(
    conn: &impl ConnectionTrait,
    id: &str,
    name: &str,
) -> Result<bool, DbErr> {
    let row = accounts::ActiveModel {
        id: Set(id.to_owned()),
        name: Set(name.to_owned()),
        created_at: Set(chrono::Utc::now().fixed_offset()),
    };
    let inserted = accounts::Entity::insert(row)
        .on_conflict_do_nothing_on([accounts::Column::Id])
        .exec_without_returning(conn)
        .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0))
}

pub async fn insert_key(
    conn: &impl ConnectionTrait,
    key_id: &str,
    account: &str,
    key_hash: &str,
) -> Result<(), DbErr> {
    let row = api_keys::ActiveModel {
        id: Set(key_id.to_owned()),
        account_id: Set(account.to_owned()),
        key_hash: Set(key_hash.to_owned()),
        created_at: Set(chrono::Utc::now().fixed_offset()),
        revoked_at: Set(None),
    };
    api_keys::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The account of the unrevoked key with this hash: one indexed read
/// (`domain::accounts::KeyCache` decides how often).
pub async fn account_of_key(
    conn: &impl ConnectionTrait,
    key_hash: &str,
) -> Result<Option<String>, DbErr> {
    api_keys::Entity::find()
        .select_only()
        .column(api_keys::Column::AccountId)
        .filter(api_keys::Column::KeyHash.eq(key_hash))
        .filter(api_keys::Column::RevokedAt.is_null())
        .into_tuple()
        .one(conn)
        .await
}

/// Marks a key revoked; false when no such key exists.
pub async fn revoke_key(conn: &impl ConnectionTrait, key_id: &str) -> Result<bool, DbErr> {
    let found = api_keys::Entity::find_by_id(key_id)
        .one(conn)
        .await?
        .is_some();
    if found {
        api_keys::Entity::update_many()
            .col_expr(
                api_keys::Column::RevokedAt,
                Expr::value(chrono::Utc::now().fixed_offset()),
            )
            .filter(api_keys::Column::Id.eq(key_id))
            .filter(api_keys::Column::RevokedAt.is_null())
            .exec(conn)
            .await?;
    }
    Ok(found)
}

/// Inserts products with fixed IDs unless they exist (the demo set).
pub async fn ensure_products(
    conn: &impl ConnectionTrait,
    account: &str,
    products: &[(&str, &str, &str)],
) -> Result<(), DbErr> {
    let now = chrono::Utc::now().fixed_offset();
    let rows = products
        .iter()
        .map(|(id, external_id, name)| products::ActiveModel {
            id: Set((*id).to_owned()),
            account_id: Set(account.to_owned()),
            external_id: Set((*external_id).to_owned()),
            name: Set((*name).to_owned()),
            hs_code: Set(None),
            country_of_origin: Set(None),
            description: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        });
    products::Entity::insert_many(rows)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}
