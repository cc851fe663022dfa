//! The change feed under load.
//!
//! - `S1f`: S1 with a consumer following `GET /api/orders/changes` in
//!   pages of 200 ([`Consumer`]): the next page at once after a full one,
//!   after 100 ms (its poll interval) after a partial one, as the README's
//!   client loop does. Its pages/s and orders/s, and what it costs S1.
//! - `U` ([`Recipes`]): three writers sync 1,000-order batches (new orders
//!   and changed re-syncs) while two consumers pull: one follows the feed,
//!   one follows the old advice (`updatedSince` = the time its previous
//!   pull started). Prints how many acknowledged orders each never saw in
//!   their last state.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const PAGE: u32 = 200;
const PAGE_TEXT: &str = "200";
/// A caught-up consumer's poll interval.
const POLL: Duration = Duration::from_millis(100);

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `GET {base}{path}?{query}` with the key; the answer, decoded as `T`.
fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::blocking::Client,
    (base, key): (&str, &str),
    path: &str,
    query: &[(&str, &str)],
) -> T {
    client
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .query(query)
        .send()
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .unwrap()
}

/// The query of a feed page of [`PAGE`] after `after`.
fn feed_query(after: Option<&str>) -> Vec<(&'static str, &str)> {
    let mut query = vec![("limit", PAGE_TEXT)];
    query.extend(after.map(|a| ("after", a)));
    query
}

/// One page of the feed after `after`: (orders, nextToken).
fn feed_page(
    client: &reqwest::blocking::Client,
    base: &str,
    key: &str,
    after: Option<&str>,
) -> (Vec<Value>, String) {
    let body: Value = get_json(
        client,
        (base, key),
        "/api/orders/changes",
        &feed_query(after),
    );
    let token = body["nextToken"].as_str().unwrap().to_owned();
    (body["data"].as_array().cloned().unwrap_or_default(), token)
}

/// A page as the throughput consumer reads it: counted, not decoded, so
/// the consumer (on the same cores as the server) costs what a client's
/// parse would not.
#[derive(serde::Deserialize)]
struct Counted {
    data: Vec<serde::de::IgnoredAny>,
    #[serde(rename = "nextToken")]
    next_token: String,
}

/// Follows the feed until it is caught up; returns the token.
fn catch_up(client: &reqwest::blocking::Client, base: &str, key: &str) -> String {
    let mut after = None;
    loop {
        let (orders, token) = feed_page(client, base, key, after.as_deref());
        after = Some(token);
        if orders.is_empty() {
            return after.unwrap();
        }
    }
}

/// A feed consumer on its own thread, counting what it reads.
pub struct Consumer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, u64, f64)>,
}

impl Consumer {
    /// Catches up with the feed, then follows it until [`Self::finish`].
    pub fn start(base: &str, key: &str) -> Self {
        let (base, key) = (base.to_owned(), key.to_owned());
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let client = client();
        let mut after = catch_up(&client, &base, &key);
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let (mut pages, mut orders) = (0, 0);
            while !stopping.load(Ordering::Relaxed) {
                let page: Counted = get_json(
                    &client,
                    (&base, &key),
                    "/api/orders/changes",
                    &feed_query(Some(&after)),
                );
                after = page.next_token;
                pages += 1;
                orders += page.data.len() as u64;
                if page.data.len() < PAGE as usize {
                    std::thread::sleep(POLL);
                }
            }
            (pages, orders, started.elapsed().as_secs_f64())
        });
        Self { stop, thread }
    }

    /// Stops; returns (pages/s, orders/s).
    pub fn finish(self) -> (f64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        let (pages, orders, seconds) = self.thread.join().unwrap();
        (pages as f64 / seconds, orders as f64 / seconds)
    }
}

pub struct Recipes<'a> {
    pub base: &'a str,
    pub key: &'a str,
    pub account: &'a str,
    pub products: &'a [String],
}

const WRITERS: usize = 3;
const BATCH: usize = 1000;

