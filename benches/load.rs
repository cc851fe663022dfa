//! Load benchmark: the real release server, driven over loopback by `wrk`.
//!
//! `cargo bench --bench load` runs it on a fresh SQLite file and, with
//! `ENTRYGO_BENCH_POSTGRES_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`; its query, such as
//! `?sslmode=disable`, is kept for the server's URL), on a fresh
//! PostgreSQL database. It seeds an account and 200 products, then runs:
//!
//! - S1  new single-order syncs (1 order × 3 lines), 32 connections;
//! - S2  bulk syncs of 1,000 orders × 3 lines, one at a time;
//! - S3  re-syncs of existing orders with changed lines, 32 connections;
//! - S3u re-syncs of existing orders with unchanged content, 32 connections;
//! - S4  replays of one completed idempotent request, 32 connections;
//! - S5  `GET /api/orders/{id}`, 32 connections;
//! - S6  `GET /api/orders?limit=200` walking the cursor over the 10,000
//!   seeded orders, then starting over, 32 connections;
//! - S1f S1 while a consumer follows the change feed in pages of 200;
//! - P   previews of 1,000 orders × 3 lines (half changed, half new), one
//!   at a time;
//! - F   the flood: another account sends 400 syncs of 1,000 orders × 3
//!   lines, 200 at a time, while this one sends single-order syncs one
//!   after another (see `support/flood.rs`);
//! - U   writers of 1,000-order batches while a feed consumer and an
//!   `updatedSince` consumer pull: what each never saw (`support/feed.rs`);
//! - G   (only when named in `ENTRYGO_BENCH_SCENARIOS`) growth: sequential
//!   request times and storage at 10,000 orders in one account and at
//!   `ENTRYGO_BENCH_GROWTH_ORDERS` (default 1,000,000; `support/growth.rs`);
//! - I   (only when named) instructions the server executes per `GET` by
//!   ID (a first read, and a read of an order read before) and per page of
//!   200, counted by valgrind's callgrind (`support/instructions.rs`).
//!
//! Every sync carries a fresh `Idempotency-Key` (except S4's replays), as
//! clients are told to. Prints a table and writes `target/bench/load.json`.
//! Needs `wrk` (Debian: `apt-get install wrk`; installed if missing and
//! running as root). `ENTRYGO_BENCH_SECONDS` sets each scenario's length
//! (default 10); `ENTRYGO_BENCH_SCENARIOS=S1,S4` runs only those;
//! `ENTRYGO_BENCH_LOG` (a `RUST_LOG` filter) keeps the server logs;
//! `ENTRYGO_BENCH_METRICS_AB=<rounds>` then runs S1 and S5 with metrics off
//! and on (`--metrics-addr`), and `ENTRYGO_BENCH_FEED_AB=<rounds>` S1
//! without and with a feed consumer, alternating, printing both medians.
//! Not a pass/fail gate.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::{Value, json};

#[path = "support/ab.rs"]
mod ab;
#[path = "support/database_url.rs"]
mod database_url;
#[path = "support/feed.rs"]
mod feed;
#[path = "support/flood.rs"]
mod flood;
#[path = "support/growth.rs"]
mod growth;
#[path = "support/instructions.rs"]
mod instructions;
#[path = "support/scripts.rs"]
mod scripts;
#[path = "support/server.rs"]
mod server;
#[path = "support/wrk.rs"]
mod wrk;

use ab::{Ab, ab};
use scripts::{P, S1, S2, S3, S3U, S4, S5, S6, lua_common};
use server::{Server, create_account, psql};
use wrk::{Wrk, print_row};

const PRODUCTS: usize = 200;
const SEEDED_ORDERS: usize = 10_000;
const CONNECTIONS: u32 = 32;

