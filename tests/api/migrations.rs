//! Migrations that rebuild or alter tables holding data: applied to a
//! database that has rows, and rolled back, on both backends.

use entrygo::db::{
    Db, accounts,
    entities::{order_items, orders},
};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbBackend, EntityTrait, QueryOrder, Statement};

use crate::{db_probes::rows, helpers::Backend, test_database::TestDatabase};

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
    rows(db.conn(), sql).await
}

/// A fresh database of `backend` with the first `applied` migrations, kept
/// while the returned `TestDatabase` lives; `None` without PostgreSQL.
async fn database_at(backend: Backend, applied: u32) -> Option<(TestDatabase, Db)> {
    let database = TestDatabase::create(backend).await?;
    let db = Db::connect(&database.url, 2).await.unwrap();
    Migrator::up(db.conn(), Some(applied)).await.unwrap();
    Some((database, db))
}

/// Every line as (surrogate `id`, order, position, product), in `id` order:
/// raw SQL, as the `id` is a column of the schemas before
/// `m20261206_000010_key_orders_by_account_and_lines_by_order` only.
async fn lines(db: &Db) -> Vec<(i64, String, i32, String)> {
    let sql = "SELECT id, order_id, position, product_id FROM order_items ORDER BY id";
    rows(db.conn(), sql).await
}

/// Writes an order and its lines as the schema of an earlier migration
/// holds them, column by column (the entities describe the latest one):
/// `lines` are (position, product, quantity), at $1 each.
async fn insert_order_rows(
    db: &Db,
    (account, id, change_seq): (&str, &str, i64),
    lines: &[(i32, &str, i64)],
) {
    let now = "2026-12-01T00:00:00+00:00";
    db.conn()
        .execute_raw(Statement::from_string(
            db.backend(),
            format!(
                "INSERT INTO orders (id, account_id, external_id, destination_country, \
                 total_value_usd, created_at, updated_at, change_seq) \
                 VALUES ('{id}', '{account}', '{id}-ext', 'US', '3', '{now}', '{now}', {change_seq})"
            ),
        ))
        .await
        .unwrap();
    let rows = lines
        .iter()
        .map(|&(position, product, quantity)| order_items::ActiveModel {
            order_id: Set(id.into()),
            position: Set(position),
            product_id: Set(product.into()),
            quantity: Set(quantity),
            unit_value_micros: Set(1_000_000),
        });
    order_items::Entity::insert_many(rows)
        .exec(db.conn())
        .await
        .unwrap();
}

