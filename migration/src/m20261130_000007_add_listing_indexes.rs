use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Listings are keyset pages in ID order within one account. Without these,
/// no index yields an account's rows in ID order, so every page sorted the
/// whole account: a page's cost grew with the account. With them a page is
/// one index range:
/// - `(account_id, id)`: orders and products, plain and after a cursor;
/// - `(account_id, updated_at, id)`: orders with `updatedSince`.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("ix_orders_account_id", Orders::Table.into_iden()),
            ("ix_orders_account_updated_at", Orders::Table.into_iden()),
            ("ix_products_account_id", Products::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        Index::create()
            .name("ix_orders_account_id")
            .table(Orders::Table)
            .col(Orders::AccountId)
            .col(Orders::Id)
            .to_owned(),
        Index::create()
            .name("ix_orders_account_updated_at")
            .table(Orders::Table)
            .col(Orders::AccountId)
            .col(Orders::UpdatedAt)
            .col(Orders::Id)
            .to_owned(),
        Index::create()
            .name("ix_products_account_id")
            .table(Products::Table)
            .col(Products::AccountId)
            .col(Products::Id)
            .to_owned(),
    ]
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    AccountId,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    AccountId,
}
