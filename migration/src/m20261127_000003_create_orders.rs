use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000001_create_accounts::Accounts;
use crate::m20261127_000002_create_products::Products;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .if_not_exists()
                    .col(string(Orders::Id).primary_key())
                    .col(string(Orders::AccountId))
                    .col(string(Orders::ExternalId))
                    .col(string(Orders::DestinationCountry))
                    .col(string_null(Orders::DestinationRegion))
                    .col(string_null(Orders::DestinationPostalCode))
                    .col(json_binary_null(Orders::Metadata))
                    // Exact decimal text: a total can exceed what i64 micro-dollars
                    // hold, and SQLite would read a DECIMAL through f64.
                    .col(string(Orders::TotalValueUsd))
                    .col(timestamp_with_time_zone(Orders::CreatedAt))
                    .col(timestamp_with_time_zone(Orders::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_orders_account")
                            .from(Orders::Table, Orders::AccountId)
                            .to(Accounts::Table, Accounts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // The upsert's ON CONFLICT target: one order per (account, externalId).
        manager
            .create_index(
                Index::create()
                    .name("ux_orders_account_external_id")
                    .table(Orders::Table)
                    .col(Orders::AccountId)
                    .col(Orders::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrderItems::Table)
                    .if_not_exists()
                    .col(big_pk_auto(OrderItems::Id))
                    .col(string(OrderItems::OrderId))
                    .col(integer(OrderItems::Position))
                    .col(string(OrderItems::ProductId))
                    .col(big_integer(OrderItems::Quantity))
                    // Micro-dollars: at most 1e9 USD × 1e6 fits an i64.
                    .col(big_integer(OrderItems::UnitValueMicros))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_items_order")
                            .from(OrderItems::Table, OrderItems::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_items_product")
                            .from(OrderItems::Table, OrderItems::ProductId)
                            .to(Products::Table, Products::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Lines are read and replaced per order, in request order.
        manager
            .create_index(
                Index::create()
                    .name("ux_order_items_order_position")
                    .table(OrderItems::Table)
                    .col(OrderItems::OrderId)
                    .col(OrderItems::Position)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OrderItems::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Orders::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    AccountId,
    ExternalId,
    DestinationCountry,
    DestinationRegion,
    DestinationPostalCode,
    Metadata,
    TotalValueUsd,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OrderItems {
    Table,
    Id,
    OrderId,
    Position,
    ProductId,
    Quantity,
    UnitValueMicros,
}
