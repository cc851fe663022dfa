//! Scenario G: what one request costs as the account grows. One account
//! is seeded with orders of 3 lines through the API (1,000 per sync, two
//! clients at a time); at 10,000 orders and again at
//! `ENTRYGO_BENCH_GROWTH_ORDERS` (default 1,000,000) the same sequential
//! requests are timed, one at a time, and the database's size is read.
//!
//! Each measurement is `SAMPLES` requests: a list page of 200 after a
//! random cursor, a list filtered by a random `externalId`, a list page of
//! the orders synced since an instant (the last `RECENT` orders, so the
//! match is the same size at every account size), `GET` of a random order,
//! and a single-order sync of a new order.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// Orders synced last before each measurement; `updatedSince` selects them.
const RECENT: usize = 2_000;
const SAMPLES: usize = 300;
const BATCH: usize = 1_000;

pub struct Growth<'a> {
    pub base: &'a str,
    pub database_url: &'a str,
    pub key: &'a str,
    pub account: &'a str,
    pub products: &'a [String],
}

impl Growth<'_> {
    pub fn run(&self, backend: &str) -> Value {
        let target: usize = std::env::var("ENTRYGO_BENCH_GROWTH_ORDERS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        let client = reqwest::blocking::Client::new();
        let mut ids: Vec<String> = Vec::with_capacity(target + SAMPLES * 2);
        let mut checkpoints = Vec::new();
        for (i, size) in [10_000, target].into_iter().enumerate() {
            let started = Instant::now();
            let before = ids.len();
            self.seed(&mut ids, size - RECENT);
            let since = chrono::Utc::now();
            self.seed(&mut ids, size);
            let rate = (ids.len() - before) as f64 / started.elapsed().as_secs_f64();
            println!("G    {backend}: seeded {size} orders ({rate:.0} orders/s)");
            let mut point = self.measure(&client, &ids, since);
            point["orders"] = json!(size);
            point["seedOrdersPerSecond"] = json!(rate);
            point["storage"] = storage(self.database_url);
            // The single-order syncs of each measurement are orders too.
            let stored = ids.len() + SAMPLES * (i + 1);
            point["bytesPerOrder"] =
                json!(point["storage"]["totalBytes"].as_f64().unwrap() / stored as f64);
            println!("G    {backend} at {size}: {point}");
            checkpoints.push(point);
        }
        json!({"backend": backend, "scenario": "G", "checkpoints": checkpoints})
    }

    /// Syncs new orders until the account holds `size` of them (two clients
    /// at a time, so the server is never idle between batches).
    fn seed(&self, ids: &mut Vec<String>, size: usize) {
        let next = AtomicUsize::new(ids.len());
        let batches: Vec<Vec<String>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        let client = reqwest::blocking::Client::new();
                        let mut got = Vec::new();
                        loop {
                            let first = next.fetch_add(BATCH, Ordering::Relaxed);
                            if first >= size {
                                return got;
                            }
                            let orders: Vec<Value> = (first..size.min(first + BATCH))
                                .map(|i| self.order(&format!("g-{i:07}"), i))
                                .collect();
                            got.extend(self.sync(&client, orders));
                        }
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        ids.extend(batches.into_iter().flatten());
    }

    fn order(&self, external_id: &str, i: usize) -> Value {
        let product = |k: usize| &self.products[(i + k) % self.products.len()];
        json!({"externalId": external_id, "destinationCountry": "DE",
               "items": [{"productId": product(0), "quantity": 1, "unitValueUsd": 10.5},
                         {"productId": product(1), "quantity": 2, "unitValueUsd": 3},
                         {"productId": product(2), "quantity": 3, "unitValueUsd": 0.99}]})
    }

    fn sync(&self, client: &reqwest::blocking::Client, orders: Vec<Value>) -> Vec<String> {
        let resp = client
            .post(format!("{}/api/orders/sync", self.base))
            .bearer_auth(self.key)
            .header("idempotency-key", uuid_like())
            .json(&json!({"accountId": self.account, "items": orders}))
            .timeout(Duration::from_secs(120))
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().unwrap());
        let body: Value = resp.json().unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn measure(
        &self,
        client: &reqwest::blocking::Client,
        ids: &[String],
        since: chrono::DateTime<chrono::Utc>,
    ) -> Value {
        let mut random = Lcg(ids.len() as u64);
        let since = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let get = |path: String| {
            let url = format!("{}{path}", self.base);
            let started = Instant::now();
            let resp = client.get(url).bearer_auth(self.key).send().unwrap();
            assert!(resp.status().is_success());
            resp.bytes().unwrap();
            started.elapsed()
        };
        let page = time(SAMPLES, || {
            let after = &ids[random.below(ids.len())];
            get(format!("/api/orders?limit=200&cursor={after}"))
        });
        let external = time(SAMPLES, || {
            get(format!(
                "/api/orders?externalId=g-{:07}",
                random.below(ids.len())
            ))
        });
        let updated = time(SAMPLES, || {
            get(format!("/api/orders?limit=200&updatedSince={since}"))
        });
        let by_id = time(SAMPLES, || {
            get(format!("/api/orders/{}", ids[random.below(ids.len())]))
        });
        let size = ids.len();
        let mut n = 0;
        let sync = time(SAMPLES, || {
            n += 1;
            let order = self.order(&format!("gs-{size}-{n}"), n);
            let started = Instant::now();
            self.sync(client, vec![order]);
            started.elapsed()
        });
        json!({"listPage": page, "listByExternalId": external, "listUpdatedSince": updated,
               "getById": by_id, "singleOrderSync": sync})
    }
}

