use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Order lines lose their two foreign keys (to their order, to their
/// product); the columns, the `(order_id, position)` index and the rows
/// stay.
///
/// PostgreSQL checks a foreign key with a trigger per inserted row, each a
/// query that locks the referenced row (`FOR KEY SHARE`): a 1,000-order
/// sync's 3,000 lines ran 6,000 of them, which tripled the lines' insert
/// (README, "Performance"), and every batch locked the same few product
/// rows, so concurrent batches turned those locks into multixacts. What
/// the keys guarded holds by construction: lines are written in the
/// transaction that upserts their order, nothing deletes an order or a
/// product, and a sync's product references are checked within its
/// account before it is written (`domain::products::unknown_ids`), which
/// is stricter than the key (any account's product satisfied it).
///
/// SQLite cannot drop a constraint: the table is rebuilt without them, in
/// one transaction (a rebuild is never left half done).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for name in [FK_ORDER, FK_PRODUCT] {
                    manager
                        .drop_foreign_key(
                            ForeignKey::drop()
                                .name(name)
                                .table(OrderItems::Table)
                                .to_owned(),
                        )
                        .await?;
                }
                Ok(())
            }
            _ => rebuild_sqlite(manager, false).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for key in foreign_keys() {
                    manager.create_foreign_key(key).await?;
                }
                Ok(())
            }
            _ => rebuild_sqlite(manager, true).await,
        }
    }
}

const FK_ORDER: &str = "fk_order_items_order";
const FK_PRODUCT: &str = "fk_order_items_product";

/// The two keys as `m20261127_000003_create_orders` made them.
fn foreign_keys() -> [ForeignKeyCreateStatement; 2] {
    [
        ForeignKey::create()
            .name(FK_ORDER)
            .from(OrderItems::Table, OrderItems::OrderId)
            .to(Orders::Table, Orders::Id)
            .on_delete(ForeignKeyAction::Cascade)
            .to_owned(),
        ForeignKey::create()
            .name(FK_PRODUCT)
            .from(OrderItems::Table, OrderItems::ProductId)
            .to(Products::Table, Products::Id)
            .to_owned(),
    ]
}

/// Copies `order_items` into a new table of the same columns, with the
/// foreign keys or without, and puts it in the old one's place.
async fn rebuild_sqlite(manager: &SchemaManager<'_>, with_keys: bool) -> Result<(), DbErr> {
    let mut table = Table::create()
        .table(OrderItemsNew::Table)
        .col(big_pk_auto(OrderItems::Id))
        .col(string(OrderItems::OrderId))
        .col(integer(OrderItems::Position))
        .col(string(OrderItems::ProductId))
        .col(big_integer(OrderItems::Quantity))
        .col(big_integer(OrderItems::UnitValueMicros))
        .to_owned();
    if with_keys {
        for mut key in foreign_keys() {
            table.foreign_key(&mut key);
        }
    }
    manager.create_table(table).await?;
    let columns = [
        OrderItems::Id,
        OrderItems::OrderId,
        OrderItems::Position,
        OrderItems::ProductId,
        OrderItems::Quantity,
        OrderItems::UnitValueMicros,
    ];
    manager
        .exec_stmt(
            Query::insert()
                .into_table(OrderItemsNew::Table)
                .columns(columns)
                .select_from(
                    Query::select()
                        .columns(columns)
                        .from(OrderItems::Table)
                        .to_owned(),
                )
                .map_err(|e| DbErr::Migration(e.to_string()))?
                .to_owned(),
        )
        .await?;
    manager
        .drop_table(Table::drop().table(OrderItems::Table).to_owned())
        .await?;
    manager
        .rename_table(
            Table::rename()
                .table(OrderItemsNew::Table, OrderItems::Table)
                .to_owned(),
        )
        .await?;
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

#[derive(DeriveIden, Clone, Copy)]
enum OrderItems {
    Table,
    Id,
    OrderId,
    Position,
    ProductId,
    Quantity,
    UnitValueMicros,
}

#[derive(DeriveIden)]
enum OrderItemsNew {
    Table,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
}
