//! Previews of syncs: `POST /api/orders/sync/preview`,
//! `POST /api/products/sync/preview`.

use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{TestApp, batch, body_json, order, seed_order_request},
};

const ORDERS: &str = "/api/orders/sync";
const ORDERS_PREVIEW: &str = "/api/orders/sync/preview";
const PRODUCTS: &str = "/api/products/sync";
const PRODUCTS_PREVIEW: &str = "/api/products/sync/preview";

/// (status, body) of a POST with the demo key, and optionally a key.
async fn post(app: &TestApp, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url(path))
        .bearer_auth(&app.api_key)
        .json(body);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), body_json(resp).await)
}

/// Everything stored: row counts and each order's version.
async fn stored(app: &TestApp) -> (u64, u64, Vec<(String, String)>) {
    (
        app.order_count().await,
        app.line_count().await,
        app.order_versions().await,
    )
}

fn actions(preview: &Value) -> Vec<(String, Value, String)> {
    preview["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["externalId"].as_str().unwrap().to_owned(),
                p["id"].clone(),
                p["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

both_backends! {
    async fn a_preview_tells_what_the_sync_then_does_and_writes_nothing(app) {
        let seeded = batch(vec![order("same-1", &[("prod_cap_002", "1", "5")]), order("changed-1", &[("prod_cap_002", "1", "5")])]);
        let (status, first) = post(&app, ORDERS, None, &seeded).await;
        assert_eq!(status, 200);
        let since = app.instant_after_last_write().await;
        let body = batch(vec![
            order("same-1", &[("prod_cap_002", "1", "5")]),
            order("changed-1", &[("prod_cap_002", "2", "5")]),
            order("new-1", &[("prod_hoodie_001", "3", "1.5")]),
        ]);
        let before = stored(&app).await;
        let (status, preview) = post(&app, ORDERS_PREVIEW, None, &body).await;
        assert_eq!(status, 200, "{preview}");
        assert_eq!(stored(&app).await, before, "a preview writes nothing");
        assert_eq!(preview["idempotency"], "new");
        assert_eq!(actions(&preview), [
            ("same-1".to_owned(), first["data"][0]["id"].clone(), "unchanged".to_owned()),
            ("changed-1".to_owned(), first["data"][1]["id"].clone(), "update".to_owned()),
            ("new-1".to_owned(), Value::Null, "create".to_owned()),
        ]);
        assert_eq!(preview["data"][1]["totalValueUsd"], 10);
        assert_eq!(preview["data"][2]["totalValueUsd"], 4.5);

        // The sync does what the preview said.
        let (status, synced) = post(&app, ORDERS, None, &body).await;
        assert_eq!(status, 200);
        assert_eq!(synced["data"][0]["id"], preview["data"][0]["id"]);
        assert_eq!(synced["data"][1]["id"], preview["data"][1]["id"]);
        assert_eq!(synced["data"][2]["totalValueUsd"], preview["data"][2]["totalValueUsd"]);
        let resp = app.client.get(app.url("/api/orders")).bearer_auth(&app.api_key)
            .query(&[("updatedSince", since.to_rfc3339())]).send().await.unwrap();
        let updated: Vec<String> = body_json(resp).await["data"].as_array().unwrap().iter()
            .map(|o| o["externalId"].as_str().unwrap().to_owned()).collect();
        assert!(!updated.contains(&"same-1".to_owned()), "unchanged keeps its instant: {updated:?}");
        assert!(updated.contains(&"changed-1".to_owned()) && updated.contains(&"new-1".to_owned()));
    }

    async fn a_product_preview_tells_create_update_unchanged(app) {
        let product = |sku: &str, name: &str| json!({"externalId": sku, "name": name, "hsCode": "610220"});
        let seed = json!({"accountId": app.account_id, "items": [product("sku-a", "A"), product("sku-b", "B")]});
        let (status, first) = post(&app, PRODUCTS, None, &seed).await;
        assert_eq!(status, 200);
        let body = json!({"accountId": app.account_id, "items": [product("sku-a", "A"), product("sku-b", "B2"), product("sku-c", "C")]});
        let (status, preview) = post(&app, PRODUCTS_PREVIEW, None, &body).await;
        assert_eq!(status, 200, "{preview}");
        assert_eq!(actions(&preview), [
            ("sku-a".to_owned(), first["data"][0]["id"].clone(), "unchanged".to_owned()),
            ("sku-b".to_owned(), first["data"][1]["id"].clone(), "update".to_owned()),
            ("sku-c".to_owned(), Value::Null, "create".to_owned()),
        ]);
        let resp = app.client.get(app.url("/api/products")).bearer_auth(&app.api_key)
            .query(&[("externalId", "sku-c")]).send().await.unwrap();
        assert!(body_json(resp).await["data"].as_array().unwrap().is_empty(), "nothing written");
    }

    async fn a_preview_fails_exactly_as_the_sync_would(app) {
        let mut wrong_account = seed_order_request();
        wrong_account["accountId"] = json!("acc_other");
        let mut unknown_product = seed_order_request();
        unknown_product["items"][0]["items"][0]["productId"] = json!("prod_missing_1");
        let mut bad_fields = seed_order_request();
        bad_fields["items"][0]["destinationCountry"] = json!("USA");
        bad_fields["items"][0]["items"][1]["quantity"] = json!(0);
        bad_fields["items"][0]["items"][1]["unitValueUsd"] = json!(1.0000001);
        let duplicates = batch(vec![order("dup-1", &[("prod_cap_002", "1", "1")]), order("dup-1", &[("prod_cap_002", "1", "1")])]);
        let bodies = [
            wrong_account, unknown_product, bad_fields, duplicates,
            json!({}), json!([]), json!({"accountId": "acc_123", "items": []}),
            json!({"accountId": "acc_123", "items": [{"externalId": "x\u{0}y"}]}),
        ];
        for body in &bodies {
            let sync = post(&app, ORDERS, None, body).await;
            let preview = post(&app, ORDERS_PREVIEW, None, body).await;
            assert!(sync.0 >= 400, "{body}");
            assert_eq!(preview, sync, "{body}");
        }
        // Not JSON, and no key.
        let raw = |path: &str, auth: bool| {
            let mut req = app.client.post(app.url(path)).header("content-type", "application/json").body("{not json");
            if auth {
                req = req.bearer_auth(&app.api_key);
            }
            async move {
                let resp = req.send().await.unwrap();
                (resp.status().as_u16(), body_json(resp).await)
            }
        };
        assert_eq!(raw(ORDERS_PREVIEW, true).await, raw(ORDERS, true).await);
        assert_eq!(raw(ORDERS_PREVIEW, false).await, raw(ORDERS, false).await);
        let mut products = json!({"accountId": app.account_id, "items": [{"externalId": "s", "name": ""}]});
        assert_eq!(post(&app, PRODUCTS_PREVIEW, None, &products).await, post(&app, PRODUCTS, None, &products).await);
        products["accountId"] = json!("acc_other");
        assert_eq!(post(&app, PRODUCTS_PREVIEW, None, &products).await, post(&app, PRODUCTS, None, &products).await);
        assert_eq!(app.order_count().await, 0);
    }

    async fn a_preview_judges_the_key_as_the_sync_would_and_stores_none(app) {
        let body = seed_order_request();
        // An unused key: no effect, and it stays unused.
        let (status, preview) = post(&app, ORDERS_PREVIEW, Some("pk-1"), &body).await;
        assert_eq!((status, preview["idempotency"].clone()), (200, json!("new")));
        let resp = app.post_with_key(ORDERS, "pk-1", &body).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("idempotent-replayed").is_none(), "the preview stored no record");
        let synced = body_json(resp).await;
        // The same request again: the sync would replay.
        let (status, preview) = post(&app, ORDERS_PREVIEW, Some("pk-1"), &body).await;
        assert_eq!(status, 200);
        assert_eq!(preview["idempotency"], "replay");
        assert_eq!(actions(&preview), [("wms-order-1001".to_owned(), synced["data"][0]["id"].clone(), "unchanged".to_owned())]);
        // Another request with it: 422, as the sync answers.
        let other = batch(vec![order("other-1", &[("prod_cap_002", "1", "1")])]);
        let preview = post(&app, ORDERS_PREVIEW, Some("pk-1"), &other).await;
        assert_eq!(preview.0, 422);
        assert_eq!(preview, post(&app, ORDERS, Some("pk-1"), &other).await);
        // A malformed key, as the sync reports it.
        assert_eq!(post(&app, ORDERS_PREVIEW, Some("bad key"), &body).await, post(&app, ORDERS, Some("bad key"), &body).await);
    }

    async fn a_preview_during_a_large_sync_neither_waits_nor_sees_half_of_it(app) {
        let (status, _) = post(&app, ORDERS, None, &batch(vec![order("big-0500", &[("prod_cap_002", "1", "1")])])).await;
        assert_eq!(status, 200);
        let big = batch((0..1000).map(|i| order(&format!("big-{i:04}"), &[("prod_cap_002", "2", "1")])).collect());
        // The sync stalls inside its write: on order big-0500's row
        // (PostgreSQL), or on the file's write lock (SQLite).
        let blocker = app.block_writes("big-0500").await;
        let sync = tokio::spawn({
            let (client, url, key, big) = (app.client.clone(), app.url(ORDERS), app.api_key.clone(), big.clone());
            async move { client.post(url).bearer_auth(key).json(&big).send().await.unwrap().status() }
        });
        let (status, preview) = tokio::time::timeout(std::time::Duration::from_secs(10), post(&app, ORDERS_PREVIEW, None, &big))
            .await
            .expect("a preview does not wait for writes");
        assert_eq!(status, 200);
        let planned = actions(&preview);
        assert_eq!(planned.iter().filter(|(_, _, a)| a == "create").count(), 999, "none of the sync in flight");
        assert_eq!(planned[500].2, "update");
        blocker.release().await;
        assert_eq!(sync.await.unwrap(), 200);
        let (_, after) = post(&app, ORDERS_PREVIEW, None, &big).await;
        assert!(actions(&after).iter().all(|(_, _, a)| a == "unchanged"));
    }
}
