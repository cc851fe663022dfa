//! What tests read from, or hold in, a test app's database directly: row
//! versions and a log of line writes that prove nothing was written, and
//! locks that stall writers.

use entrygo::db::entities::orders;
use sea_orm::{ConnectionTrait, EntityTrait, Statement, TryGetableMany};

use crate::helpers::TestApp;

/// The rows `sql` selects, each read by position into `T` (a column's type,
/// or a tuple of them in the statement's column order): for tables and
/// columns the entities do not describe, or catalogs.
pub async fn rows<T: TryGetableMany>(conn: &impl ConnectionTrait, sql: &str) -> Vec<T> {
    let statement = Statement::from_string(conn.get_database_backend(), sql);
    conn.query_all_raw(statement)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_many_by_index().unwrap())
        .collect()
}

impl TestApp {
    /// `updated_at` of every order, by external ID: proves that nothing
    /// was written.
    pub async fn order_versions(&self) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = orders::Entity::find()
            .all(self.state.db.conn())
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.external_id, o.updated_at.to_rfc3339()))
            .collect();
        rows.sort();
        rows
    }

    /// An instant after every order's `updated_at`, read from the clock
    /// once it has passed them.
    pub async fn instant_after_last_write(&self) -> chrono::DateTime<chrono::Utc> {
        let last = orders::Entity::find()
            .all(self.state.db.conn())
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.updated_at.to_utc())
            .max()
            .unwrap_or_default();
        loop {
            let now = chrono::Utc::now();
            if now > last {
                return now;
            }
            tokio::task::yield_now().await;
        }
    }

    /// From now on, logs every line written (inserted or updated) as its
    /// order's ID and its position, read back by [`Self::line_writes`]: a
    /// line rewritten with the same content shows up there, though its
    /// row reads alike. A trigger does the logging, so it sees every
    /// statement of every connection.
    pub async fn log_line_writes(&self) {
        let conn = self.state.db.conn();
        let statements: &[&str] = match conn.get_database_backend() {
            sea_orm::DbBackend::Postgres => &[
                "CREATE TABLE line_writes (order_id text NOT NULL, position integer NOT NULL)",
                "CREATE FUNCTION log_line_write() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN INSERT INTO line_writes VALUES (NEW.order_id, NEW.position); \
                 RETURN NULL; END $$",
                "CREATE TRIGGER line_written AFTER INSERT OR UPDATE ON order_items \
                 FOR EACH ROW EXECUTE FUNCTION log_line_write()",
            ],
            _ => &[
                "CREATE TABLE line_writes (order_id TEXT NOT NULL, position INTEGER NOT NULL)",
                "CREATE TRIGGER line_inserted AFTER INSERT ON order_items \
                 BEGIN INSERT INTO line_writes VALUES (NEW.order_id, NEW.position); END",
                "CREATE TRIGGER line_updated AFTER UPDATE ON order_items \
                 BEGIN INSERT INTO line_writes VALUES (NEW.order_id, NEW.position); END",
            ],
        };
        for sql in statements {
            conn.execute_unprepared(sql).await.unwrap();
        }
    }

    /// The lines written since [`Self::log_line_writes`], as (order ID,
    /// position), sorted: one entry per write.
    pub async fn line_writes(&self) -> Vec<(String, i32)> {
        let sql = "SELECT order_id, position FROM line_writes ORDER BY order_id, position";
        rows(self.state.db.conn(), sql).await
    }

    /// Blocks writers on the order `external_id` (which must exist) until
    /// released: a row lock on PostgreSQL, the file's write lock on SQLite.
    pub async fn block_writes(&self, external_id: &str) -> WriteBlocker {
        use sea_orm::TransactionTrait;
        let conn = sea_orm::Database::connect(&self.database_url)
            .await
            .unwrap();
        let txn = match conn.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                let txn = conn.begin().await.unwrap();
                let sql =
                    format!("SELECT id FROM orders WHERE external_id = '{external_id}' FOR UPDATE");
                txn.execute_unprepared(&sql).await.unwrap();
                txn
            }
            _ => conn
                .begin_with_options(sea_orm::TransactionOptions {
                    sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await
                .unwrap(),
        };
        WriteBlocker {
            txn: Some(txn),
            _conn: conn,
        }
    }

    /// Waits until some request of this app holds an idempotency key: on
    /// PostgreSQL, an advisory lock is granted (the write transaction has
    /// begun); on SQLite, the key is in this process's in-flight set.
    pub async fn wait_for_idempotency_lock(&self) {
        if self.state.db.backend() != sea_orm::DbBackend::Postgres {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while self.state.idempotency.in_flight() == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no request holds a key"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            return;
        }
        let sql = "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted";
        for _ in 0..200 {
            let stmt = sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql);
            let row = self
                .state
                .db
                .conn()
                .query_one_raw(stmt)
                .await
                .unwrap()
                .unwrap();
            if row.try_get::<i64>("", "n").unwrap() > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no request took the idempotency lock");
    }
}

pub struct WriteBlocker {
    txn: Option<sea_orm::DatabaseTransaction>,
    _conn: sea_orm::DatabaseConnection,
}

impl WriteBlocker {
    pub async fn release(mut self) {
        self.txn.take().unwrap().rollback().await.unwrap();
    }
}
