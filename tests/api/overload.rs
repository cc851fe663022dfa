//! Budgets, fair share and the supervised writer.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, batch, body_json, order, spawn_app, spawn_app_with};

const LINE: (&str, &str, &str) = ("prod_cap_002", "1", "1");

/// Runs `$body` on both backends with an app built by `spawn_app_with`.
macro_rules! both_backends_with {
    ($(async fn $name:ident($app:ident, $configure:expr) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($app: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                run(spawn_app_with(Backend::Sqlite, $configure).await.unwrap()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                match spawn_app_with(Backend::Postgres, $configure).await {
                    Some(app) => run(app).await,
                    None => $crate::helpers::postgres_missing(),
                }
            }
        }
    )*};
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// POSTs `body` as a sync sent in 16 KiB chunks, with no declared length.
async fn post_chunked(app: &TestApp, body: &[u8]) -> reqwest::Response {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(16 << 10).map(|c| Ok(c.to_vec())).collect();
    app.client
        .post(app.url("/api/orders/sync"))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap()
}

/// Orders of ten lines, about `bytes` of JSON in all (at most 1,000 orders).
fn heavy_batch(prefix: &str, bytes: usize) -> Value {
    let one = serde_json::to_string(&order("x", &[LINE; 10]))
        .unwrap()
        .len();
    let orders = (0..bytes / one)
        .map(|i| order(&format!("{prefix}-{i}"), &[LINE; 10]))
        .collect();
    batch(orders)
}

both_backends_with! {
    async fn an_account_over_its_share_gets_429_and_others_are_served(app, |s| {
        s.account_inflight_bytes = 64 << 10;
        s.admission_wait_ms = 0;
    }) {
        // Another request of the demo account holds its whole share.
        let held = app.state.admission.admit(&app.account_id, Some(64 << 10)).await.unwrap();
        let body = batch(vec![order("refused-1", &[LINE])]);
        let resp = app.post_with_key("/api/orders/sync", "fair-1", &body).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(header(&resp, "retry-after"), Some("1"));
        assert_eq!(header(&resp, "ratelimit-policy"), Some(r#""inflight";q=65536;qu="content-bytes""#));
        assert_eq!(header(&resp, "ratelimit"), Some(r#""inflight";r=0;t=1"#));
        assert_eq!(body_json(resp).await["errorCode"], "RATE_LIMITED");
        assert_eq!(app.order_count().await, 0, "a refused request stores nothing");

        // Another account is not held back by the demo account's work.
        let other = json!({"accountId": app.other_account_id,
            "items": [order("other-1", &[(app.other_product_id.as_str(), "1", "1")])]});
        let resp = app.post_as(&app.other_api_key, "/api/orders/sync", &other).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "ratelimit-policy"), Some(r#""inflight";q=65536;qu="content-bytes""#));
        assert!(header(&resp, "ratelimit").is_some_and(|v| v.starts_with(r#""inflight";r="#)));

        // Once the share is free, the refused key is still usable.
        drop(held);
        let resp = app.post_with_key("/api/orders/sync", "fair-1", &body).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("idempotent-replayed").is_none());
    }

    async fn a_saturated_process_answers_503_with_retry_after(app, |s| {
        s.max_inflight_bytes = 128 << 10;
        s.account_inflight_bytes = 128 << 10;
        s.admission_wait_ms = 0;
    }) {
        let held = app.state.admission.admit(&app.other_account_id, Some(128 << 10)).await.unwrap();
        let resp = app.post_with_key("/api/products/sync", "busy-1",
            &json!({"accountId": "acc_123", "items": [{"externalId": "sku-busy", "name": "Busy"}]})).await;
        assert_eq!(resp.status(), 503);
        assert_eq!(header(&resp, "retry-after"), Some("1"));
        assert_eq!(body_json(resp).await["errorCode"], "SERVICE_UNAVAILABLE");
        drop(held);
        let resp = app.post_with_key("/api/products/sync", "busy-1",
            &json!({"accountId": "acc_123", "items": [{"externalId": "sku-busy", "name": "Busy"}]})).await;
        assert_eq!(resp.status(), 200);
    }

    async fn a_request_waits_briefly_for_room_before_it_is_refused(app, |s| {
        s.account_inflight_bytes = 64 << 10;
        s.admission_wait_ms = 5_000;
    }) {
        let held = app.state.admission.admit(&app.account_id, Some(64 << 10)).await.unwrap();
        let waiting = {
            let (client, url, key) = (app.client.clone(), app.url("/api/orders/sync"), app.api_key.clone());
            tokio::spawn(async move {
                client.post(url).bearer_auth(key).json(&batch(vec![order("waits-1", &[LINE])])).send().await.unwrap().status()
            })
        };
        // The request is admitted once the room is given back, not refused.
        while app.state.admission.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert_eq!(waiting.await.unwrap(), 200);
    }

    async fn a_body_without_declared_length_is_charged_as_it_is_read(app, |s| {
        s.account_inflight_bytes = 64 << 10;
        s.admission_wait_ms = 0;
    }) {
        let body = serde_json::to_vec(&heavy_batch("chunked", 200 << 10)).unwrap();
        // Alone, a body larger than the share is charged the whole share and served.
        assert_eq!(post_chunked(&app, &body).await.status(), 200);
        let held = app.state.admission.admit(&app.account_id, Some(16 << 10)).await.unwrap();
        let resp = post_chunked(&app, &body).await;
        assert_eq!(resp.status(), 429);
        drop(held);
    }
}

crate::both_backends! {
    async fn ordinary_bursts_are_served_in_full(app) {
        // A retry storm: 64 concurrent syncs of 20 orders from one account.
        let storm = (0..64).map(|r| {
            let body = batch((0..20).map(|i| order(&format!("storm-{r}-{i}"), &[LINE])).collect());
            let (client, url, key) = (app.client.clone(), app.url("/api/orders/sync"), app.api_key.clone());
            tokio::spawn(async move { client.post(url).bearer_auth(key).json(&body).send().await.unwrap().status() })
        });
        for status in futures_util::future::join_all(storm).await {
            assert_eq!(status.unwrap(), 200);
        }
        // The S1 shape: 32 concurrent single-order syncs.
        let singles = (0..32).map(|i| {
            let body = batch(vec![order(&format!("single-{i}"), &[LINE])]);
            let (client, url, key) = (app.client.clone(), app.url("/api/orders/sync"), app.api_key.clone());
            tokio::spawn(async move {
                client.post(url).bearer_auth(key).header("idempotency-key", format!("s-{i}")).json(&body).send().await.unwrap().status()
            })
        });
        for status in futures_util::future::join_all(singles).await {
            assert_eq!(status.unwrap(), 200);
        }
        assert_eq!(app.order_count().await, 64 * 20 + 32);
    }

    async fn a_failed_writer_is_restarted_and_readiness_tells_meanwhile(app) {
        let ready = |app: &TestApp| {
            let (client, url) = (app.client.clone(), app.url("/readyz"));
            async move { client.get(url).send().await.unwrap().status().as_u16() }
        };
        assert_eq!(ready(&app).await, 200);
        app.state.order_writer.inject_fault(true);
        let body = batch(vec![order("during-fault", &[LINE])]);
        let resp = app.post_with_key("/api/orders/sync", "fault-1", &body).await;
        assert_eq!(resp.status(), 503);
        assert_eq!(header(&resp, "retry-after"), Some("1"));
        assert_eq!(body_json(resp).await["errorCode"], "SERVICE_UNAVAILABLE");
        // The writer keeps failing at each restart: not ready, syncs refused.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ready(&app).await != 503 {
            assert!(tokio::time::Instant::now() < deadline, "still ready with a failed writer");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let resp = app.post_with_key("/api/orders/sync", "fault-1", &body).await;
        assert_eq!(resp.status(), 503);
        assert_eq!(app.order_count().await, 0);

        app.state.order_writer.inject_fault(false);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ready(&app).await != 200 {
            assert!(tokio::time::Instant::now() < deadline, "writer not restarted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let resp = app.post_with_key("/api/orders/sync", "fault-1", &body).await;
        assert_eq!(resp.status(), 200, "the refused key is usable once the writer is back");
        assert_eq!(app.order_count().await, 1);
    }
}

#[tokio::test]
async fn defaults_admit_a_thousand_order_sync() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let resp = app.sync_orders(&heavy_batch("big", 400 << 10)).await;
    assert_eq!(resp.status(), 200);
}
