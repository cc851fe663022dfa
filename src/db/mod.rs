//! Persistence: connections, the write gate, and set-based queries per
//! resource. Functions here take `&impl ConnectionTrait` and never open
//! transactions of their own; `domain/` does.

pub mod accounts;
pub mod changes;
pub mod entities;
pub mod idempotency;
pub mod orders;
pub mod products;
pub mod wal;

use std::{ops::Deref, sync::Arc, time::Duration};

use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, IsolationLevel, SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Page cache of each pooled (reading) SQLite connection, in KiB; SQLite's
/// default is 2,000. Every pooled connection fills its own cache as it
/// reads, so the default held about 8 MB over a pool of four: the pages a
/// small cache misses come from the operating system's file cache (the
/// bench measured no loss in reads). The writer keeps the default.
pub const SQLITE_READER_CACHE_KIB: u32 = 512;

/// How long a SQLite writer waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection pool, plus (on SQLite) the one connection this process
/// writes on and the gate that serialises its writers.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    sqlite_writer: Option<DatabaseConnection>,
    write_gate: Option<Arc<Mutex<()>>>,
    sqlite_path: Option<std::path::PathBuf>,
    /// SQLite files: checkpoints the log off the writer's connection.
    checkpointer: Option<wal::Checkpointer>,
}

impl Db {
    /// Connects; a `sqlite://` file that does not exist yet is created.
    ///
    /// SQLite runs in WAL mode (readers never block the writer) with
    /// `synchronous=NORMAL`: a committed transaction survives a process
    /// crash; a power loss may drop the last commits, never corrupt the file.
    ///
    /// On SQLite, every write of the process goes through one dedicated
    /// connection (SQLite has one writer at a time anyway): its statement
    /// cache stays warm, and the memory a large batch needs is taken once,
    /// not once per pooled connection. Reads use the pool. That connection
    /// leaves checkpoints to a connection of their own (see [`wal`]).
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, DbErr> {
        let pool = |size: u32, pragmas: Vec<(&'static str, String)>| {
            let mut opts = ConnectOptions::new(url);
            opts.sqlx_logging(false)
                .max_connections(size)
                .acquire_timeout(Duration::from_secs(30))
                // sqlx pings a pooled connection before every use by
                // default: a second round trip per statement. Ping only
                // connections idle for a while (those a database restart
                // may have cut); one cut while busy fails its request with
                // 503 and is dropped from the pool.
                .test_before_acquire_if_idle_for(Duration::from_secs(1))
                // No JIT compilation on PostgreSQL: it pays off for long
                // analytical queries, never for these short statements,
                // and it is chosen by the planner's cost estimate, which
                // stale statistics inflate: after a burst of writes a list
                // page was compiled on every execution, the compilation
                // costing far more than the query (README, "Production").
                // No parallel workers either, for the same reason: after
                // a burst of writes a `GET`'s cached generic plan (when it
                // still joined the lines) over-estimated an order's lines a
                // thousandfold and gathered them with two workers, starting
                // them on every execution; any statement's plan can do so.
                .map_sqlx_postgres_opts(|o| {
                    o.options([("jit", "off"), ("max_parallel_workers_per_gather", "0")])
                })
                .map_sqlx_sqlite_opts(move |o| {
                    let mut o = o
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .foreign_keys(true);
                    for (key, value) in &pragmas {
                        o = o.pragma(*key, value.clone());
                    }
                    o
                });
            opts
        };
        let readers = vec![("cache_size", format!("-{SQLITE_READER_CACHE_KIB}"))];
        let conn = sea_orm::Database::connect(pool(pool_size.max(1), readers)).await?;
        let sqlite = conn.get_database_backend() == DbBackend::Sqlite;
        let sqlite_path = sqlite.then(|| sqlite_file(url)).flatten();
        let (sqlite_writer, checkpointer) = match (sqlite, &sqlite_path) {
            (true, Some(_)) => (
                Some(
                    sea_orm::Database::connect(pool(1, vec![("wal_autocheckpoint", "0".into())]))
                        .await?,
                ),
                Some(wal::Checkpointer::start(
                    sea_orm::Database::connect(pool(1, vec![])).await?,
                )),
            ),
            // In memory: no log to checkpoint.
            (true, None) => (
                Some(sea_orm::Database::connect(pool(1, vec![])).await?),
                None,
            ),
            (false, _) => (None, None),
        };
        Ok(Self {
            conn,
            sqlite_writer,
            write_gate: sqlite.then(Default::default),
            sqlite_path,
            checkpointer,
        })
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Opens a read-write transaction.
    ///
    /// SQLite allows one writer at a time. A deferred transaction that reads
    /// and then writes can fail with SQLITE_BUSY at once when another writer
    /// got in between, which no busy timeout cures; so writers queue on an
    /// in-process gate and take the write lock up front (`BEGIN IMMEDIATE`),
    /// where other processes sharing the file wait on the busy timeout.
    /// PostgreSQL needs neither: row locks and `ON CONFLICT` order writers.
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        let gate = match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        };
        let txn = self
            .sqlite_writer
            .as_ref()
            .unwrap_or(&self.conn)
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        Ok(WriteTxn {
            txn,
            _gate: gate,
            checkpointer: self.checkpointer.clone(),
        })
    }
}

