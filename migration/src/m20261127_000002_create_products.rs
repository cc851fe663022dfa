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
                    .table(Products::Table)
                    .if_not_exists()
                    .col(string(Products::Id).primary_key())
                    .col(string(Products::AccountId))
                    .col(string(Products::ExternalId))
                    .col(string(Products::Name))
                    .col(string_null(Products::HsCode))
                    .col(string_null(Products::CountryOfOrigin))
                    .col(text_null(Products::Description))
                    .col(timestamp_with_time_zone(Products::CreatedAt))
                    .col(timestamp_with_time_zone(Products::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_products_account")
                            .from(Products::Table, Products::AccountId)
                            .to(Accounts::Table, Accounts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // The upsert's ON CONFLICT target.
        manager
            .create_index(
                Index::create()
                    .name("ux_products_account_external_id")
                    .table(Products::Table)
                    .col(Products::AccountId)
                    .col(Products::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Products::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Products {
    Table,
    Id,
    AccountId,
    ExternalId,
    Name,
    HsCode,
    CountryOfOrigin,
    Description,
    CreatedAt,
    UpdatedAt,
}
