//! Migrations that rebuild or alter tables holding data: applied to a
//! database that has rows, and rolled back, on both backends.

use entrygo::db::{Db, accounts, entities::order_items};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbBackend, EntityTrait, QueryOrder, Statement};

use crate::{helpers::Backend, test_database::TestDatabase};

/// The foreign keys of `order_items`, by the column they constrain.
async fn item_foreign_keys(db: &Db) -> Vec<String> {
    let sql = match db.backend() {
        DbBackend::Postgres => {
            "SELECT kcu.column_name AS col FROM information_schema.table_constraints tc \
             JOIN information_schema.key_column_usage kcu USING (constraint_name, table_name) \
             WHERE tc.table_name = 'order_items' AND tc.constraint_type = 'FOREIGN KEY' \
             ORDER BY col"
        }
        _ => "SELECT \"from\" AS col FROM pragma_foreign_key_list('order_items') ORDER BY col",
    };
    db.conn()
        .query_all_raw(Statement::from_string(db.backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "col").unwrap())
        .collect()
}

async fn lines(db: &Db) -> Vec<(i64, String, i32, String)> {
    order_items::Entity::find()
        .order_by_asc(order_items::Column::Id)
        .all(db.conn())
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.id, l.order_id, l.position, l.product_id))
        .collect()
}

async fn lines_lose_their_foreign_keys_and_keep_their_rows(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return crate::helpers::postgres_missing();
    };
    let db = Db::connect(&database.url, 2).await.unwrap();
    // The schema before `m20261201_000008_drop_order_item_foreign_keys`.
    Migrator::up(db.conn(), Some(7)).await.unwrap();
    accounts::insert_account(db.conn(), "acc_m", "M")
        .await
        .unwrap();
    accounts::ensure_products(db.conn(), "acc_m", &[("prd_m1", "m1", "One")])
        .await
        .unwrap();
    let now = "2026-12-01T00:00:00+00:00";
    db.conn()
        .execute_raw(Statement::from_string(
            db.backend(),
            format!(
                "INSERT INTO orders (id, account_id, external_id, destination_country, \
                 total_value_usd, created_at, updated_at, change_seq) \
                 VALUES ('ord_m1', 'acc_m', 'm-1', 'US', '3', '{now}', '{now}', 1)"
            ),
        ))
        .await
        .unwrap();
    let line = |position: i32| order_items::ActiveModel {
        order_id: Set("ord_m1".into()),
        position: Set(position),
        product_id: Set("prd_m1".into()),
        quantity: Set(1),
        unit_value_micros: Set(1_000_000),
        ..Default::default()
    };
    order_items::Entity::insert_many([line(0), line(1), line(2)])
        .exec(db.conn())
        .await
        .unwrap();
    let before = lines(&db).await;
    assert_eq!(item_foreign_keys(&db).await, ["order_id", "product_id"]);

    Migrator::up(db.conn(), None).await.unwrap();
    assert!(item_foreign_keys(&db).await.is_empty());
    assert_eq!(lines(&db).await, before);
    // IDs go on after the copied rows; (order_id, position) is still unique.
    order_items::Entity::insert(line(3))
        .exec(db.conn())
        .await
        .unwrap();
    assert!(lines(&db).await[3].0 > before[2].0);
    assert!(
        order_items::Entity::insert(line(3))
            .exec(db.conn())
            .await
            .is_err()
    );

    Migrator::down(db.conn(), Some(1)).await.unwrap();
    assert_eq!(item_foreign_keys(&db).await, ["order_id", "product_id"]);
    assert_eq!(lines(&db).await.len(), 4);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_lines_lose_their_foreign_keys_and_keep_their_rows_sqlite() {
    lines_lose_their_foreign_keys_and_keep_their_rows(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_lines_lose_their_foreign_keys_and_keep_their_rows_postgres() {
    lines_lose_their_foreign_keys_and_keep_their_rows(Backend::Postgres).await;
}