impl Db {
    /// Opens a read-only transaction whose statements all see one snapshot
    /// (PostgreSQL: REPEATABLE READ; SQLite: a deferred transaction holds
    /// its read snapshot until it ends).
    pub async fn begin_read(&self) -> Result<DatabaseTransaction, DbErr> {
        match self.backend() {
            DbBackend::Postgres => {
                self.conn
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await
            }
            _ => self.conn.begin().await,
        }
    }
}

/// The file of a `sqlite:` URL; `None` for in-memory databases.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.strip_prefix("//").unwrap_or(rest).split('?').next()?;
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.into())
}

/// A write transaction; dropping it without `commit` rolls it back.
pub struct WriteTxn {
    // Declared first so the transaction ends before the gate opens.
    txn: DatabaseTransaction,
    _gate: Option<OwnedMutexGuard<()>>,
    checkpointer: Option<wal::Checkpointer>,
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await?;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.committed();
        }
        Ok(())
    }
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// True for failures that a fresh attempt of the same transaction can
/// clear: PostgreSQL deadlocks and serialisation failures; SQLite's busy and
/// locked results in every extended form (`SQLITE_BUSY_SNAPSHOT`,
/// `SQLITE_BUSY_RECOVERY`, … share the primary code in their low byte).
pub fn is_transient(err: &DbErr) -> bool {
    let db_err = match err {
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)) => e.as_database_error(),
        _ => None,
    };
    db_err
        .and_then(|e| e.code())
        .is_some_and(|code| match code.as_ref() {
            "40P01" | "40001" => true,
            sqlite => sqlite
                .parse::<u32>()
                .is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
        })
}

/// True when the database could not be reached at all (no connection in
/// time, connection refused, lost or terminated by the server): the client
/// should retry later.
pub fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error as SqlxError};
    let sqlx_err = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx_err.as_ref() {
        SqlxError::Io(_) | SqlxError::PoolTimedOut | SqlxError::PoolClosed => true,
        // PostgreSQL: class 08 (connection exception), 57P01-57P03 (admin
        // shutdown, crash shutdown, cannot connect now).
        SqlxError::Database(e) => e.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// Rows per multi-row statement, kept under SQLite's 32,766 bound
/// parameters (and PostgreSQL's 65,535) for a table of `columns` columns.
pub fn chunk_rows(columns: usize) -> usize {
    (30_000 / columns.max(1)).max(1)
}

/// `INSERT INTO "table" ("columns"…) VALUES` with `rows` rows of
/// placeholders, numbered as `backend` numbers them.
pub fn insert_sql(backend: DbBackend, table: &str, columns: &[&str], rows: usize) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(64 + columns.len() * (24 + rows * 7));
    let _ = write!(sql, "INSERT INTO \"{table}\" (");
    for (i, column) in columns.iter().enumerate() {
        let _ = write!(sql, "{}\"{column}\"", if i == 0 { "" } else { ", " });
    }
    sql.push_str(") VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns.len() {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                DbBackend::Postgres => {
                    let _ = write!(sql, "${}", row * columns.len() + column + 1);
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// How long a readiness check waits for the database.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

impl Db {
    /// Does the database answer within a second? For SQLite, the file must
    /// also still be where it was opened: a process whose file was removed
    /// or unmounted would write to a file nobody can find again.
    pub async fn ping(&self) -> Result<(), DbErr> {
        if let Some(path) = &self.sqlite_path
            && !path.exists()
        {
            return Err(DbErr::Custom(format!(
                "database file {} is gone",
                path.display()
            )));
        }
        tokio::time::timeout(PING_TIMEOUT, self.conn.execute_unprepared("SELECT 1"))
            .await
            .map_err(|_| DbErr::Custom("database did not answer in time".into()))?
            .map(drop)
    }

    /// Connections of the pools (the SQLite writer's included): (in use,
    /// idle).
    pub fn pool_connections(&self) -> (usize, usize) {
        let count = |conn: &DatabaseConnection| match conn.get_database_backend() {
            DbBackend::Postgres => {
                let pool = conn.get_postgres_connection_pool();
                (pool.size() as usize, pool.num_idle())
            }
            _ => {
                let pool = conn.get_sqlite_connection_pool();
                (pool.size() as usize, pool.num_idle())
            }
        };
        let (size, idle) = std::iter::once(&self.conn)
            .chain(&self.sqlite_writer)
            .map(count)
            .fold((0, 0), |(s, i), (cs, ci)| (s + cs, i + ci));
        (size.saturating_sub(idle), idle)
    }

    /// Closes the pool (at shutdown).
    pub async fn close(self) -> Result<(), DbErr> {
        if let Some(writer) = self.sqlite_writer {
            writer.close().await?;
        }
        self.conn.close().await
    }
}
