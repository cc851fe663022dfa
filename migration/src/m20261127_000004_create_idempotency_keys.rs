use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000001_create_accounts::Accounts;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .if_not_exists()
                    .col(string(IdempotencyKeys::AccountId))
                    .col(string(IdempotencyKeys::Operation))
                    .col(string(IdempotencyKeys::Key))
                    // SHA-256 of the canonical request body, hex.
                    .col(string(IdempotencyKeys::RequestHash))
                    .col(integer(IdempotencyKeys::Status))
                    .col(text(IdempotencyKeys::ResponseBody))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    // Milliseconds since the Unix epoch: compared and purged
                    // the same way on both backends.
                    .col(big_integer(IdempotencyKeys::ExpiresAtMs))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::AccountId)
                            .col(IdempotencyKeys::Operation)
                            .col(IdempotencyKeys::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_idempotency_keys_account")
                            .from(IdempotencyKeys::Table, IdempotencyKeys::AccountId)
                            .to(Accounts::Table, Accounts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // The purge deletes by expiry.
        manager
            .create_index(
                Index::create()
                    .name("ix_idempotency_keys_expires_at_ms")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::ExpiresAtMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    AccountId,
    Operation,
    Key,
    RequestHash,
    Status,
    ResponseBody,
    CreatedAt,
    ExpiresAtMs,
}