/// The growth table: medians (p99) in ms at each account size.
pub fn print_table(results: &[Value]) {
    let runs: Vec<&Value> = results.iter().filter(|r| r["scenario"] == "G").collect();
    if runs.is_empty() {
        return;
    }
    println!(
        "\n| backend | orders | list page | list by externalId | list updatedSince | GET by id | single-order sync | bytes/order | seeded orders/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cell = |t: &Value| {
        format!(
            "{:.2} ({:.2})",
            t["medianMs"].as_f64().unwrap(),
            t["p99Ms"].as_f64().unwrap()
        )
    };
    for run in runs {
        for point in run["checkpoints"].as_array().unwrap() {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} |",
                run["backend"].as_str().unwrap(),
                point["orders"],
                cell(&point["listPage"]),
                cell(&point["listByExternalId"]),
                cell(&point["listUpdatedSince"]),
                cell(&point["getById"]),
                cell(&point["singleOrderSync"]),
                point["bytesPerOrder"].as_f64().unwrap(),
                point["seedOrdersPerSecond"].as_f64().unwrap(),
            );
        }
    }
}

/// Median and p99 of `samples` timings, in milliseconds.
fn time(samples: usize, mut run: impl FnMut() -> Duration) -> Value {
    let mut ms: Vec<f64> = (0..samples).map(|_| run().as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    json!({"medianMs": ms[samples / 2], "p99Ms": ms[samples * 99 / 100]})
}

/// The database's size: in total, and per table or index.
fn storage(database_url: &str) -> Value {
    let sql = if database_url.starts_with("sqlite:") {
        // `dbstat` counts the pages of each table and index.
        "SELECT name, CAST(SUM(pgsize) AS BIGINT) FROM dbstat GROUP BY name"
    } else {
        // A table's size with its TOAST (large values, such as stored
        // responses), each index apart.
        "SELECT c.relname::text, CASE c.relkind WHEN 'r' THEN pg_table_size(c.oid) \
         ELSE pg_relation_size(c.oid) END::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
    };
    let rows = super::server::query_pairs(database_url, sql);
    let total: i64 = rows.iter().map(|(_, bytes)| bytes).sum();
    let mut parts: Vec<(String, i64)> = rows.into_iter().filter(|(_, b)| *b > 0).collect();
    parts.sort_by_key(|(_, bytes)| -bytes);
    json!({"totalBytes": total, "parts": parts.into_iter().take(8).collect::<Vec<_>>()})
}

/// A fixed-seed pseudo-random sequence (no dependency for picking IDs).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}

fn uuid_like() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "growth-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
