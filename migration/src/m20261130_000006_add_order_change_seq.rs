use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The change feed's position of an order: where its latest change sits
/// in commit order (`GET /api/orders/changes`).
///
/// - PostgreSQL: the 64-bit ID of the transaction that last changed the
///   order. Transactions from several processes commit out of ID order, so
///   the feed serves only changes of transactions older than its
///   snapshot's `xmin` (all finished). The column's default stamps inserts;
///   the upsert sets it on updates.
/// - SQLite: a counter, `change_counter`, advanced once by each write
///   transaction. Writes take the database's write lock when they begin,
///   so the counter follows commit order.
///
/// Existing orders are stamped by this migration (PostgreSQL) or with 0
/// (SQLite): either way a feed from the start delivers them.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = match manager.get_database_backend() {
            DbBackend::Postgres => big_integer(Orders::ChangeSeq)
                .default(Expr::cust("(pg_current_xact_id()::text::bigint)"))
                .to_owned(),
            _ => big_integer(Orders::ChangeSeq).default(0).to_owned(),
        };
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(column)
                    .to_owned(),
            )
            .await?;
        // A page of the feed is one range of this index.
        manager
            .create_index(
                Index::create()
                    .name("ix_orders_account_change_seq")
                    .table(Orders::Table)
                    .col(Orders::AccountId)
                    .col(Orders::ChangeSeq)
                    .col(Orders::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ChangeCounter::Table)
                    .col(integer(ChangeCounter::Id).primary_key())
                    .col(big_integer(ChangeCounter::Value))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(ChangeCounter::Table)
                    .columns([ChangeCounter::Id, ChangeCounter::Value])
                    .values_panic([1.into(), 0.into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ChangeCounter::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_orders_account_change_seq")
                    .table(Orders::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .drop_column(Orders::ChangeSeq)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    AccountId,
    ChangeSeq,
}

#[derive(DeriveIden)]
enum ChangeCounter {
    Table,
    Id,
    Value,
}
