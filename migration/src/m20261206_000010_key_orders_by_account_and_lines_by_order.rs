use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Two keys change, each to the index the rows were already found by, so
/// that every order and line written maintains one index fewer:
/// - `orders` is keyed by `(account_id, id)`, which replaces both the key
///   on `id` and the listing index `ix_orders_account_id` on the same two
///   columns. Every read of an order names its account, so the key serves
///   `GET` by ID, pages and the join of lines alike.
/// - `order_items` is keyed by `(order_id, position)`, which was already
///   unique (`ux_order_items_order_position`); the surrogate `id`, its
///   sequence and its key go. Nothing read a line by that `id`.
///
/// On PostgreSQL, in a bulk sync's statement log, these two indexes and
/// the sequence were about a sixth of the database's time per request
/// (README, "Performance"). On SQLite the lines' table is `WITHOUT ROWID`:
/// its rows live in the key's own tree, so a line is one tree insert
/// instead of two.
///
/// SQLite cannot change a table's key: both tables are rebuilt, in one
/// transaction (a rebuild is never left half done), as in
/// `m20261201_000008_drop_order_item_foreign_keys`.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                manager
                    .get_connection()
                    .execute_unprepared(
                        r#"ALTER TABLE "orders" DROP CONSTRAINT "orders_pkey",
                               ADD CONSTRAINT "orders_pkey" PRIMARY KEY ("account_id", "id");
                           DROP INDEX "ix_orders_account_id";
                           ALTER TABLE "order_items" DROP CONSTRAINT "order_items_pkey", DROP COLUMN "id";
                           ALTER TABLE "order_items" ADD CONSTRAINT "order_items_pkey"
                               PRIMARY KEY USING INDEX "ux_order_items_order_position";"#,
                    )
                    .await?;
                Ok(())
            }
            _ => rebuild_sqlite_tables(manager, true).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                manager
                    .get_connection()
                    .execute_unprepared(
                        r#"ALTER TABLE "order_items" DROP CONSTRAINT "order_items_pkey";
                           CREATE UNIQUE INDEX "ux_order_items_order_position"
                               ON "order_items" ("order_id", "position");
                           ALTER TABLE "order_items" ADD COLUMN "id" bigserial NOT NULL PRIMARY KEY;
                           ALTER TABLE "orders" DROP CONSTRAINT "orders_pkey",
                               ADD CONSTRAINT "orders_pkey" PRIMARY KEY ("id");
                           CREATE INDEX "ix_orders_account_id" ON "orders" ("account_id", "id");"#,
                    )
                    .await?;
                Ok(())
            }
            _ => rebuild_sqlite_tables(manager, false).await,
        }
    }
}

/// Rebuilds `orders` and `order_items` on SQLite, keyed by their parents
/// (`composite`) or as migration 9 left them, with their indexes.
async fn rebuild_sqlite_tables(manager: &SchemaManager<'_>, composite: bool) -> Result<(), DbErr> {
    let orders = Orders::Table.into_iden();
    rebuild_sqlite(manager, orders, orders_table(composite), order_columns()).await?;
    for index in order_indexes(!composite) {
        manager.create_index(index).await?;
    }
    let lines = OrderItems::Table.into_iden();
    rebuild_sqlite(manager, lines, lines_table(composite), line_columns()).await?;
    if !composite {
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
            .await?;
    }
    Ok(())
}

/// `orders` as migrations 3, 5, 6 and 9 left it on SQLite, keyed by
/// `(account_id, id)` (`composite`) or by `id`.
fn orders_table(composite: bool) -> TableCreateStatement {
    let mut id = string(Orders::Id);
    if !composite {
        id.primary_key();
    }
    let mut table = Table::create()
        .table(Rebuilt::Table)
        .col(id)
        .col(string(Orders::AccountId))
        .col(string(Orders::ExternalId))
        .col(string(Orders::DestinationCountry))
        .col(string_null(Orders::DestinationRegion))
        .col(string_null(Orders::DestinationPostalCode))
        .col(json_binary_null(Orders::Metadata))
        .col(string(Orders::TotalValueUsd))
        .col(timestamp_with_time_zone(Orders::CreatedAt))
        .col(timestamp_with_time_zone(Orders::UpdatedAt))
        .col(string_null(Orders::ContentHash))
        .col(big_integer(Orders::ChangeSeq).default(0))
        .col(text_null(Orders::Lines))
        .col(big_integer(Orders::LinesSeq).default(-1))
        .foreign_key(
            ForeignKey::create()
                .name("fk_orders_account")
                .from(Rebuilt::Table, Orders::AccountId)
                .to(Accounts::Table, Accounts::Id),
        )
        .to_owned();
    if composite {
        table.primary_key(Index::create().col(Orders::AccountId).col(Orders::Id));
    }
    table
}

