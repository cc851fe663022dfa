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
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::Value;

use crate::test_database::TestDatabase;

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
        // The log thread lives as long as the test process.
        std::mem::forget(entrygo::telemetry::init(entrygo::config::LogFormat::Text));
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
}

pub use crate::server_process::ServerProcess;