impl Recipes<'_> {
    /// Runs for `seconds`; returns the scenario's result row.
    pub fn run(&self, backend: &str, seconds: u64) -> Value {
        let done = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let writers: Vec<JoinHandle<HashMap<String, f64>>> = (0..WRITERS)
            .map(|w| {
                let (base, key, account) =
                    (self.base.to_owned(), self.key.to_owned(), self.account.to_owned());
                let products = self.products.to_vec();
                std::thread::spawn(move || {
                    let client = client();
                    let mut acked = HashMap::new();
                    let mut b = 0;
                    while started.elapsed() < Duration::from_secs(seconds) {
                        // Half of each batch changes orders of the first
                        // batch; the other half is new.
                        let items: Vec<(String, u64)> = (0..BATCH)
                            .map(|i| match b > 0 && i % 2 == 0 {
                                true => (format!("u-w{w}-b0-{i}"), 1 + b as u64),
                                false => (format!("u-w{w}-b{b}-{i}"), 1),
                            })
                            .collect();
                        let orders: Vec<Value> = items.iter().map(|(id, q)| json!({
                            "externalId": id, "destinationCountry": "US",
                            "items": [{"productId": products[0], "quantity": q, "unitValueUsd": 1}]})).collect();
                        client
                            .post(format!("{base}/api/orders/sync"))
                            .bearer_auth(&key)
                            .json(&json!({"accountId": account, "items": orders}))
                            .send()
                            .unwrap()
                            .error_for_status()
                            .unwrap();
                        acked.extend(items.into_iter().map(|(id, q)| (id, q as f64)));
                        b += 1;
                    }
                    acked
                })
            })
            .collect();
        let feed = {
            let (base, key, done) = (self.base.to_owned(), self.key.to_owned(), done.clone());
            std::thread::spawn(move || follow_feed(&base, &key, &done))
        };
        let recipe = {
            let (base, key, done) = (self.base.to_owned(), self.key.to_owned(), done.clone());
            std::thread::spawn(move || follow_updated_since(&base, &key, &done))
        };
        let mut acked: HashMap<String, f64> = HashMap::new();
        for writer in writers {
            acked.extend(writer.join().unwrap());
        }
        done.store(true, Ordering::Relaxed);
        let missed = |seen: &HashMap<String, f64>| {
            acked
                .iter()
                .filter(|(id, total)| seen.get(*id) != Some(*total))
                .count()
        };
        let (feed, recipe) = (feed.join().unwrap(), recipe.join().unwrap());
        let row = json!({
            "backend": backend,
            "scenario": "U",
            "acknowledged": acked.len(),
            "feedMissed": missed(&feed),
            "updatedSinceMissed": missed(&recipe),
        });
        println!(
            "U    {} acknowledged orders; never seen in their last state: feed {}, updatedSince recipe {}",
            row["acknowledged"], row["feedMissed"], row["updatedSinceMissed"]
        );
        row
    }
}

/// Follows the feed until `done`, then drains it; the last total seen of
/// each order.
fn follow_feed(base: &str, key: &str, done: &AtomicBool) -> HashMap<String, f64> {
    let client = client();
    let mut seen = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let finishing = done.load(Ordering::Relaxed);
        let (orders, token) = feed_page(&client, base, key, after.as_deref());
        after = Some(token);
        let empty = orders.is_empty();
        record(&mut seen, orders);
        if finishing && empty {
            return seen;
        }
        if empty {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The old advice: every ~20 ms, list with `updatedSince` = the start of
/// the previous pull, until `done`, then once more.
fn follow_updated_since(base: &str, key: &str, done: &AtomicBool) -> HashMap<String, f64> {
    let client = client();
    let mut seen = HashMap::new();
    let mut since: Option<String> = None;
    loop {
        let finishing = done.load(Ordering::Relaxed);
        let pull_started = chrono::Utc::now().to_rfc3339();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("limit", PAGE_TEXT)];
            query.extend(since.as_deref().map(|s| ("updatedSince", s)));
            query.extend(cursor.as_deref().map(|c| ("cursor", c)));
            let body: Value = get_json(&client, (base, key), "/api/orders", &query);
            record(
                &mut seen,
                body["data"].as_array().cloned().unwrap_or_default(),
            );
            match body["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        since = Some(pull_started);
        if finishing {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn record(seen: &mut HashMap<String, f64>, orders: Vec<Value>) {
    for o in orders {
        let total = o["totalValueUsd"].as_f64().unwrap_or(f64::NAN);
        seen.insert(o["externalId"].as_str().unwrap().to_owned(), total);
    }
}
