use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each order carries its lines as one JSON text, `lines`
/// (`[[product_id, quantity, unit_value_micros], …]` in position order),
/// written by the upsert that writes the order, beside the `order_items`
/// rows, which stay the lines' rows.
///
/// Pages and the change feed answered the lines by aggregating
/// `order_items` per order: on PostgreSQL that aggregate was four fifths of
/// a page of 200's time in the database (README, "Performance").
///
/// `lines_seq` is the `change_seq` the text was written at. A read uses
/// the text only while the two are equal, and aggregates the rows
/// otherwise: a process of an earlier version, still running beside this
/// one during a deploy, updates an order's rows and `change_seq` but not
/// its text, and it reads as it did. On PostgreSQL the column's default is
/// the transaction's ID, as `change_seq`'s is.
///
/// The existing orders are filled in here, in one statement per backend.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let seq = match backend {
            DbBackend::Postgres => big_integer(Orders::LinesSeq)
                .default(Expr::cust("(pg_current_xact_id()::text::bigint)"))
                .to_owned(),
            _ => big_integer(Orders::LinesSeq).default(-1).to_owned(),
        };
        for column in [text_null(Orders::Lines), seq] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Orders::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        let aggregate = match backend {
            DbBackend::Postgres => {
                r#"(SELECT json_agg(json_build_array("product_id", "quantity", "unit_value_micros") ORDER BY "position")::text FROM "order_items" WHERE "order_items"."order_id" = "orders"."id")"#
            }
            _ => {
                r#"(SELECT json_group_array(json_array("product_id", "quantity", "unit_value_micros")) FROM (SELECT "product_id", "quantity", "unit_value_micros" FROM "order_items" WHERE "order_items"."order_id" = "orders"."id" ORDER BY "position"))"#
            }
        };
        manager
            .get_connection()
            .execute_unprepared(&format!(
                r#"UPDATE "orders" SET "lines" = {aggregate}, "lines_seq" = "change_seq""#
            ))
            .await
            .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Orders::LinesSeq, Orders::Lines] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Orders::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Lines,
    LinesSeq,
}
