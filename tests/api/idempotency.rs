use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{
        ServerProcess, TestApp, batch, body_json, order, seed_order_request, validation_issues,
    },
};

pub const ORDERS: &str = "/api/orders/sync";

pub fn replayed(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

pub async fn ok_text(resp: reqwest::Response) -> (bool, String) {
    assert_eq!(resp.status(), 200);
    let was_replayed = replayed(&resp);
    (was_replayed, resp.text().await.unwrap())
}

fn ids(text: &str) -> Vec<Value> {
    let body: Value = serde_json::from_str(text).unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect()
}

async fn seed_existing_order(app: &TestApp, external_id: &str) {
    let body = batch(vec![order(external_id, &[("prod_cap_002", "1", "1")])]);
    assert_eq!(app.sync_orders(&body).await.status(), 200);
}

both_backends! {
    async fn a_retry_replays_the_first_response_byte_for_byte_and_writes_nothing(app) {
        let body = seed_order_request();
        let (first_replayed, first) = ok_text(app.post_with_key(ORDERS, "retry-1", &body).await).await;
        assert!(!first_replayed);
        let versions = app.order_versions().await;
        for _ in 0..3 {
            let (again_replayed, again) = ok_text(app.post_with_key(ORDERS, "retry-1", &body).await).await;
            assert!(again_replayed);
            assert_eq!(again, first);
        }
        assert_eq!(app.order_versions().await, versions);
        assert_eq!((app.order_count().await, app.line_count().await), (1, 2));

        let products = json!({"accountId": "acc_123", "items": [{"externalId": "p-1", "name": "P"}]});
        let (_, first) = ok_text(app.post_with_key("/api/products/sync", "retry-1", &products).await).await;
        let resp = app.post_with_key("/api/products/sync", "retry-1", &products).await;
        assert!(replayed(&resp));
        assert_eq!(resp.text().await.unwrap(), first);
    }

    async fn a_client_that_timed_out_gets_the_completed_result_on_retry(app) {
        seed_existing_order(&app, "slow-1").await;
        let body = batch(vec![order("slow-1", &[("prod_cap_002", "5", "2")]), order("new-1", &[("prod_cap_002", "1", "1")])]);
        let blocker = app.block_writes("slow-1").await;
        let impatient = reqwest::Client::builder().timeout(Duration::from_millis(600)).build().unwrap();
        let sent = impatient
            .post(app.url(ORDERS))
            .bearer_auth(&app.api_key)
            .header("idempotency-key", "timeout-1")
            .json(&body)
            .send()
            .await;
        assert!(sent.is_err_and(|e| e.is_timeout()));
        blocker.release().await;
        // The abandoned request still completes; its retry replays it.
        let text = loop {
            let resp = app.post_with_key(ORDERS, "timeout-1", &body).await;
            if resp.status() == 409 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let (was_replayed, text) = ok_text(resp).await;
            assert!(was_replayed, "the retry must not execute again");
            break text;
        };
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["data"][0]["totalValueUsd"], 10);
        assert_eq!((app.order_count().await, app.line_count().await), (2, 2));
        assert_eq!(ids(&text).len(), 2);
    }

    async fn a_key_reused_with_a_changed_quantity_gets_422_and_changes_nothing(app) {
        let body = seed_order_request();
        let (_, first) = ok_text(app.post_with_key(ORDERS, "reuse-1", &body).await).await;
        let versions = app.order_versions().await;
        let mut changed = body.clone();
        changed["items"][0]["items"][0]["quantity"] = json!(3);
        let resp = app.post_with_key(ORDERS, "reuse-1", &changed).await;
        assert_eq!(resp.status(), 422);
        assert_eq!(body_json(resp).await, json!({
            "errorCode": "IDEMPOTENCY_KEY_REUSED",
            "message": "This idempotency key was already used with a different request."
        }));
        assert_eq!(app.order_versions().await, versions);
        // The original request still replays.
        let (_, again) = ok_text(app.post_with_key(ORDERS, "reuse-1", &body).await).await;
        assert_eq!(again, first);
        assert_eq!(serde_json::from_str::<Value>(&again).unwrap()["data"][0]["items"][0]["quantity"], 2);
    }

    async fn keys_are_scoped_by_account_and_operation(app) {
        let body = seed_order_request();
        assert!(!replayed(&app.post_with_key(ORDERS, "shared", &body).await));
        let products = json!({"accountId": "acc_123", "items": [{"externalId": "p-1", "name": "P"}]});
        let resp = app.post_with_key("/api/products/sync", "shared", &products).await;
        assert_eq!(resp.status(), 200);
        assert!(!replayed(&resp));
        let other = json!({"accountId": app.other_account_id, "items": [{"externalId": "p-1", "name": "Q"}]});
        let resp = app
            .client
            .post(app.url("/api/products/sync"))
            .bearer_auth(&app.other_api_key)
            .header("idempotency-key", "shared")
            .json(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(!replayed(&resp));
    }

    async fn the_header_wins_and_the_body_key_works_alone(app) {
        let mut body = seed_order_request();
        body["idempotencyKey"] = json!("body-key-1");
        let (r1, first) = ok_text(app.sync_orders(&body).await).await;
        assert!(!r1);
        // Same request, key in the body again, fields reordered and reformatted.
        let text = format!(
            "{{ \"items\" : {} , \"idempotencyKey\":\"body-key-1\", \"accountId\": \"acc_123\" }}",
            seed_order_request()["items"]
        );
        let resp = app.client.post(app.url(ORDERS)).bearer_auth(&app.api_key)
            .header("content-type", "application/json").body(text).send().await.unwrap();
        let (r2, again) = ok_text(resp).await;
        assert!(r2);
        assert_eq!(again, first);
        // The same key moved to the header: the same request.
        let (r3, moved) = ok_text(app.post_with_key(ORDERS, "body-key-1", &seed_order_request()).await).await;
        assert!(r3);
        assert_eq!(moved, first);
        // With a header, a malformed body key is ignored.
        let mut malformed = seed_order_request();
        malformed["idempotencyKey"] = json!(["not", "a", "key"]);
        let (r4, _) = ok_text(app.post_with_key(ORDERS, "header-key-1", &malformed).await).await;
        assert!(!r4);
        assert_eq!(app.order_count().await, 1);
    }

    async fn malformed_keys_are_validation_issues_listed_with_the_rest(app) {
        let mut broken = seed_order_request();
        broken["items"][0]["items"][0]["quantity"] = json!(0);
        let resp = app.post_with_key(ORDERS, "", &broken).await;
        let issues = validation_issues(resp).await;
        assert_eq!(issues, vec![
            ("Idempotency-Key".to_owned(), "too_small".to_owned()),
            ("items.0.items.0.quantity".to_owned(), "too_small".to_owned()),
        ]);
        let issues = validation_issues(app.post_with_key(ORDERS, &"k".repeat(256), &seed_order_request()).await).await;
        assert_eq!(issues, vec![("Idempotency-Key".to_owned(), "too_big".to_owned())]);
        for bad in [json!("has space"), json!("ключ"), json!(""), json!(42)] {
            let mut body = seed_order_request();
            body["idempotencyKey"] = bad.clone();
            let issues = validation_issues(app.sync_orders(&body).await).await;
            assert_eq!(issues.len(), 1, "{bad}");
            assert_eq!(issues[0].0, "idempotencyKey");
        }
        assert_eq!(app.order_count().await, 0);
    }

    async fn rejected_requests_store_nothing(app) {
        let mut invalid = seed_order_request();
        invalid["items"][0]["destinationCountry"] = json!("ZZ");
        assert_eq!(app.post_with_key(ORDERS, "fix-me", &invalid).await.status(), 400);
        let mut foreign = seed_order_request();
        foreign["accountId"] = json!("acc_999");
        assert_eq!(app.post_with_key(ORDERS, "fix-me", &foreign).await.status(), 403);
        let resp = app.client.post(app.url(ORDERS)).header("idempotency-key", "fix-me")
            .json(&seed_order_request()).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        // The corrected request executes under the same key.
        let resp = app.post_with_key(ORDERS, "fix-me", &seed_order_request()).await;
        assert_eq!(resp.status(), 200);
        assert!(!replayed(&resp));
        assert_eq!(app.order_count().await, 1);
    }

    async fn identical_requests_sent_at_once_write_once(app) {
        let body = batch((0..20).map(|i| order(&format!("same-{i}"), &[("prod_cap_002", "1", "1")])).collect());
        let requests = (0..10).map(|_| app.post_with_key(ORDERS, "burst-1", &body));
        let mut executed = 0;
        let mut texts = Vec::new();
        for resp in futures_util::future::join_all(requests).await {
            match resp.status().as_u16() {
                200 => {
                    executed += usize::from(!replayed(&resp));
                    texts.push(resp.text().await.unwrap());
                }
                409 => assert_eq!(body_json(resp).await["errorCode"], "IDEMPOTENCY_KEY_IN_USE"),
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!(executed, 1);
        texts.dedup();
        assert_eq!(texts.len(), 1);
        assert_eq!((app.order_count().await, app.line_count().await), (20, 20));
    }

    async fn a_key_still_in_flight_gets_409_then_replays(app) {
        seed_existing_order(&app, "held-1").await;
        let body = batch(vec![order("held-1", &[("prod_cap_002", "2", "2")])]);
        let blocker = app.block_writes("held-1").await;
        let first = tokio::spawn({
            let (client, url, key, body) = (app.client.clone(), app.url(ORDERS), app.api_key.clone(), body.clone());
            async move {
                client.post(url).bearer_auth(key).header("idempotency-key", "held").json(&body).send().await.unwrap()
            }
        });
        app.wait_for_idempotency_lock().await;
        let resp = app.post_with_key(ORDERS, "held", &body).await;
        assert_eq!(resp.status(), 409);
        assert_eq!(body_json(resp).await["errorCode"], "IDEMPOTENCY_KEY_IN_USE");
        blocker.release().await;
        let (r1, first) = ok_text(first.await.unwrap()).await;
        assert!(!r1);
        let (r2, again) = ok_text(app.post_with_key(ORDERS, "held", &body).await).await;
        assert!(r2);
        assert_eq!(again, first);
    }

    async fn two_server_processes_share_the_idempotency_records(app) {
        let (a, b) = (ServerProcess::start(&app.database_url), ServerProcess::start(&app.database_url));
        let post = |server: &ServerProcess, key: &str, body: &Value| {
            app.client.post(format!("{}{ORDERS}", server.address)).bearer_auth(&app.api_key)
                .header("idempotency-key", key).json(body).send()
        };
        // Executed on A, replayed by B.
        let body = seed_order_request();
        let (r1, first) = ok_text(post(&a, "two-1", &body).await.unwrap()).await;
        let (r2, again) = ok_text(post(&b, "two-1", &body).await.unwrap()).await;
        assert!(!r1 && r2);
        assert_eq!(again, first);

        // Sent to both at once: one write.
        let burst = batch((0..20).map(|i| order(&format!("both-{i}"), &[("prod_cap_002", "1", "1")])).collect());
        let requests = (0..10).map(|i| post(if i % 2 == 0 { &a } else { &b }, "two-2", &burst));
        let mut executed = 0;
        for resp in futures_util::future::join_all(requests).await {
            let resp = resp.unwrap();
            match resp.status().as_u16() {
                200 => executed += usize::from(!replayed(&resp)),
                409 => {}
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!(executed, 1);
        assert_eq!(app.order_count().await, 21);

        // In flight on A while B is asked: PostgreSQL answers 409 at once;
        // on SQLite the file's write lock serialises them and B replays.
        let held = batch(vec![order("wms-order-1001", &[("prod_cap_002", "7", "1")])]);
        let blocker = app.block_writes("wms-order-1001").await;
        let (claims_a, claims_b) = (a.claims(), b.claims());
        let on_a = tokio::spawn(post(&a, "two-3", &held));
        if app.state.db.backend() == sea_orm::DbBackend::Postgres {
            app.wait_for_idempotency_lock().await;
            let resp = post(&b, "two-3", &held).await.unwrap();
            assert_eq!(resp.status(), 409);
            blocker.release().await;
            let (r, _) = ok_text(on_a.await.unwrap().unwrap()).await;
            assert!(!r);
        } else {
            a.wait_for_claim_after(claims_a).await;
            let on_b = tokio::spawn(post(&b, "two-3", &held));
            b.wait_for_claim_after(claims_b).await;
            blocker.release().await;
            let (ra, ta) = ok_text(on_a.await.unwrap().unwrap()).await;
            let (rb, tb) = ok_text(on_b.await.unwrap().unwrap()).await;
            assert_eq!(ta, tb);
            assert!(ra != rb, "exactly one executes");
        }
        let (r, text) = ok_text(post(&b, "two-3", &held).await.unwrap()).await;
        assert!(r);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["data"][0]["items"][0]["quantity"], 7);
    }
}