async fn lines_lose_their_foreign_keys_and_keep_their_rows(backend: Backend) {
    // The schema before `m20261201_000008_drop_order_item_foreign_keys`.
    let Some((_database, db)) = database_at(backend, 7).await else {
        return crate::helpers::postgres_missing();
    };
    accounts::insert_account(db.conn(), "acc_m", "M")
        .await
        .unwrap();
    accounts::ensure_products(db.conn(), "acc_m", &[("prd_m1", "m1", "One")])
        .await
        .unwrap();
    insert_order_rows(
        &db,
        ("acc_m", "ord_m1", 1),
        &[(0, "prd_m1", 1), (1, "prd_m1", 1), (2, "prd_m1", 1)],
    )
    .await;
    let line = |position: i32| order_items::ActiveModel {
        order_id: Set("ord_m1".into()),
        position: Set(position),
        product_id: Set("prd_m1".into()),
        quantity: Set(1),
        unit_value_micros: Set(1_000_000),
    };
    let before = lines(&db).await;
    assert_eq!(item_foreign_keys(&db).await, ["order_id", "product_id"]);

    Migrator::up(db.conn(), Some(1)).await.unwrap();
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

/// The lines of the account's orders as a page reads them, by external ID.
async fn page_lines(db: &Db, account: &str) -> Vec<(String, Vec<(String, i64, i64)>)> {
    entrygo::db::orders::page(db.conn(), account, None, None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| {
            let (head, lines) = o.into_parts().unwrap();
            (head.external_id, lines)
        })
        .collect()
}

async fn orders_get_their_lines_as_text(backend: Backend) {
    // The schema before `m20261206_000009_add_order_lines_text`, with an
    // order of three lines written in another order than their positions.
    let Some((_database, db)) = database_at(backend, 8).await else {
        return crate::helpers::postgres_missing();
    };
    accounts::insert_account(db.conn(), "acc_t", "T")
        .await
        .unwrap();
    insert_order_rows(
        &db,
        ("acc_t", "ord_t1", 7),
        &[(2, "prd_c", 3), (0, "prd_a", 1), (1, "prd_b", 2)],
    )
    .await;
    let expected = vec![(
        "ord_t1-ext".to_owned(),
        vec![
            ("prd_a".to_owned(), 1, 1_000_000),
            ("prd_b".to_owned(), 2, 1_000_000),
            ("prd_c".to_owned(), 3, 1_000_000),
        ],
    )];

    // The migration fills in the text, current at the order's version.
    Migrator::up(db.conn(), Some(1)).await.unwrap();
    let order = orders::Entity::find_by_id(("acc_t".to_owned(), "ord_t1".to_owned()))
        .one(db.conn())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.lines_seq, order.change_seq);
    let text: Vec<(String, i64, i64)> =
        serde_json::from_str(order.lines.as_deref().unwrap()).unwrap();
    assert_eq!(text, expected[0].1);
    assert_eq!(page_lines(&db, "acc_t").await, expected);

    // A process of the earlier version changes the lines and the version,
    // not the text: reads answer the rows, not the stale text.
    for sql in [
        "UPDATE order_items SET quantity = 9 WHERE order_id = 'ord_t1' AND position = 1",
        "UPDATE orders SET change_seq = change_seq + 1 WHERE id = 'ord_t1'",
    ] {
        db.conn()
            .execute_raw(Statement::from_string(db.backend(), sql.to_owned()))
            .await
            .unwrap();
    }
    let mut changed = expected.clone();
    changed[0].1[1].1 = 9;
    assert_eq!(page_lines(&db, "acc_t").await, changed);

    // A current text is what reads answer, without reading the rows.
    db.conn()
        .execute_raw(Statement::from_string(
            db.backend(),
            "UPDATE orders SET lines = '[[\"prd_x\",5,1]]', lines_seq = change_seq".to_owned(),
        ))
        .await
        .unwrap();
    assert_eq!(
        page_lines(&db, "acc_t").await,
        [("ord_t1-ext".to_owned(), vec![("prd_x".to_owned(), 5, 1)])]
    );

    // Rolled back, the rows are the lines.
    Migrator::down(db.conn(), Some(1)).await.unwrap();
    assert_eq!(lines(&db).await.len(), 3);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_get_their_lines_as_text_sqlite() {
    orders_get_their_lines_as_text(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_get_their_lines_as_text_postgres() {
    orders_get_their_lines_as_text(Backend::Postgres).await;
}

/// The primary key's columns of `table`, in the key's order.
async fn key_columns(db: &Db, table: &str) -> Vec<String> {
    let sql = match db.backend() {
        DbBackend::Postgres => format!(
            "SELECT a.attname::text AS col FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
             WHERE i.indrelid = '{table}'::regclass AND i.indisprimary \
             ORDER BY array_position(i.indkey::int2[], a.attnum)"
        ),
        _ => {
            format!("SELECT name AS col FROM pragma_table_info('{table}') WHERE pk > 0 ORDER BY pk")
        }
    };
    rows(db.conn(), &sql).await
}

/// The names of `orders`' indexes that migrations named (not the key's).
async fn order_index_names(db: &Db) -> Vec<String> {
    let sql = match db.backend() {
        DbBackend::Postgres => {
            "SELECT indexname::text AS name FROM pg_indexes \
             WHERE tablename = 'orders' AND indexname NOT LIKE '%pkey' ORDER BY name"
        }
        _ => {
            "SELECT name FROM pragma_index_list('orders') \
             WHERE name NOT LIKE 'sqlite_autoindex%' ORDER BY name"
        }
    };
    rows(db.conn(), sql).await
}

/// Every line, by its order and position, with its content.
async fn line_rows(db: &Db) -> Vec<(String, i32, String, i64, i64)> {
    let sql = "SELECT order_id, position, product_id, quantity, unit_value_micros \
               FROM order_items ORDER BY order_id, position";
    rows(db.conn(), sql).await
}

async fn orders_and_lines_are_keyed_by_their_parents(backend: Backend) {
    // The schema before
    // `m20261206_000010_key_orders_by_account_and_lines_by_order`, with
    // orders of two accounts.
    let Some((_database, db)) = database_at(backend, 9).await else {
        return crate::helpers::postgres_missing();
    };
    for account in ["acc_k", "acc_l"] {
        accounts::insert_account(db.conn(), account, "K")
            .await
            .unwrap();
    }
    insert_order_rows(
        &db,
        ("acc_k", "ord_k1", 3),
        &[(1, "prd_b", 2), (0, "prd_a", 1)],
    )
    .await;
    insert_order_rows(&db, ("acc_l", "ord_l1", 4), &[(0, "prd_c", 5)]).await;
    let all_orders = || async {
        orders::Entity::find()
            .order_by_asc(orders::Column::Id)
            .all(db.conn())
            .await
            .unwrap()
    };
    let (orders_before, lines_before) = (all_orders().await, line_rows(&db).await);
    assert_eq!(key_columns(&db, "orders").await, ["id"]);
    assert_eq!(key_columns(&db, "order_items").await, ["id"]);
    let indexes_before = order_index_names(&db).await;
    assert!(indexes_before.contains(&"ix_orders_account_id".to_owned()));

    Migrator::up(db.conn(), Some(1)).await.unwrap();
    assert_eq!(key_columns(&db, "orders").await, ["account_id", "id"]);
    assert_eq!(
        key_columns(&db, "order_items").await,
        ["order_id", "position"]
    );
    let indexes: Vec<String> = indexes_before
        .iter()
        .filter(|n| *n != "ix_orders_account_id")
        .cloned()
        .collect();
    assert_eq!(order_index_names(&db).await, indexes);
    assert_eq!(all_orders().await, orders_before);
    assert_eq!(line_rows(&db).await, lines_before);
    if backend == Backend::Sqlite {
        let sql = "SELECT wr FROM pragma_table_list WHERE name = 'order_items'";
        let without_rowid: Vec<i64> = rows(db.conn(), sql).await;
        assert_eq!(without_rowid, [1], "order_items is WITHOUT ROWID");
    }
    // The keys hold: one line per (order, position), one order per
    // (account, ID); the external ID is still unique within the account.
    let line = order_items::ActiveModel {
        order_id: Set("ord_k1".into()),
        position: Set(1),
        product_id: Set("prd_x".into()),
        quantity: Set(1),
        unit_value_micros: Set(1),
    };
    assert!(
        order_items::Entity::insert(line)
            .exec(db.conn())
            .await
            .is_err()
    );
    for (id, external) in [("ord_k1", "new-ext"), ("ord_k2", "ord_k1-ext")] {
        let sql = format!(
            "INSERT INTO orders (id, account_id, external_id, destination_country, \
             total_value_usd, created_at, updated_at) \
             VALUES ('{id}', 'acc_k', '{external}', 'US', '1', '2026-12-01T00:00:00+00:00', '2026-12-01T00:00:00+00:00')"
        );
        let written = db
            .conn()
            .execute_raw(Statement::from_string(db.backend(), sql))
            .await;
        assert!(written.is_err(), "{id} {external}");
    }
    assert_eq!(all_orders().await, orders_before);

    // Rolled back: the keys, the index and a surrogate ID per line are back.
    Migrator::down(db.conn(), Some(1)).await.unwrap();
    assert_eq!(key_columns(&db, "orders").await, ["id"]);
    assert_eq!(key_columns(&db, "order_items").await, ["id"]);
    assert_eq!(order_index_names(&db).await, indexes_before);
    assert_eq!(all_orders().await, orders_before);
    assert_eq!(line_rows(&db).await, lines_before);
    assert_eq!(lines(&db).await.len(), 3);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_lines_are_keyed_by_their_parents_sqlite() {
    orders_and_lines_are_keyed_by_their_parents(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_lines_are_keyed_by_their_parents_postgres() {
    orders_and_lines_are_keyed_by_their_parents(Backend::Postgres).await;
}

/// The compression method set on `idempotency_keys.response_body` on
/// PostgreSQL (`l` lz4, empty: the server's default); SQLite compresses
/// nothing (`None`).
async fn response_compression(db: &Db) -> Option<String> {
    if db.backend() != DbBackend::Postgres {
        return None;
    }
    let sql = "SELECT attcompression::text AS method FROM pg_attribute \
               WHERE attrelid = 'idempotency_keys'::regclass AND attname = 'response_body'";
    rows(db.conn(), sql).await.pop()
}

async fn stored_responses_get_lz4(backend: Backend) {
    // The schema before
    // `m20261206_000011_compress_stored_responses_with_lz4`.
    let Some((_database, db)) = database_at(backend, 10).await else {
        return crate::helpers::postgres_missing();
    };
    let default = response_compression(&db).await;
    Migrator::up(db.conn(), Some(1)).await.unwrap();
    let expected = (backend == Backend::Postgres).then(|| "l".to_owned());
    assert_eq!(response_compression(&db).await, expected);
    // Rolled back: the column follows the server's default again.
    Migrator::down(db.conn(), Some(1)).await.unwrap();
    assert_eq!(response_compression(&db).await, default);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_responses_get_lz4_sqlite() {
    stored_responses_get_lz4(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_responses_get_lz4_postgres() {
    stored_responses_get_lz4(Backend::Postgres).await;
}
