//! A fresh app per test: its own database (a SQLite temp file, or a
//! PostgreSQL database named by UUID), migrated, on a random port, with the
//! demo account `acc_123` (products `prod_hoodie_001`, `prod_cap_002`) and
//! a second account to prove isolation.

use std::sync::LazyLock;

use entrygo::{
    config::{ServeArgs, Settings},
    db::entities::{order_items, orders},
    domain::accounts,
    startup::Application,
    state::AppState,
};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};
use serde_json::Value;

pub const POSTGRES_ENV: &str = "ENTRYGO_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each test body once per backend: `mod name { fn sqlite; fn postgres }`.
/// The PostgreSQL variant needs `ENTRYGO_TEST_POSTGRES_URL`; `.ci/run` sets
/// it, so CI runs both.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($app: $crate::helpers::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                run($crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await.unwrap()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                match $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await {
                    Some(app) => run(app).await,
                    None => $crate::helpers::postgres_missing(),
                }
            }
        }
    )*};
}

/// Without `ENTRYGO_TEST_POSTGRES_URL`, a PostgreSQL variant has nothing to
/// run on: under CI (`CI` set) that fails the run, elsewhere it passes
/// with a note (libtest hides the note of a passing test).
pub fn postgres_missing() {
    if std::env::var_os("CI").is_some() {
        panic!("{POSTGRES_ENV} is not set: CI must run every test on PostgreSQL");
    }
    eprintln!("skipped: {POSTGRES_ENV} is not set");
}

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        entrygo::telemetry::init(entrygo::config::LogFormat::Text);
    }
});

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The demo account, whose products the public docs' examples use.
    pub account_id: String,
    pub api_key: String,
    /// Another account, with a product of its own.
    pub other_account_id: String,
    pub other_api_key: String,
    pub other_product_id: String,
    pub database_url: String,
    pub state: AppState,
    _db: TestDatabase,
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// As `spawn_app`, after `configure` adjusts the serve settings.
pub async fn spawn_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut ServeArgs),
) -> Option<TestApp> {
    LazyLock::force(&TRACING);
    let db = TestDatabase::create(backend).await?;
    let mut serve = ServeArgs {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServeArgs::default()
    };
    configure(&mut serve);
    let settings = Settings {
        database_url: db.url.clone(),
        serve,
    };
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run());

    let demo = accounts::ensure_demo(&state.db)
        .await
        .expect("demo account");
    let (other_account_id, other) = accounts::create_account(&state.db, "Other", None)
        .await
        .expect("other account");
    let client = reqwest::Client::new();
    let mut app = TestApp {
        address,
        client,
        account_id: accounts::DEMO_ACCOUNT.to_owned(),
        api_key: demo.api_key,
        other_account_id,
        other_api_key: other.api_key,
        other_product_id: String::new(),
        database_url: db.url.clone(),
        state,
        _db: db,
    };
    let body = serde_json::json!({
        "accountId": app.other_account_id,
        "items": [{"externalId": "other-sku", "name": "Other product"}]
    });
    let resp = app
        .post_as(&app.other_api_key.clone(), "/api/products/sync", &body)
        .await;
    assert_eq!(resp.status(), 200);
    app.other_product_id = body_json(resp).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Some(app)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POSTs JSON with the demo account's key.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_as(&self.api_key, path, body).await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn sync_orders(&self, body: &Value) -> reqwest::Response {
        self.post("/api/orders/sync", body).await
    }

    pub async fn sync_products(&self, body: &Value) -> reqwest::Response {
        self.post("/api/products/sync", body).await
    }

    pub async fn order_count(&self) -> u64 {
        orders::Entity::find()
            .count(self.state.db.conn())
            .await
            .unwrap()
    }

    pub async fn line_count(&self) -> u64 {
        order_items::Entity::find()
            .count(self.state.db.conn())
            .await
            .unwrap()
    }
}

pub async fn body_json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.expect("body read");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts a 400 VALIDATION_ERROR and returns its issues as (path, code).
pub async fn validation_issues(resp: reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(resp.status(), 400);
    let body = body_json(resp).await;
    assert_eq!(body["errorCode"], "VALIDATION_ERROR", "{body}");
    assert_eq!(body["message"], "Request validation failed.");
    let issues: Vec<(String, String)> = body["details"]["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap().to_owned(),
                i["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let (first, _) = issues.first().expect("at least one issue");
    assert_eq!(
        body["field"],
        first.as_str(),
        "field is the first issue's path"
    );
    issues
}

/// The public docs' request example, verbatim.
pub fn seed_order_request() -> Value {
    serde_json::json!({
      "accountId": "acc_123",
      "items": [
        {
          "externalId": "wms-order-1001",
          "destinationCountry": "US",
          "destinationRegion": "CA",
          "destinationPostalCode": "94105",
          "items": [
            {"productId": "prod_hoodie_001", "quantity": 2, "unitValueUsd": 110},
            {"productId": "prod_cap_002", "quantity": 1, "unitValueUsd": 35}
          ],
          "metadata": {"source": "warehouse-wms", "wave": "wave-17"}
        }
      ]
    })
}

/// An order of the demo account with the given lines (productId, quantity,
/// unitValueUsd as raw JSON text).
pub fn order(external_id: &str, lines: &[(&str, &str, &str)]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(p, q, u)| {
            serde_json::from_str(&format!(
                r#"{{"productId":"{p}","quantity":{q},"unitValueUsd":{u}}}"#
            ))
            .unwrap()
        })
        .collect();
    serde_json::json!({"externalId": external_id, "destinationCountry": "US", "items": items})
}

pub fn batch(orders: Vec<Value>) -> Value {
    serde_json::json!({"accountId": "acc_123", "items": orders})
}

/// A database of one test, dropped with it.
struct TestDatabase {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    async fn create(backend: Backend) -> Option<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("entrygo-test-{id}.db"));
                Some(Self {
                    url: format!("sqlite://{}", path.display()),
                    cleanup: Cleanup::File(path),
                })
            }
            Backend::Postgres => {
                let admin_url = std::env::var(POSTGRES_ENV).ok()?;
                let name = format!("entrygo_test_{id}");
                let admin = sea_orm::Database::connect(&admin_url)
                    .await
                    .expect("PostgreSQL reachable");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                admin.close().await.ok();
                let base = admin_url.rsplit_once('/').expect("URL with a database").0;
                Some(Self {
                    url: format!("{base}/{name}"),
                    cleanup: Cleanup::Postgres { admin_url, name },
                })
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime; use a thread of our own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        if let Ok(admin) = sea_orm::Database::connect(&admin_url).await {
                            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                            let _ = admin.execute_unprepared(&sql).await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

impl TestApp {
    /// POSTs JSON with the demo key and an `Idempotency-Key` header.
    pub async fn post_with_key(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.api_key)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

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

    /// Row IDs of every stored line: a line that is rewritten gets a new one.
    pub async fn line_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = order_items::Entity::find()
            .all(self.state.db.conn())
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect();
        ids.sort_unstable();
        ids
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

pub use crate::server_process::ServerProcess;
