use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{
        Backend, ServerProcess, batch, body_json, order, seed_order_request, spawn_app_with,
    },
};

both_backends! {
    async fn health_probes_answer_without_a_key(app) {
        for path in ["/healthz", "/readyz"] {
            let resp = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            assert_eq!(body_json(resp).await, json!({"status": "ok"}));
        }
    }

    async fn request_ids_are_honoured_or_made_and_always_returned(app) {
        let resp = app.client.get(app.url("/healthz")).header("x-request-id", "client-req-42").send().await.unwrap();
        assert_eq!(resp.headers()["x-request-id"], "client-req-42");
        let resp = app.client.get(app.url("/nope")).send().await.unwrap();
        let made = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(made.len(), 36);
        let again = app.client.get(app.url("/nope")).send().await.unwrap();
        assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), made);
        // Too long, or with spaces: replaced.
        for bad in ["x".repeat(129), "has space".to_owned()] {
            let resp = app.client.post(app.url("/api/orders/sync")).header("x-request-id", &bad).send().await.unwrap();
            assert_eq!(resp.status(), 401);
            assert_ne!(resp.headers()["x-request-id"].to_str().unwrap(), bad);
        }
    }
}

async fn readyz_follows_the_database(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |_| {}).await else {
        return crate::helpers::postgres_missing();
    };
    let ready = || async { app.client.get(app.url("/readyz")).send().await.unwrap() };
    assert_eq!(ready().await.status(), 200);
    let admin_url = std::env::var(crate::helpers::POSTGRES_ENV).ok();
    let name = app.database_url.rsplit('/').next().unwrap().to_owned();
    // Take the database away…
    match backend {
        Backend::Postgres => {
            use sea_orm::ConnectionTrait;
            let admin = sea_orm::Database::connect(admin_url.as_deref().unwrap())
                .await
                .unwrap();
            admin
                .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                .await
                .unwrap();
            terminate_sessions(&admin, &name).await;
            let resp = ready().await;
            assert_eq!(resp.status(), 503);
            assert_eq!(body_json(resp).await["errorCode"], "SERVICE_UNAVAILABLE");
            // API calls answer 503 as well, in the envelope.
            let resp = app.sync_orders(&seed_order_request()).await;
            assert_eq!(resp.status(), 503);
            assert_eq!(body_json(resp).await["errorCode"], "SERVICE_UNAVAILABLE");
            admin
                .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
                .await
                .unwrap();
        }
        Backend::Sqlite => {
            let path = app
                .database_url
                .strip_prefix("sqlite://")
                .unwrap()
                .to_owned();
            let moved = format!("{path}.away");
            std::fs::rename(&path, &moved).unwrap();
            let resp = ready().await;
            assert_eq!(resp.status(), 503);
            assert_eq!(body_json(resp).await["errorCode"], "SERVICE_UNAVAILABLE");
            std::fs::rename(&moved, &path).unwrap();
        }
    }
    // …and back.
    let mut status = 0;
    for _ in 0..50 {
        status = ready().await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(app.sync_orders(&seed_order_request()).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_turns_503_when_the_database_is_gone_and_back_sqlite() {
    readyz_follows_the_database(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_turns_503_when_the_database_is_gone_and_back_postgres() {
    readyz_follows_the_database(Backend::Postgres).await
}

async fn slow_requests_time_out_with_503(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.request_timeout = 2).await else {
        return crate::helpers::postgres_missing();
    };
    let body = batch(vec![order("slow-1", &[("prod_cap_002", "1", "1")])]);
    let first = app.sync_orders(&body).await;
    let status = first.status();
    assert_eq!(status, 200, "{}", first.text().await.unwrap_or_default());
    let changed = batch(vec![order("slow-1", &[("prod_cap_002", "3", "1")])]);
    let blocker = app.block_writes("slow-1").await;
    let resp = app
        .post_with_key("/api/orders/sync", "slow-key", &changed)
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(body_json(resp).await["errorCode"], "REQUEST_TIMEOUT");
    blocker.release().await;
    // The write still completes; the retry gets its result.
    loop {
        let resp = app
            .post_with_key("/api/orders/sync", "slow-key", &changed)
            .await;
        if resp.status() == 409 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["idempotent-replayed"], "true");
        assert_eq!(body_json(resp).await["data"][0]["totalValueUsd"], 3);
        break;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_requests_time_out_with_503_and_still_complete_sqlite() {
    slow_requests_time_out_with_503(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_requests_time_out_with_503_and_still_complete_postgres() {
    slow_requests_time_out_with_503(Backend::Postgres).await
}

both_backends! {
    async fn sigterm_lets_an_in_flight_request_finish(app) {
        seed_existing(&app).await;
        let server = ServerProcess::start(&app.database_url);
        let body = batch(vec![order("term-1", &[("prod_cap_002", "4", "1")])]);
        let blocker = app.block_writes("term-1").await;
        let in_flight = tokio::spawn({
            let req = app.client.post(format!("{}/api/orders/sync", server.address)).bearer_auth(&app.api_key)
                .header("idempotency-key", "term").json(&body);
            async move { req.send().await }
        });
        server.wait_for_claim_after(0).await;
        server.signal("TERM");
        // No new connections are accepted…
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while app.client.get(format!("{}/healthz", server.address)).send().await.is_ok() {
            assert!(std::time::Instant::now() < deadline, "still accepting after SIGTERM");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        blocker.release().await;
        // …but the request in flight completes, and the process exits cleanly.
        let resp = in_flight.await.unwrap().expect("in-flight request answered");
        assert_eq!(resp.status(), 200);
        assert_eq!(body_json(resp).await["data"][0]["totalValueUsd"], 4);
        let (status, log) = server.wait_exit(Duration::from_secs(10));
        assert!(status.success());
        // Log lines are written by a thread of their own, through a buffer:
        // the process writes them all out before it exits, the request's
        // line and the last line included.
        let events: Vec<Value> = log.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
        assert!(
            events.iter().any(|e| e["message"] == "request"
                && e["path"] == "/api/orders/sync" && e["status"] == 200
                && e["span"]["request_id"].as_str().is_some_and(|id| !id.is_empty())
                && e["span"]["account_id"] == "acc_123"),
            "{log:?}"
        );
        assert_eq!(
            events.last().map(|e| e["message"].clone()),
            Some(Value::from("stopped; closing the database pool")),
            "{log:?}"
        );
    }
}

async fn seed_existing(app: &crate::helpers::TestApp) {
    let body = batch(vec![order("term-1", &[("prod_cap_002", "1", "1")])]);
    assert_eq!(app.sync_orders(&body).await.status(), 200);
}

/// The pool takes a connection back without testing it when its last use
/// finished cleanly (the vendored sqlx drivers tell); a connection that the
/// database cut is still found and replaced: each fails one request at
/// most, and then every request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_cut_by_postgres_fail_one_request_each_at_most() {
    let Some(app) = spawn_app_with(Backend::Postgres, |_| {}).await else {
        return crate::helpers::postgres_missing();
    };
    let resp = app.sync_orders(&seed_order_request()).await;
    assert_eq!(resp.status(), 200);
    let id = body_json(resp).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/orders/{id}");
    let get = || async { app.get(&path).await.status().as_u16() };
    // Every connection of the pool opened and used.
    let warm = futures_util::future::join_all((0..32).map(|_| get())).await;
    assert!(warm.iter().all(|s| *s == 200), "{warm:?}");
    let (in_use, idle) = app.state.db.pool_connections();
    let pooled = in_use + idle;

    let admin_url = std::env::var(crate::helpers::POSTGRES_ENV).unwrap();
    let name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = sea_orm::Database::connect(&admin_url).await.unwrap();
    terminate_sessions(&admin, &name).await;
    admin.close().await.unwrap();

    let mut failed = 0;
    for _ in 0..pooled * 3 {
        match get().await {
            200 => {}
            503 => failed += 1,
            other => panic!("status {other}"),
        }
    }
    assert!(
        failed <= pooled,
        "{failed} failures for {pooled} connections"
    );
    for _ in 0..50 {
        assert_eq!(get().await, 200);
    }
}

/// A read right after a transaction was dropped unfinished, on the same
/// pooled connection, sees none of its writes: the rollback that the drop
/// queues runs first. On SQLite the vendored driver runs some reads on the
/// caller's thread instead of the connection's; it must not overtake a
/// command still queued for that thread.
async fn reads_wait_for_the_rollback_of_a_dropped_transaction(backend: Backend) {
    use sea_orm::{
        ConnectionTrait, TransactionTrait,
        sea_query::{Alias, Expr, ExprTrait, Func, Query},
    };
    let Some(probe) = Probe::create(backend).await else {
        return crate::helpers::postgres_missing();
    };
    // One connection: the read gets the connection the transaction had.
    let conn = probe.db.conn();
    let insert = probe.insert();
    let count = conn.get_database_backend().build(
        Query::select()
            .expr_as(Func::count(Expr::col(Alias::new("n"))), Alias::new("c"))
            .from(Alias::new("probe"))
            .and_where(Expr::col(Alias::new("n")).gte(0)),
    );
    for round in 0..300 {
        let txn = conn.begin().await.unwrap();
        txn.execute_raw(insert.clone()).await.unwrap();
        drop(txn);
        let seen: i64 = conn
            .query_one_raw(count.clone())
            .await
            .unwrap()
            .unwrap()
            .try_get("", "c")
            .unwrap();
        assert_eq!(seen, 0, "round {round}: a rolled-back row was read");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_wait_for_the_rollback_of_a_dropped_transaction_sqlite() {
    reads_wait_for_the_rollback_of_a_dropped_transaction(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_wait_for_the_rollback_of_a_dropped_transaction_postgres() {
    reads_wait_for_the_rollback_of_a_dropped_transaction(Backend::Postgres).await
}

/// On SQLite the vendored driver runs some statements on the caller's
/// thread; a write that may have to wait for SQLite's write lock (here,
/// one outside a write transaction while another connection holds the
/// lock, as another process would) must not wait there: on this test's
/// one-thread runtime it would stop everything, the holder's commit
/// included, until the busy timeout (30 s) failed it. SQLite only:
/// PostgreSQL's driver has no such thread.
#[tokio::test]
async fn sqlite_writes_that_may_wait_for_the_lock_wait_off_the_runtime() {
    use sea_orm::ConnectionTrait;
    let probe = Probe::create(Backend::Sqlite).await.unwrap();
    let waiter = entrygo::db::Db::connect(&probe.database.url, 1)
        .await
        .unwrap();
    let insert = probe.insert();
    let held = probe.db.begin_write().await.unwrap();
    held.execute_raw(insert.clone()).await.unwrap();
    let waiting = tokio::spawn(async move { waiter.conn().execute_raw(insert).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let committed = std::time::Instant::now();
    held.commit().await.unwrap();
    let written = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting write ends once the lock is free")
        .unwrap();
    written.expect("the waiting write succeeds after the commit");
    assert!(
        committed.elapsed() < Duration::from_secs(5),
        "the write waited on the runtime's thread"
    );
}

/// The bundled SQLite is built with `SQLITE_DEFAULT_MEMSTATUS=0`
/// (.cargo/config.toml): no memory statistics, whose process-wide mutex
/// every SQLite allocation would take. With them on, a connection that has
/// run a statement shows its memory in `sqlite3_memory_used`.
#[tokio::test]
async fn sqlite_keeps_no_memory_statistics() {
    let _probe = Probe::create(Backend::Sqlite).await.unwrap();
    // SAFETY: a plain read of SQLite's statistics, valid at any time.
    let used = unsafe { libsqlite3_sys::sqlite3_memory_used() };
    assert_eq!(used, 0, "SQLite keeps memory statistics");
}

/// The bundled SQLite is built with `SQLITE_ENABLE_QPSG` (.cargo/config.toml):
/// a cached statement keeps its plan whatever is bound to it. Without it,
/// SQLite plans a bound `LIMIT` (every page's) as a constant and marks the
/// statement for a fresh parse and plan whenever that argument is bound
/// again, which the driver does on every execution.
#[tokio::test]
async fn sqlite_keeps_the_plan_of_a_cached_statement() {
    use sea_orm::{ConnectionTrait, Statement};
    let probe = Probe::create(Backend::Sqlite).await.unwrap();
    let conn = probe.db.conn();
    for (after, limit) in [(0, 201), (5, 201), (9, 3)] {
        conn.query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            "SELECT n FROM probe WHERE n > ? ORDER BY n LIMIT ?",
            [after.into(), limit.into()],
        ))
        .await
        .unwrap();
    }
    let mut pooled = conn.get_sqlite_connection_pool().acquire().await.unwrap();
    let mut handle = pooled.lock_handle().await.unwrap();
    let db = handle.as_raw_handle().as_ptr();
    let mut reprepared = 0;
    // SAFETY: the connection is locked by this task; `sqlite3_next_stmt`
    // and `sqlite3_stmt_status` only read the statements it holds.
    unsafe {
        use libsqlite3_sys::{SQLITE_STMTSTATUS_REPREPARE, sqlite3_next_stmt, sqlite3_stmt_status};
        let mut stmt = sqlite3_next_stmt(db, std::ptr::null_mut());
        while !stmt.is_null() {
            reprepared += sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_REPREPARE, 0);
            stmt = sqlite3_next_stmt(db, stmt);
        }
    }
    assert_eq!(reprepared, 0, "a cached statement was planned again");
}

/// The bundled SQLite is built without `SQLITE_ENABLE_MEMORY_MANAGEMENT`
/// (.cargo/config.toml), which libsqlite3-sys turns on: with it, the page
/// caches of all connections share one lock that every page read takes.
#[test]
fn sqlite_page_caches_take_no_shared_lock() {
    // SAFETY: reads a constant table of compile options.
    let used =
        unsafe { libsqlite3_sys::sqlite3_compileoption_used(c"ENABLE_MEMORY_MANAGEMENT".as_ptr()) };
    assert_eq!(used, 0, "SQLite is built with ENABLE_MEMORY_MANAGEMENT");
}

/// SQLite's log is copied back into the database file by a checkpointer
/// beside the writes, not inside the writer's commits (`db/wal.rs`); it
/// must still keep up. Twelve commits of a megabyte each, a little apart:
/// with no checkpoint in between, the log would hold all twelve.
#[tokio::test]
async fn sqlite_log_is_checkpointed_beside_the_writes() {
    use sea_orm::ConnectionTrait;
    let probe = Probe::create(Backend::Sqlite).await.unwrap();
    probe
        .db
        .conn()
        .execute_unprepared("CREATE TABLE big (b BLOB NOT NULL)")
        .await
        .unwrap();
    for _ in 0..12 {
        let txn = probe.db.begin_write().await.unwrap();
        txn.execute_unprepared(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 256) \
             INSERT INTO big (b) SELECT randomblob(4000) FROM s",
        )
        .await
        .unwrap();
        txn.commit().await.unwrap();
        tokio::time::sleep(entrygo::db::wal::INTERVAL * 3 / 2).await;
    }
    let path = probe.database.url.strip_prefix("sqlite://").unwrap();
    let log = std::fs::metadata(format!("{path}-wal")).unwrap().len();
    assert!(log < 6 << 20, "the log grew to {log} bytes");
}

/// Pooled SQLite connections, which only read, keep a small page cache
/// each (`db::SQLITE_READER_CACHE_KIB`): at SQLite's default, a pool of
/// four held about 8 MB of pages the operating system caches anyway.
#[tokio::test]
async fn sqlite_reading_connections_keep_a_small_page_cache() {
    use sea_orm::ConnectionTrait;
    let probe = Probe::create(Backend::Sqlite).await.unwrap();
    let backend = probe.db.conn().get_database_backend();
    let row = probe
        .db
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(
            backend,
            "PRAGMA cache_size",
        ))
        .await
        .unwrap()
        .unwrap();
    let kib: i64 = row.try_get_by_index(0).unwrap();
    assert_eq!(kib, -i64::from(entrygo::db::SQLITE_READER_CACHE_KIB));
}

/// A test database with a table `probe (n)`, and a one-connection `Db`
/// on it: what the driver tests above write and read.
struct Probe {
    db: entrygo::db::Db,
    database: crate::test_database::TestDatabase,
}

impl Probe {
    /// `None` when PostgreSQL is asked for and not configured.
    async fn create(backend: Backend) -> Option<Self> {
        use sea_orm::ConnectionTrait;
        let database = crate::test_database::TestDatabase::create(backend).await?;
        let db = entrygo::db::Db::connect(&database.url, 1).await.unwrap();
        db.conn()
            .execute_unprepared("CREATE TABLE probe (n INTEGER NOT NULL)")
            .await
            .unwrap();
        Some(Self { db, database })
    }

    /// `INSERT INTO probe (n) VALUES (1)`, with `1` a bound argument.
    fn insert(&self) -> sea_orm::Statement {
        use sea_orm::sea_query::{Alias, Query};
        self.db.conn().get_database_backend().build(
            Query::insert()
                .into_table(Alias::new("probe"))
                .columns([Alias::new("n")])
                .values_panic([1.into()]),
        )
    }
}

/// Ends every PostgreSQL session on the database `name`, as a server
/// restart or an administrator would.
async fn terminate_sessions(admin: &sea_orm::DatabaseConnection, name: &str) {
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();
}
