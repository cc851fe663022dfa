//! Idempotency records.

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Statement,
    sea_query::{OnConflict, Query, UnionType},
};

use crate::db::entities::idempotency_keys;

/// A stored record, as read.
#[derive(Debug, Clone)]
pub struct Record {
    pub account_id: String,
    pub operation: String,
    pub key: String,
    pub request_hash: String,
    pub status: u16,
    pub response_body: String,
    pub expires_at_ms: i64,
}

/// A record to store.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub account_id: &'a str,
    pub operation: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
    pub status: u16,
    pub response_body: &'a str,
}

/// The unexpired records of these scopes (account, operation, key) in one
/// round trip: one primary-key look-up per scope, joined by `UNION ALL` (an
/// IN list over the three columns was planned as a scan while the table's
/// statistics were young). Returns the records found.
pub async fn find_live_many(
    conn: &impl ConnectionTrait,
    scopes: &[(&str, &str, &str)],
    now_ms: i64,
) -> Result<Vec<Record>, DbErr> {
    use idempotency_keys::Column as C;
    let mut found = Vec::with_capacity(scopes.len());
    // SQLite allows 500 terms in a compound SELECT.
    for chunk in scopes.chunks(100) {
        let mut lookups = chunk.iter().map(|(account, operation, key)| {
            Query::select()
                .columns([
                    C::AccountId,
                    C::Operation,
                    C::Key,
                    C::RequestHash,
                    C::Status,
                    C::ResponseBody,
                    C::ExpiresAtMs,
                ])
                .from(idempotency_keys::Entity)
                .and_where(C::AccountId.eq(*account))
                .and_where(C::Operation.eq(*operation))
                .and_where(C::Key.eq(*key))
                .and_where(C::ExpiresAtMs.gt(now_ms))
                .to_owned()
        });
        let Some(mut query) = lookups.next() else {
            continue;
        };
        query.unions(lookups.map(|q| (UnionType::All, q)));
        for row in conn.query_all(&query).await? {
            let status: i32 = row.try_get("", "status")?;
            found.push(Record {
                account_id: row.try_get("", "account_id")?,
                operation: row.try_get("", "operation")?,
                key: row.try_get("", "key")?,
                request_hash: row.try_get("", "request_hash")?,
                status: u16::try_from(status).unwrap_or(200),
                response_body: row.try_get("", "response_body")?,
                expires_at_ms: row.try_get("", "expires_at_ms")?,
            });
        }
    }
    Ok(found)
}

/// Stores responses, replacing expired records of the same scopes: one
/// statement.
pub async fn save(
    conn: &impl ConnectionTrait,
    records: &[NewRecord<'_>],
    expires_at_ms: i64,
) -> Result<(), DbErr> {
    if records.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now().fixed_offset();
    let rows = records.iter().map(|r| idempotency_keys::ActiveModel {
        account_id: Set(r.account_id.to_owned()),
        operation: Set(r.operation.to_owned()),
        key: Set(r.key.to_owned()),
        request_hash: Set(r.request_hash.to_owned()),
        status: Set(i32::from(r.status)),
        response_body: Set(r.response_body.to_owned()),
        created_at: Set(now),
        expires_at_ms: Set(expires_at_ms),
    });
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
    idempotency_keys::Entity::insert_many(rows)
        .on_conflict(on_conflict)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// PostgreSQL only: tries to take locks held until the transaction ends,
/// one per ID, in one statement; each `false` means another transaction
/// holds that lock (no waiting).
pub async fn try_advisory_xact_locks(
    conn: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<Vec<bool>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let columns: Vec<String> = (1..=ids.len())
        .map(|i| format!("pg_try_advisory_xact_lock(${i}) AS l{i}"))
        .collect();
    let stmt = Statement::from_sql_and_values(
        conn.get_database_backend(),
        format!("SELECT {}", columns.join(", ")),
        ids.iter().map(|&id| id.into()),
    );
    let row = conn
        .query_one_raw(stmt)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("advisory lock result".into()))?;
    (1..=ids.len())
        .map(|i| row.try_get("", &format!("l{i}")))
        .collect()
}

/// Deletes expired records; returns how many.
pub async fn purge_expired(conn: &impl ConnectionTrait, now_ms: i64) -> Result<u64, DbErr> {
    let res = idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::ExpiresAtMs.lte(now_ms))
        .exec(conn)
        .await?;
    Ok(res.rows_affected)
}