fn main() {
    ensure_wrk();
    let seconds: u64 = std::env::var("ENTRYGO_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let work = std::env::temp_dir().join(format!("entrygo-load-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let mut results = Vec::new();
    results.extend(run_backend(
        "SQLite",
        &format!("sqlite://{}", work.join("load.db").display()),
        &work,
        seconds,
    ));
    if let Ok(admin) = std::env::var("ENTRYGO_BENCH_POSTGRES_URL") {
        let name = format!("entrygo_load_{}", std::process::id());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let url = database_url::beside(&admin, &name);
        results.extend(run_backend("PostgreSQL", &url, &work, seconds));
        psql(&admin, &format!("DROP DATABASE {name} WITH (FORCE)"));
    } else {
        println!("PostgreSQL: skipped (set ENTRYGO_BENCH_POSTGRES_URL)");
    }
    print_table(&results);
    print_flood_table(&results);
    growth::print_table(&results);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let report = json!({
        "machine": machine(),
        "secondsPerScenario": seconds,
        "connections": CONNECTIONS,
        "results": results,
    });
    std::fs::write(
        out.join("load.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    println!("\nwrote {}", out.join("load.json").display());
    if std::env::var_os("ENTRYGO_BENCH_LOG").is_some() {
        println!("server logs kept in {}", work.display());
    } else {
        std::fs::remove_dir_all(&work).ok();
    }
}

fn ensure_wrk() {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return;
    }
    eprintln!("wrk not found; installing Debian's package");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", "wrk"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "install wrk (apt-get install wrk) and rerun");
}

/// Syncs the account's `PRODUCTS` products; returns their IDs.
fn seed_products(
    client: &reqwest::blocking::Client,
    base: &str,
    key: &str,
    account: &str,
) -> Vec<String> {
    let items: Vec<Value> = (0..PRODUCTS)
        .map(|i| json!({"externalId": format!("sku-{i:03}"), "name": format!("Product {i}")}))
        .collect();
    let synced = post(
        client,
        &format!("{base}/api/products/sync"),
        key,
        &json!({"accountId": account, "items": items}),
    );
    synced["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

fn post(client: &reqwest::blocking::Client, url: &str, key: &str, body: &Value) -> Value {
    let resp = client.post(url).bearer_auth(key).json(body).send().unwrap();
    assert!(
        resp.status().is_success(),
        "seeding failed: {}",
        resp.text().unwrap()
    );
    resp.json().unwrap()
}

fn order_json(external_id: &str, products: &[String], i: usize, quantity: usize) -> Value {
    json!({"externalId": external_id, "destinationCountry": "US", "destinationRegion": "CA",
           "items": [{"productId": products[i % PRODUCTS], "quantity": quantity, "unitValueUsd": 10.5},
                     {"productId": products[(i + 1) % PRODUCTS], "quantity": 2, "unitValueUsd": 3},
                     {"productId": products[(i + 2) % PRODUCTS], "quantity": 3, "unitValueUsd": 0.99}]})
}

fn run_backend(backend: &str, database_url: &str, work: &Path, seconds: u64) -> Vec<Value> {
    println!("\n== {backend}");
    let key = create_account(database_url, "acc_load");
    let server = Server::start_with(database_url, &work.join(format!("{backend}.log")), false);
    let client = reqwest::blocking::Client::new();

    // 200 products, then 10,000 orders to re-sync and read.
    let products = seed_products(&client, &server.base, &key, "acc_load");
    let mut order_ids = Vec::new();
    for chunk in 0..SEEDED_ORDERS / 1000 {
        let orders: Vec<Value> = (0..1000)
            .map(|j| {
                let i = chunk * 1000 + j;
                order_json(&format!("seed-{i:05}"), &products, i, 1)
            })
            .collect();
        let resp = post(
            &client,
            &format!("{}/api/orders/sync", server.base),
            &key,
            &json!({"accountId": "acc_load", "items": orders}),
        );
        order_ids.extend(
            resp["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
    }
    // The S4 request, completed once.
    let replay_body =
        json!({"accountId": "acc_load", "items": [order_json("replayed-1", &products, 7, 1)]});
    let resp = client
        .post(format!("{}/api/orders/sync", server.base))
        .bearer_auth(&key)
        .header("idempotency-key", "bench-replay-1")
        .json(&replay_body)
        .send()
        .unwrap();
    assert!(resp.status().is_success());

    let common = lua_common(&key, &products, &order_ids, &replay_body);
    let scenarios: [(&str, &str, u32, u64); 9] = [
        ("S1", S1, CONNECTIONS, 1),
        // S1 again, with a change-feed consumer following it.
        ("S1f", S1, CONNECTIONS, 1),
        ("S2", S2, 1, 1000),
        ("S3", S3, CONNECTIONS, 1),
        ("S3u", S3U, CONNECTIONS, 1),
        ("S4", S4, CONNECTIONS, 1),
        ("S5", S5, CONNECTIONS, 1),
        // Pages of 200 (orders/s counts 200 a page; the last page of a
        // walk is shorter).
        ("S6", S6, CONNECTIONS, 200),
        ("P", P, 1, 1000),
    ];
    // `ENTRYGO_BENCH_SCENARIOS=S1,S4` runs only those (while profiling).
    let only: Option<Vec<String>> = std::env::var("ENTRYGO_BENCH_SCENARIOS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    let mut results = Vec::new();
    for (name, script, connections, orders_per_request) in scenarios {
        if only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|o| o == name))
        {
            continue;
        }
        server.reset_peak_rss();
        let consumer = (name == "S1f").then(|| feed::Consumer::start(&server.base, &key));
        let run = Wrk {
            work,
            backend,
            name,
            script: &format!("{common}\n{script}"),
            connections,
            orders_per_request,
            seconds,
        };
        let mut result = run.against(&server);
        if let Some(consumer) = consumer {
            let (pages, orders) = consumer.finish();
            println!("S1f  feed consumer: {pages:.0} pages/s, {orders:.0} orders/s");
            result["feedPagesPerSecond"] = json!(pages);
            result["feedOrdersPerSecond"] = json!(orders);
        }
        print_row(&result);
        results.push(result);
    }
    if only
        .as_ref()
        .is_none_or(|only| only.iter().any(|o| o == "F"))
    {
        // The flood's account A floods; acc_load is B.
        let key_a = create_account(database_url, "acc_flood");
        let products_a = seed_products(&client, &server.base, &key_a, "acc_flood");
        server.reset_peak_rss();
        let flood = flood::Flood {
            base: &server.base,
            database_url,
            key_a: &key_a,
            account_a: "acc_flood",
            products_a: &products_a,
            key_b: &key,
            account_b: "acc_load",
            product_b: &products[0],
        };
        results.push(flood.run(backend, || server.peak_rss_mb()));
    }
    if only
        .as_ref()
        .is_none_or(|only| only.iter().any(|o| o == "U"))
    {
        let key_u = create_account(database_url, "acc_feed");
        let products_u = seed_products(&client, &server.base, &key_u, "acc_feed");
        let recipes = feed::Recipes {
            base: &server.base,
            key: &key_u,
            account: "acc_feed",
            products: &products_u,
        };
        results.push(recipes.run(backend, seconds));
    }
    // Only when asked: seeding a million orders takes minutes.
    if only
        .as_ref()
        .is_some_and(|only| only.iter().any(|o| o == "G"))
    {
        let key_g = create_account(database_url, "acc_growth");
        let products_g = seed_products(&client, &server.base, &key_g, "acc_growth");
        let growth = growth::Growth {
            base: &server.base,
            database_url,
            key: &key_g,
            account: "acc_growth",
            products: &products_g,
        };
        results.push(growth.run(backend));
    }
    // Only when asked: the server runs under callgrind, fifty times slower.
    if only
        .as_ref()
        .is_some_and(|only| only.iter().any(|o| o == "I"))
    {
        let counted = instructions::Instructions {
            database_url,
            work,
            key: &key,
            order_ids: &order_ids,
        };
        results.push(counted.run(backend));
    }
    let rounds = |var: &str| {
        std::env::var(var)
            .ok()
            .and_then(|r| r.parse::<usize>().ok())
    };
    let switches = [
        (rounds("ENTRYGO_BENCH_FEED_AB"), Ab::Feed),
        (rounds("ENTRYGO_BENCH_METRICS_AB"), Ab::Metrics),
    ];
    if switches.iter().any(|(r, _)| r.is_some()) {
        drop(server);
        for (rounds, what) in switches {
            if let Some(rounds) = rounds {
                let runs = ab(
                    database_url,
                    work,
                    backend,
                    seconds,
                    rounds,
                    (&common, &key),
                    what,
                );
                results.extend(runs);
            }
        }
    }
    results
}

fn print_table(results: &[Value]) {
    println!(
        "\n| backend | scenario | req/s | orders/s | p50 ms | p99 ms | non-2xx | peak RSS MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in results
        .iter()
        .filter(|r| r.get("requestsPerSecond").is_some() && r.get("ab").is_none())
    {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {:.1} |",
            r["backend"].as_str().unwrap(),
            r["scenario"].as_str().unwrap(),
            r["requestsPerSecond"].as_f64().unwrap(),
            r["ordersPerSecond"].as_f64().unwrap(),
            r["p50Ms"].as_f64().unwrap(),
            r["p99Ms"].as_f64().unwrap(),
            r["non2xx"],
            r["peakRssMb"].as_f64().unwrap()
        );
    }
}

fn print_flood_table(results: &[Value]) {
    let floods: Vec<&Value> = results.iter().filter(|r| r["scenario"] == "F").collect();
    if floods.is_empty() {
        return;
    }
    println!(
        "\n| backend | seconds | A statuses (all attempts) | A acknowledged | B requests | B errors | B p50 ms | B p99 ms | B max ms | peak RSS MB | acknowledged stored | refused stored nothing | refusals without Retry-After |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|");
    for r in floods {
        println!(
            "| {} | {:.1} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            r["backend"].as_str().unwrap(),
            r["seconds"].as_f64().unwrap(),
            r["aStatuses"],
            r["aAcknowledged"],
            r["bRequests"],
            r["bErrors"],
            r["bP50Ms"].as_f64().unwrap(),
            r["bP99Ms"].as_f64().unwrap(),
            r["bMaxMs"].as_f64().unwrap(),
            r["peakRssMb"].as_f64().unwrap(),
            r["everyAcknowledgedOrderStored"],
            r["unacknowledgedStoredNothing"] == true && r["aAcknowledgedAsReplay"] == 0,
            r["aRefusalsWithoutRetryAfter"],
        );
    }
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    json!({"cpus": cpus, "cpu": model})
}