/// The indexes a rebuilt `orders` gets back: all it had but its key, and
/// `ix_orders_account_id` only where the key is not `(account_id, id)`.
fn order_indexes(with_account_id: bool) -> Vec<IndexCreateStatement> {
    let mut indexes = vec![
        Index::create()
            .name("ux_orders_account_external_id")
            .table(Orders::Table)
            .col(Orders::AccountId)
            .col(Orders::ExternalId)
            .unique()
            .to_owned(),
        Index::create()
            .name("ix_orders_account_updated_at")
            .table(Orders::Table)
            .col(Orders::AccountId)
            .col(Orders::UpdatedAt)
            .col(Orders::Id)
            .to_owned(),
        Index::create()
            .name("ix_orders_account_change_seq")
            .table(Orders::Table)
            .col(Orders::AccountId)
            .col(Orders::ChangeSeq)
            .col(Orders::Id)
            .to_owned(),
    ];
    if with_account_id {
        indexes.push(
            Index::create()
                .name("ix_orders_account_id")
                .table(Orders::Table)
                .col(Orders::AccountId)
                .col(Orders::Id)
                .to_owned(),
        );
    }
    indexes
}

/// `order_items` on SQLite, keyed by `(order_id, position)` without a rowid
/// (`composite`), or by a surrogate `id` as migration 8 left it.
fn lines_table(composite: bool) -> TableCreateStatement {
    let mut table = Table::create().table(Rebuilt::Table).to_owned();
    if !composite {
        table.col(big_pk_auto(OrderItems::Id));
    }
    table
        .col(string(OrderItems::OrderId))
        .col(integer(OrderItems::Position))
        .col(string(OrderItems::ProductId))
        .col(big_integer(OrderItems::Quantity))
        .col(big_integer(OrderItems::UnitValueMicros));
    if composite {
        table
            .primary_key(
                Index::create()
                    .col(OrderItems::OrderId)
                    .col(OrderItems::Position),
            )
            .extra("WITHOUT ROWID");
    }
    table
}

/// Copies `columns` of `old` into the table `new` creates, and puts it in
/// `old`'s place. The old table's indexes go with it.
async fn rebuild_sqlite(
    manager: &SchemaManager<'_>,
    old: DynIden,
    new: TableCreateStatement,
    columns: Vec<DynIden>,
) -> Result<(), DbErr> {
    manager.create_table(new).await?;
    manager
        .exec_stmt(
            Query::insert()
                .into_table(Rebuilt::Table)
                .columns(columns.clone())
                .select_from(
                    Query::select()
                        .columns(columns)
                        .from(old.clone())
                        .to_owned(),
                )
                .map_err(|e| DbErr::Migration(e.to_string()))?
                .to_owned(),
        )
        .await?;
    manager
        .drop_table(Table::drop().table(old.clone()).to_owned())
        .await?;
    manager
        .rename_table(Table::rename().table(Rebuilt::Table, old).to_owned())
        .await
}

/// The columns both shapes of `orders` have.
fn order_columns() -> Vec<DynIden> {
    use Orders::*;
    [
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
        ContentHash,
        ChangeSeq,
        Lines,
        LinesSeq,
    ]
    .into_iter()
    .map(IntoIden::into_iden)
    .collect()
}

/// The columns both shapes of `order_items` have (not the surrogate `id`).
fn line_columns() -> Vec<DynIden> {
    use OrderItems::*;
    [OrderId, Position, ProductId, Quantity, UnitValueMicros]
        .into_iter()
        .map(IntoIden::into_iden)
        .collect()
}

#[derive(DeriveIden, Clone, Copy)]
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
    ContentHash,
    ChangeSeq,
    Lines,
    LinesSeq,
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
enum Accounts {
    Table,
    Id,
}

/// The name a table is built under before it takes the old one's.
#[derive(DeriveIden)]
enum Rebuilt {
    Table,
}
