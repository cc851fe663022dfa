//! Scenario F (flood): one account floods the server with heavy syncs
//! while another sends single-order syncs one after another.
//!
//! - Account A sends 400 syncs of 1,000 orders × 3 lines (about 0.5 MB
//!   each), 200 at a time. A refused sync (429 or 503) is retried after its
//!   `Retry-After`, with the same idempotency key, as clients are told to.
//! - Meanwhile account B sends single-order syncs, one after another, until
//!   A is done.
//!
//! Reports A's statuses, B's latency and errors, the server's peak RSS, and
//! checks that every sync A was told is stored is stored (1,000 orders
//! each), that no refused attempt stored anything (no acknowledged sync was
//! a replay of an earlier attempt, and syncs never acknowledged stored
//! nothing) and that every refusal carried `Retry-After`.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

pub const SYNCS: usize = 400;
pub const CONCURRENCY: usize = 200;
const ORDERS: usize = 1_000;
/// A sync still refused after this long is given up (and reported).
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

pub struct Flood<'a> {
    pub base: &'a str,
    pub database_url: &'a str,
    pub key_a: &'a str,
    pub account_a: &'a str,
    pub products_a: &'a [String],
    pub key_b: &'a str,
    pub account_b: &'a str,
    pub product_b: &'a str,
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, u64>,
    refusals_without_retry_after: u64,
    acknowledged: Vec<usize>,
    replayed_acknowledgements: u64,
    given_up: u64,
}

fn body(account: &str, products: &[String], sync: usize, tag: &str) -> String {
    let orders: Vec<Value> = (0..ORDERS)
        .map(|i| {
            json!({"externalId": format!("flood-{tag}-{sync}-{i}"), "destinationCountry": "US",
               "items": [{"productId": products[i % products.len()], "quantity": 1, "unitValueUsd": 10.5},
                         {"productId": products[(i + 1) % products.len()], "quantity": 2, "unitValueUsd": 3},
                         {"productId": products[(i + 2) % products.len()], "quantity": 3, "unitValueUsd": 0.99}]})
        })
        .collect();
    json!({"accountId": account, "items": orders}).to_string()
}

