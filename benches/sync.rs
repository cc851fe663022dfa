//! Wall time of sync requests over loopback HTTP against the real app, on
//! a fresh SQLite file and, with `ENTRYGO_BENCH_POSTGRES_URL`, on a fresh
//! PostgreSQL database:
//!
//! - one request of 1,000 orders × 3 lines: first insert, then re-sync;
//! - one request of 1,000 products with HS codes: the same;
//! - one seed-sized order with an idempotency key: original vs replay.
//!
//! Run: `cargo bench --bench sync`. Prints medians; not a pass/fail gate.

#[path = "support/database_url.rs"]
mod database_url;

use std::time::{Duration, Instant};

use entrygo::{
    config::{ServeArgs, Settings},
    domain::accounts,
    startup::Application,
};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

const RUNS: usize = 7;
const SMALL_RUNS: usize = 300;

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("entrygo-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    bench(
        "SQLite",
        &format!("sqlite://{}", dir.join("bench.db").display()),
    )
    .await;
    match std::env::var("ENTRYGO_BENCH_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!("entrygo_bench_{}", uuid::Uuid::new_v4().simple());
            let conn = sea_orm::Database::connect(&admin).await.unwrap();
            conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            let url = database_url::beside(&admin, &name);
            bench("PostgreSQL", &url).await;
            conn.execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .await
                .unwrap();
        }
        Err(_) => println!("PostgreSQL: skipped (set ENTRYGO_BENCH_POSTGRES_URL)"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

const ORDERS: &str = "/api/orders/sync";
const PRODUCTS: &str = "/api/products/sync";

/// 1,000 products with HS codes, as one sync's body.
fn products(tag: &str) -> Value {
    let items: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"externalId": format!("{tag}-{i:04}"), "name": format!("Product {i}"),
                   "hsCode": format!("6102{i:04}"), "countryOfOrigin": "PT"})
        })
        .collect();
    json!({"accountId": "acc_123", "items": items})
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn bulk(tag: &str) -> Value {
    let orders: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"externalId": format!("{tag}-{i:04}"), "destinationCountry": "US", "destinationRegion": "CA",
                   "destinationPostalCode": "94105", "metadata": {"source": "bench"},
                   "items": [{"productId": "prod_hoodie_001", "quantity": 2, "unitValueUsd": 110},
                             {"productId": "prod_cap_002", "quantity": 1, "unitValueUsd": 35},
                             {"productId": "prod_cap_002", "quantity": 3, "unitValueUsd": 19.99}]})
        })
        .collect();
    json!({"accountId": "acc_123", "items": orders})
}

async fn bench(backend: &str, url: &str) {
    let settings = Settings {
        database_url: url.to_owned(),
        serve: ServeArgs {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..ServeArgs::default()
        },
    };
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let key = accounts::ensure_demo(&app.state().db)
        .await
        .unwrap()
        .api_key;
    tokio::spawn(app.run());
    let client = reqwest::Client::new();
    let post = |path: &str, body: &Value, idem: Option<String>| {
        let mut req = client
            .post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(body);
        if let Some(k) = idem {
            req = req.header("idempotency-key", k);
        }
        async move {
            let start = Instant::now();
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
            start.elapsed()
        }
    };

    // Each body sent once, then again unchanged; medians of both.
    let first_and_resync = async |path: &str, body: &dyn Fn(usize) -> Value| {
        let (mut first, mut resync) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            let body = body(run);
            first.push(post(path, &body, None).await);
            resync.push(post(path, &body, None).await);
        }
        let ms = |samples| median(samples).as_secs_f64() * 1e3;
        (ms(first), ms(resync))
    };

    let (first, resync) = first_and_resync(ORDERS, &|run| bulk(&format!("bulk{run}"))).await;
    println!(
        "{backend}: 1,000 orders × 3 lines, one request: first insert {first:.0} ms, re-sync {resync:.0} ms (median of {RUNS})"
    );
    let (first, resync) = first_and_resync(PRODUCTS, &|run| products(&format!("sku{run}"))).await;
    println!(
        "{backend}: 1,000 products with HS codes, one request: first insert {first:.0} ms, re-sync {resync:.0} ms (median of {RUNS})"
    );

    let seed = |i: usize| {
        json!({"accountId": "acc_123", "items": [{"externalId": format!("small-{i}"), "destinationCountry": "US",
            "items": [{"productId": "prod_hoodie_001", "quantity": 2, "unitValueUsd": 110},
                      {"productId": "prod_cap_002", "quantity": 1, "unitValueUsd": 35}]}]})
    };
    let (mut original, mut replay) = (Vec::new(), Vec::new());
    for i in 0..SMALL_RUNS {
        original.push(post(ORDERS, &seed(i), Some(format!("k-{i}"))).await);
    }
    for i in 0..SMALL_RUNS {
        replay.push(post(ORDERS, &seed(i), Some(format!("k-{i}"))).await);
    }
    println!(
        "{backend}: one order × 2 lines with an idempotency key: original {:.2} ms, replay {:.2} ms (median of {SMALL_RUNS})",
        median(original).as_secs_f64() * 1e3,
        median(replay).as_secs_f64() * 1e3
    );
}
