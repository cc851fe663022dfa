//! Idempotency records over time and across processes: expiry, records
//! written by another process or an earlier release, keys that are not
//! ASCII.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{
        Backend, TestApp, batch, body_json, order, seed_order_request, spawn_app_with,
        validation_issues,
    },
    idempotency::{ORDERS, ok_text, replayed},
};

/// Waits until the demo account's `syncOrders` record under `key` is no
/// longer live.
async fn wait_until_expired(app: &TestApp, key: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = entrygo::domain::idempotency::now_ms();
        let live = entrygo::db::idempotency::find_live_many(
            app.state.db.conn(),
            &[("acc_123", "syncOrders", key)],
            now,
        )
        .await
        .unwrap();
        if live.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the record did not expire"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn expired_keys_behave_as_new(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.idempotency_ttl = 1).await else {
        return crate::helpers::postgres_missing();
    };
    let body = seed_order_request();
    assert!(!replayed(
        &app.post_with_key(ORDERS, "short-lived", &body).await
    ));
    assert!(replayed(
        &app.post_with_key(ORDERS, "short-lived", &body).await
    ));
    wait_until_expired(&app, "short-lived").await;
    // Expired: a different request under the same key executes.
    let mut changed = body.clone();
    changed["items"][0]["items"][0]["quantity"] = json!(4);
    let resp = app.post_with_key(ORDERS, "short-lived", &changed).await;
    assert_eq!(resp.status(), 200);
    assert!(!replayed(&resp));
    assert_eq!(body_json(resp).await["data"][0]["totalValueUsd"], 475);
    // Its replays answer the new record, not the expired one this process
    // had read before; the old request is now another request's key.
    for _ in 0..2 {
        let resp = app.post_with_key(ORDERS, "short-lived", &changed).await;
        assert!(replayed(&resp));
        assert_eq!(body_json(resp).await["data"][0]["totalValueUsd"], 475);
    }
    let resp = app.post_with_key(ORDERS, "short-lived", &body).await;
    assert_eq!(resp.status(), 422);
    // The purge removes expired records and keeps live ones.
    wait_until_expired(&app, "short-lived").await;
    assert!(!replayed(&app.post_with_key(ORDERS, "fresh", &body).await));
    let purged = entrygo::db::idempotency::purge_expired(
        app.state.db.conn(),
        entrygo::domain::idempotency::now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(purged, 1);
    assert!(replayed(&app.post_with_key(ORDERS, "fresh", &body).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_keys_behave_as_new_sqlite() {
    expired_keys_behave_as_new(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_keys_behave_as_new_postgres() {
    expired_keys_behave_as_new(Backend::Postgres).await
}

/// Stores a completed `syncOrders` record of the demo account directly, as
/// another process (or an earlier release) would have.
async fn store_record(app: &TestApp, key: &str, body: &Value, response: &str) {
    let record = entrygo::db::idempotency::NewRecord {
        account_id: "acc_123",
        operation: "syncOrders",
        key,
        request_hash: &entrygo::domain::idempotency::fingerprint(body),
        status: 200,
        response_body: response,
    };
    let expires = entrygo::domain::idempotency::now_ms() + 60_000;
    entrygo::db::idempotency::save(app.state.db.conn(), &[record], expires)
        .await
        .unwrap();
}

both_backends! {
    async fn a_burst_of_retries_of_a_request_completed_elsewhere_all_replay(app) {
        // Completed by another process: this one has never seen the record.
        let body = seed_order_request();
        store_record(&app, "elsewhere", &body, r#"{"data":["x"]}"#).await;
        let burst = (0..16).map(|_| app.post_with_key(ORDERS, "elsewhere", &body));
        for resp in futures_util::future::join_all(burst).await {
            assert!(replayed(&resp), "status {}", resp.status());
            assert_eq!(ok_text(resp).await.1, r#"{"data":["x"]}"#);
        }
        assert_eq!(app.order_count().await, 0);
    }

    async fn a_completed_request_is_replayed_even_if_it_would_be_rejected_now(app) {
        // A record left by an earlier release, whose rules accepted a body
        // that today's validation rejects (here: an unknown product).
        let body = batch(vec![order("legacy-1", &[("prod_gone_999", "1", "5")])]);
        store_record(&app, "legacy-key", &body, r#"{"data":[]}"#).await;
        let resp = app.post_with_key(ORDERS, "legacy-key", &body).await;
        assert!(replayed(&resp));
        assert_eq!(ok_text(resp).await.1, r#"{"data":[]}"#);
        // Another body under that key is judged on its own: invalid first.
        let other = batch(vec![order("legacy-2", &[("prod_gone_999", "1", "5")])]);
        let resp = app.post_with_key(ORDERS, "legacy-key", &other).await;
        assert_eq!(resp.status(), 400);
        // Without a key, the same body is simply invalid.
        assert_eq!(app.sync_orders(&body).await.status(), 400);
        assert_eq!(app.order_count().await, 0);
    }
}

both_backends! {
    async fn a_key_that_is_not_ascii_is_reported_not_dropped(app) {
        let resp = app
            .client
            .post(app.url(ORDERS))
            .bearer_auth(&app.api_key)
            .header("idempotency-key", reqwest::header::HeaderValue::from_bytes("ключ".as_bytes()).unwrap())
            .json(&seed_order_request())
            .send()
            .await
            .unwrap();
        let issues = validation_issues(resp).await;
        assert_eq!(issues, vec![("Idempotency-Key".to_owned(), "invalid_string".to_owned())]);
        assert_eq!(app.order_count().await, 0);
    }
}

/// On PostgreSQL a stored response is compressed with lz4 (migration
/// `m20261206_000011_compress_stored_responses_with_lz4`), and replays as
/// it was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stored_responses_are_compressed_with_lz4_postgres() {
    let Some(app) = crate::helpers::spawn_app(Backend::Postgres).await else {
        return crate::helpers::postgres_missing();
    };
    // Large enough to be compressed: about 40 KB of answer.
    let orders = (0..200)
        .map(|i| order(&format!("lz4-{i}"), &[("prod_cap_002", "1", "19.99")]))
        .collect();
    let body = batch(orders);
    let first = app.post_with_key(ORDERS, "lz4-key", &body).await;
    assert_eq!(first.status(), 200);
    let first = first.text().await.unwrap();
    let sql = "SELECT pg_column_compression(response_body) AS method FROM idempotency_keys \
               WHERE key = 'lz4-key'";
    let methods: Vec<String> = crate::db_probes::rows(app.state.db.conn(), sql).await;
    assert_eq!(methods, ["lz4"]);
    let again = app.post_with_key(ORDERS, "lz4-key", &body).await;
    assert!(replayed(&again));
    assert_eq!(again.text().await.unwrap(), first);
}
