//! Every listing query is one index range, whatever the account's size:
//! the statements the app runs, explained by each backend.

use entrygo::db::{changes, orders, products};
use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement, TransactionTrait};

use crate::both_backends;

/// The plan of `stmt` as text, one step per line. On PostgreSQL sequential
/// scans are disabled for the explain, so a usable index is always chosen
/// (a table of a few rows would be scanned whole otherwise): what is shown
/// is whether an index serves the query.
async fn plan(app: &crate::helpers::TestApp, stmt: Statement) -> String {
    let backend = stmt.db_backend;
    let values = stmt.values.map(|v| v.0).unwrap_or_default();
    let (explain, column) = match backend {
        DbBackend::Postgres => ("EXPLAIN", "QUERY PLAN"),
        _ => ("EXPLAIN QUERY PLAN", "detail"),
    };
    let explained =
        Statement::from_sql_and_values(backend, format!("{explain} {}", stmt.sql), values);
    let txn = app.state.db.conn().begin().await.unwrap();
    if backend == DbBackend::Postgres {
        txn.execute_unprepared("SET LOCAL enable_seqscan = off")
            .await
            .unwrap();
    }
    let rows = txn.query_all_raw(explained).await.unwrap();
    txn.rollback().await.unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", column).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// An index range on `orders`/`products`, with no scan of the table and no
/// sort of what it read. An order's own lines may be ordered in their JSON
/// aggregate (SQLite says `USE TEMP B-TREE FOR json_group_array(ORDER BY)`):
/// that sorts the lines of one order, read off `(order_id, position)`.
fn assert_index_range(plan: &str, index: &str, what: &str) {
    // Shown with `--nocapture`.
    eprintln!("{what}:\n{plan}\n");
    assert!(plan.contains(index), "{what}: not on {index}:\n{plan}");
    let plan: String = plan
        .lines()
        .filter(|step| !step.contains("FOR json_group_array(ORDER BY)"))
        .collect::<Vec<_>>()
        .join("\n");
    for whole in [
        "Seq Scan",
        "SCAN orders",
        "SCAN products",
        "TEMP B-TREE",
        "Sort",
    ] {
        assert!(!plan.contains(whole), "{what}: {whole}:\n{plan}");
    }
}

/// Every read of `orders` in `plan` names the account and a second column
/// of its index (`updated_at` of the matches, `id` of the key), and the key
/// is one of them: no step reads all of an account's orders.
fn assert_orders_read_by_two_columns(plan: &str, key: &str) {
    let conditions: Vec<&str> = plan
        .lines()
        .filter(|step| step.contains("account_id"))
        .collect();
    assert!(!conditions.is_empty(), "{plan}");
    for condition in conditions {
        let two = condition.contains(" AND ");
        assert!(two, "a read of the whole account: {condition}\n{plan}");
    }
    assert!(plan.contains(key), "no look-up by {key}:\n{plan}");
}

both_backends! {
    async fn every_listing_query_is_one_index_range(app) {
        let backend = app.state.db.backend();
        let since = chrono::Utc::now().fixed_offset();
        // The key of `orders`, (account_id, id), yields an account's rows in
        // ID order.
        let key = match backend { DbBackend::Postgres => "orders_pkey", _ => "sqlite_autoindex_orders_1" };
        // By externalId, both indexes serve: the unique one finds the row,
        // the key yields the account's rows in order; the planner weighs
        // them on the table's statistics.
        let stmt = orders::page_query(backend, "acc_123", Some("wms-1"), None, None, 201).build(backend);
        let by_external = plan(&app, stmt).await;
        let index = if by_external.contains("ux_orders_account_external_id") { "ux_orders_account_external_id" } else { key };
        assert_index_range(&by_external, index, "orders by externalId");
        let cases = [
            ("orders page", orders::page_query(backend, "acc_123", None, None, Some("ord_x"), 201).build(backend), key),
            ("products page", products::page_query("acc_123", None, Some("prod_x"), 201).build(backend), "ix_products_account_id"),
            ("change feed page", changes::page_query(backend, "acc_123", (5, "ord_x"), 10, 201).build(backend), "ix_orders_account_change_seq"),
        ];
        for (what, stmt, index) in cases {
            assert_index_range(&plan(&app, stmt).await, index, what);
        }
        // updatedSince: a range of (account, updated_at) or of (account, id),
        // never the table.
        let stmt = orders::page_query(backend, "acc_123", None, Some(since), None, 201).build(backend);
        let walk = plan(&app, stmt).await;
        assert!(walk.contains("ix_orders_account_updated_at") || walk.contains(key), "{walk}");
        assert!(!walk.contains("Seq Scan") && !walk.contains("SCAN orders"), "{walk}");
        // The matches of a recent instant: read off (account, updated_at)
        // in its order, and the page's orders each looked up by the whole
        // key. The tables here are small and have no statistics, so the
        // planner believes the account small: a look-up the planner could
        // turn into a read of the account in ID order is that read here.
        let stmt = sea_orm::StatementBuilder::build(&orders::since_page_query(backend, "acc_123", since, Some("ord_x"), 201), &backend);
        let cut = plan(&app, stmt).await;
        eprintln!("updatedSince page cut from the matches:\n{cut}\n");
        assert!(cut.contains("ix_orders_account_updated_at"), "{cut}");
        assert!(!cut.contains("Seq Scan") && !cut.contains("SCAN orders"), "{cut}");
        assert_orders_read_by_two_columns(&cut, key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_connections_never_jit_compile_nor_start_parallel_workers() {
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await else {
        return crate::helpers::postgres_missing();
    };
    // Every pooled connection: the settings are each session's own.
    let sessions: Vec<_> = (0..4).map(|_| app.state.db.conn().begin()).collect();
    for txn in futures_util::future::join_all(sessions).await {
        let txn = txn.unwrap();
        for (setting, expected) in [("jit", "off"), ("max_parallel_workers_per_gather", "0")] {
            let row = txn
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!("SHOW {setting}"),
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                row.try_get::<String>("", setting).unwrap(),
                expected,
                "{setting}"
            );
        }
        txn.rollback().await.unwrap();
    }
}