impl Flood<'_> {
    /// Runs the scenario; `peak_rss` reads the server's peak RSS (MB).
    pub fn run(&self, backend: &str, peak_rss: impl Fn() -> f64) -> Value {
        let tag = format!("{}", std::process::id());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        let (tally, b_latencies, b_errors) = rt.block_on(self.drive(&tag));
        let seconds = started.elapsed().as_secs_f64();
        let rss = peak_rss();
        let stored = rt.block_on(self.stored_per_sync(&tag));
        let acknowledged: std::collections::HashSet<usize> =
            tally.acknowledged.iter().copied().collect();
        let all_acknowledged_stored = acknowledged.iter().all(|s| stored.get(s) == Some(&ORDERS));
        let unacknowledged_stored_nothing = (0..SYNCS)
            .filter(|s| !acknowledged.contains(s))
            .all(|s| stored.get(&s).copied().unwrap_or(0) == 0);
        let mut sorted = b_latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            if sorted.is_empty() {
                return f64::NAN;
            }
            sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
        };
        let result = json!({
            "backend": backend,
            "scenario": "F",
            "seconds": seconds,
            "aStatuses": tally.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "aAcknowledged": acknowledged.len(),
            "aGivenUp": tally.given_up,
            "aRefusalsWithoutRetryAfter": tally.refusals_without_retry_after,
            "aAcknowledgedAsReplay": tally.replayed_acknowledgements,
            "everyAcknowledgedOrderStored": all_acknowledged_stored,
            "unacknowledgedStoredNothing": unacknowledged_stored_nothing,
            "bRequests": b_latencies.len() as u64 + b_errors,
            "bErrors": b_errors,
            "bP50Ms": pct(0.50),
            "bP99Ms": pct(0.99),
            "bMaxMs": sorted.last().copied().unwrap_or(f64::NAN),
            "peakRssMb": rss,
        });
        println!(
            "F    {seconds:>6.1} s  A: {:?} acknowledged {}/{SYNCS}  B: {} requests, {} errors, p50 {:.1} ms p99 {:.1} ms max {:.1} ms  RSS {rss:.1} MB  stored ok: {all_acknowledged_stored}/{unacknowledged_stored_nothing}",
            tally.statuses,
            acknowledged.len(),
            result["bRequests"],
            b_errors,
            pct(0.5),
            pct(0.99),
            result["bMaxMs"].as_f64().unwrap(),
        );
        result
    }

    async fn drive(&self, tag: &str) -> (Tally, Vec<f64>, u64) {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY)
            .build()
            .unwrap();
        let tally = Arc::new(Mutex::new(Tally::default()));
        let done = Arc::new(AtomicBool::new(false));
        let next = Arc::new(Mutex::new(0..SYNCS));

        let b = {
            let (client, done) = (client.clone(), done.clone());
            let url = format!("{}/api/orders/sync", self.base);
            let (key, account, product) = (
                self.key_b.to_owned(),
                self.account_b.to_owned(),
                self.product_b.to_owned(),
            );
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                let mut i = 0;
                while !done.load(Ordering::Relaxed) {
                    i += 1;
                    let body = json!({"accountId": account, "items": [{"externalId": format!("b-{tag}-{i}"),
                        "destinationCountry": "US", "items": [{"productId": product, "quantity": 1, "unitValueUsd": 5}]}]});
                    let started = Instant::now();
                    let resp = client
                        .post(&url)
                        .bearer_auth(&key)
                        .header("idempotency-key", format!("b-{tag}-{i}"))
                        .json(&body)
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(started.elapsed().as_secs_f64() * 1e3);
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        };

        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let (client, tally, next) = (client.clone(), tally.clone(), next.clone());
                let url = format!("{}/api/orders/sync", self.base);
                let (key, account) = (self.key_a.to_owned(), self.account_a.to_owned());
                let products = self.products_a.to_vec();
                let tag = tag.to_owned();
                tokio::spawn(async move {
                    loop {
                        let Some(sync) = next.lock().unwrap().next() else {
                            return;
                        };
                        let body = body(&account, &products, sync, &tag);
                        let started = Instant::now();
                        loop {
                            let resp = client
                                .post(&url)
                                .bearer_auth(&key)
                                .header("idempotency-key", format!("flood-{tag}-{sync}"))
                                .header("content-type", "application/json")
                                .body(body.clone())
                                .send()
                                .await;
                            let Ok(resp) = resp else {
                                *tally.lock().unwrap().statuses.entry(0).or_default() += 1;
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                continue;
                            };
                            let status = resp.status().as_u16();
                            let retry_after = resp
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                            let replayed = resp.headers().contains_key("idempotent-replayed");
                            let _ = resp.bytes().await;
                            let refused = {
                                let mut t = tally.lock().unwrap();
                                *t.statuses.entry(status).or_default() += 1;
                                if status == 200 {
                                    t.acknowledged.push(sync);
                                    t.replayed_acknowledgements += u64::from(replayed);
                                }
                                let refused = status == 429 || status == 503;
                                if refused && retry_after.is_none() {
                                    t.refusals_without_retry_after += 1;
                                }
                                if refused && started.elapsed() > GIVE_UP_AFTER {
                                    t.given_up += 1;
                                    false
                                } else {
                                    refused
                                }
                            };
                            if refused {
                                tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1)))
                                    .await;
                                continue;
                            }
                            break;
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let (latencies, errors) = b.await.unwrap();
        let tally = Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap();
        (tally, latencies, errors)
    }

    /// Orders stored per sync of A, read from the database.
    async fn stored_per_sync(&self, tag: &str) -> BTreeMap<usize, usize> {
        use sea_orm::{ConnectionTrait, Statement};
        let conn = sea_orm::Database::connect(self.database_url).await.unwrap();
        let backend = conn.get_database_backend();
        let prefix = format!("flood-{tag}-");
        let sql = format!(
            "SELECT external_id FROM orders WHERE account_id = '{}' AND external_id LIKE '{prefix}%'",
            self.account_a
        );
        let rows = conn
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap();
        let mut stored = BTreeMap::new();
        for row in rows {
            let ext: String = row.try_get("", "external_id").unwrap();
            let sync: usize = ext[prefix.len()..]
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            *stored.entry(sync).or_default() += 1;
        }
        conn.close().await.ok();
        stored
    }
}
