//! Idempotency records.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Statement, sea_query::OnConflict,
};

use crate::{
    db::entities::idempotency_keys,
    idempotency::{Idempotent, Stored},
};

/// The request hash and stored response of an unexpired record.
pub async fn find_live(
    conn: &impl ConnectionTrait,
    account: &str,
    operation: &str,
    key: &str,
    now_ms: i64,
) -> Result<Option<(String, Stored)>, DbErr> {
    let row: Option<(String, i32, String)> = idempotency_keys::Entity::find()
        .select_only()
        .columns([
            idempotency_keys::Column::RequestHash,
            idempotency_keys::Column::Status,
            idempotency_keys::Column::ResponseBody,
        ])
        .filter(idempotency_keys::Column::AccountId.eq(account))
        .filter(idempotency_keys::Column::Operation.eq(operation))
        .filter(idempotency_keys::Column::Key.eq(key))
        .filter(idempotency_keys::Column::ExpiresAtMs.gt(now_ms))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(row.map(|(hash, status, body)| {
        let status = u16::try_from(status).unwrap_or(200);
        (hash, Stored { status, body })
    }))
}

/// Stores a response, replacing an expired record of the same scope.
pub async fn save(
    conn: &impl ConnectionTrait,
    account: &str,
    idem: &Idempotent,
    response: &Stored,
    expires_at_ms: i64,
) -> Result<(), DbErr> {
    let row = idempotency_keys::ActiveModel {
        account_id: Set(account.to_owned()),
        operation: Set(idem.operation.to_owned()),
        key: Set(idem.key.as_str().to_owned()),
        request_hash: Set(idem.fingerprint.clone()),
        status: Set(i32::from(response.status)),
        response_body: Set(response.body.clone()),
        created_at: Set(chrono::Utc::now().fixed_offset()),
        expires_at_ms: Set(expires_at_ms),
    };
    let on_conflict = OnConflict::columns([
        idempotency_keys::Column::AccountId,
        idempotency_keys::Column::Operation,
        idempotency_keys::Column::Key,
    ])
    .update_columns([
        idempotency_keys::Column::RequestHash,
        idempotency_keys::Column::Status,
        idempotency_keys::Column::ResponseBody,
        idempotency_keys::Column::CreatedAt,
        idempotency_keys::Column::ExpiresAtMs,
    ])
    .to_owned();
    idempotency_keys::Entity::insert(row)
        .on_conflict(on_conflict)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// PostgreSQL only: tries to take a lock held until the transaction ends;
/// false, without waiting, when another transaction holds it.
pub async fn try_advisory_xact_lock(conn: &impl ConnectionTrait, id: i64) -> Result<bool, DbErr> {
    let stmt = Statement::from_sql_and_values(
        conn.get_database_backend(),
        "SELECT pg_try_advisory_xact_lock($1) AS locked",
        [id.into()],
    );
    let row = conn
        .query_one_raw(stmt)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("advisory lock result".into()))?;
    row.try_get("", "locked")
}

/// Deletes expired records; returns how many.
pub async fn purge_expired(conn: &impl ConnectionTrait, now_ms: i64) -> Result<u64, DbErr> {
    let res = idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::ExpiresAtMs.lte(now_ms))
        .exec(conn)
        .await?;
    Ok(res.rows_affected)
}
