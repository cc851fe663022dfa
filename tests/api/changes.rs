//! The order change feed: `GET /api/orders/changes`.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Backend, ServerProcess, TestApp, batch, body_json, order, validation_issues},
};

const CHANGES: &str = "/api/orders/changes";
const LINE: (&str, &str, &str) = ("prod_cap_002", "1", "5");

/// One page of the feed as `key`'s account: (orders, nextToken).
async fn page(app: &TestApp, key: &str, after: Option<&str>, limit: u32) -> (Vec<Value>, String) {
    let mut req = app
        .client
        .get(app.url(CHANGES))
        .bearer_auth(key)
        .query(&[("limit", limit)]);
    if let Some(after) = after {
        req = req.query(&[("after", after)]);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = body_json(resp).await;
    let token = body["nextToken"]
        .as_str()
        .expect("nextToken on every page")
        .to_owned();
    (body["data"].as_array().unwrap().clone(), token)
}

/// Follows the feed from `after` until a page comes back empty; returns
/// what it delivered and where to go on.
async fn drain(app: &TestApp, key: &str, mut after: Option<String>) -> (Vec<Value>, String) {
    let mut seen = Vec::new();
    loop {
        let (orders, token) = page(app, key, after.as_deref(), 200).await;
        after = Some(token);
        if orders.is_empty() {
            return (seen, after.unwrap());
        }
        seen.extend(orders);
    }
}

/// Follows the feed from `after` in pages of `limit` until it has
/// delivered `n` orders. On PostgreSQL a change is served once every older
/// transaction of the database server has ended (other tests run beside
/// this one), so an empty page is no proof of the end: poll, within a bound.
async fn collect(
    app: &TestApp,
    key: &str,
    mut after: Option<String>,
    limit: u32,
    n: usize,
) -> (Vec<Value>, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let (orders, token) = page(app, key, after.as_deref(), limit).await;
        after = Some(token);
        let empty = orders.is_empty();
        seen.extend(orders);
        if seen.len() >= n {
            return (seen, after.unwrap());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} changes arrived",
            seen.len()
        );
        if empty {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn external_ids(orders: &[Value]) -> Vec<&str> {
    orders
        .iter()
        .map(|o| o["externalId"].as_str().unwrap())
        .collect()
}

both_backends! {
    async fn the_feed_delivers_changes_once_in_commit_order_and_only_the_accounts_own(app) {
        let (empty, start) = page(&app, &app.api_key, None, 50).await;
        assert!(empty.is_empty());
        let key = app.api_key.clone();
        let synced = app.sync_orders(&batch(vec![
            order("feed-1", &[LINE]), order("feed-2", &[LINE]), order("feed-3", &[LINE]),
        ])).await;
        assert_eq!(synced.status(), 200);
        // Another account's order never shows.
        let other = json!({"accountId": app.other_account_id, "items": [
            {"externalId": "theirs-1", "destinationCountry": "US",
             "items": [{"productId": app.other_product_id, "quantity": 1, "unitValueUsd": 1}]}]});
        assert_eq!(app.post_as(&app.other_api_key.clone(), "/api/orders/sync", &other).await.status(), 200);

        // From the token of the empty page, in pages of two.
        let (first, token) = collect(&app, &key, Some(start), 2, 3).await;
        let mut delivered = external_ids(&first);
        delivered.sort_unstable();
        assert_eq!(delivered, ["feed-1", "feed-2", "feed-3"]);
        assert_eq!(first[0]["items"][0]["productId"], "prod_cap_002", "orders come whole");
        let id = first[0]["id"].as_str().unwrap();
        let read = app.client.get(app.url(&format!("/api/orders/{id}"))).bearer_auth(&key).send().await.unwrap();
        assert_eq!(body_json(read).await, first[0], "in the shape of the sync response and GET");
        let (none, token) = drain(&app, &key, Some(token)).await;
        assert!(none.is_empty());

        // An unchanged re-sync is no change; a changed one comes again, whole.
        let resync = batch(vec![order("feed-1", &[LINE]), order("feed-2", &[("prod_cap_002", "3", "5")])]);
        assert_eq!(app.sync_orders(&resync).await.status(), 200);
        // feed-1 would come in the same transaction as feed-2, if at all.
        let (again, token) = collect(&app, &key, Some(token), 200, 1).await;
        assert_eq!(external_ids(&again), ["feed-2"]);
        assert_eq!(again[0]["totalValueUsd"], 15);

        // The whole history, from the start, is the latest state of each.
        let (all, _) = collect(&app, &key, None, 200, 3).await;
        let mut ids = external_ids(&all);
        ids.sort_unstable();
        assert_eq!(ids, ["feed-1", "feed-2", "feed-3"]);

        // The other account sees its own only.
        let (theirs, _) = collect(&app, &app.other_api_key, None, 200, 1).await;
        assert_eq!(external_ids(&theirs), ["theirs-1"]);
        let _ = token;
    }

    async fn a_token_that_is_not_ours_is_a_validation_error_at_after(app) {
        for after in ["nope", "ord_123", "2d31323a6f72645", "2d31323a6f72645fprod_1"] {
            let resp = app.client.get(app.url(CHANGES)).bearer_auth(&app.api_key)
                .query(&[("after", after)]).send().await.unwrap();
            assert_eq!(resp.status(), 400, "{after}");
            let issues = validation_issues(resp).await;
            assert_eq!(issues[0].0, "after", "{after}");
        }
        for limit in ["0", "201"] {
            let resp = app.client.get(app.url(CHANGES)).bearer_auth(&app.api_key)
                .query(&[("limit", limit)]).send().await.unwrap();
            assert_eq!(resp.status(), 400);
            assert_eq!(validation_issues(resp).await[0].0, "limit");
        }
        let resp = app.client.get(app.url(CHANGES)).send().await.unwrap();
        assert_eq!(resp.status(), 401);
    }
}

/// Orders per batch, writers per round, batches per writer.
const BATCH: usize = 1000;
const WRITERS: usize = 3;
const BATCHES: usize = 3;

/// Rounds of the concurrency proof: `ENTRYGO_FEED_ROUNDS`, 10 by default.
fn rounds() -> usize {
    std::env::var("ENTRYGO_FEED_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10)
}

/// Writer `w`'s batch `b` of round `r`: batch 0 creates its orders, later
/// batches change half of them (new quantities) and create the rest anew.
fn writer_batch(r: usize, w: usize, b: usize) -> (Vec<Value>, Vec<(String, u64)>) {
    let mut orders = Vec::with_capacity(BATCH);
    let mut totals = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        let (id, quantity) = if b > 0 && i % 2 == 0 {
            (format!("r{r}-w{w}-b0-{i}"), 1 + b as u64)
        } else {
            (format!("r{r}-w{w}-b{b}-{i}"), 1)
        };
        orders.push(order(&id, &[("prod_cap_002", &quantity.to_string(), "5")]));
        totals.push((id, quantity * 5));
    }
    (orders, totals)
}

/// Several writers sync 1,000-order batches (on PostgreSQL through two
/// server processes) while a consumer follows the feed; once the writers
/// are done and the feed is drained, the consumer holds every acknowledged
/// order with the total of its last acknowledged sync, and nothing of the
/// other account.
async fn the_feed_misses_nothing_under_concurrent_writers(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app(backend).await else {
        return crate::helpers::postgres_missing();
    };
    let servers: Vec<ServerProcess> = match backend {
        Backend::Postgres => (0..2)
            .map(|_| ServerProcess::start(&app.database_url))
            .collect(),
        Backend::Sqlite => Vec::new(),
    };
    let bases: Vec<String> = if servers.is_empty() {
        vec![app.address.clone()]
    } else {
        servers.iter().map(|s| s.address.clone()).collect()
    };
    let mut after: Option<String> = None;
    let mut latest: HashMap<String, Value> = HashMap::new();
    for round in 0..rounds() {
        let writers = (0..WRITERS)
            .map(|w| {
                let (client, key, base) = (
                    app.client.clone(),
                    app.api_key.clone(),
                    bases[w % bases.len()].clone(),
                );
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for b in 0..BATCHES {
                        let (orders, totals) = writer_batch(round, w, b);
                        let resp = client
                            .post(format!("{base}/api/orders/sync"))
                            .bearer_auth(&key)
                            .json(&batch(orders))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
                        acked.extend(totals);
                    }
                    acked
                })
            })
            .collect::<Vec<_>>();
        // The other account writes meanwhile; none of it may show.
        let other = json!({"accountId": app.other_account_id, "items": (0..50).map(|i| json!(
            {"externalId": format!("theirs-{round}-{i}"), "destinationCountry": "US",
             "items": [{"productId": app.other_product_id, "quantity": 1, "unitValueUsd": 1}]})).collect::<Vec<_>>()});
        let other_write = app.post_as(&app.other_api_key, "/api/orders/sync", &other);

        // Poll while the writers run.
        let mut expected: HashMap<String, u64> = HashMap::new();
        let mut pending = writers;
        let other_status = {
            let poll = async {
                loop {
                    let (orders, token) = page(&app, &app.api_key, after.as_deref(), 200).await;
                    after = Some(token);
                    for o in orders {
                        latest.insert(o["externalId"].as_str().unwrap().to_owned(), o);
                    }
                    if pending.iter().all(|w| w.is_finished()) {
                        break;
                    }
                }
            };
            let (_, other) = tokio::join!(poll, other_write);
            other.status()
        };
        assert_eq!(other_status, 200);
        for writer in pending.drain(..) {
            expected.extend(writer.await.unwrap());
        }
        // Drain: the feed catches up with every acknowledged write.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (orders, token) = drain(&app, &app.api_key, after.clone()).await;
            after = Some(token);
            for o in orders {
                latest.insert(o["externalId"].as_str().unwrap().to_owned(), o);
            }
            let missing: Vec<&String> = expected
                .iter()
                .filter(|(id, total)| {
                    latest.get(*id).and_then(|o| o["totalValueUsd"].as_u64()) != Some(**total)
                })
                .map(|(id, _)| id)
                .collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: {} acknowledged orders never arrived in their last state, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            latest
                .values()
                .all(|o| o["accountId"] == app.account_id.as_str())
        );
        assert!(latest.keys().all(|id| !id.starts_with("theirs-")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_feed_misses_nothing_under_concurrent_writers_sqlite() {
    the_feed_misses_nothing_under_concurrent_writers(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_feed_misses_nothing_under_concurrent_writers_postgres() {
    the_feed_misses_nothing_under_concurrent_writers(Backend::Postgres).await
}
