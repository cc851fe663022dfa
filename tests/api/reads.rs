use std::collections::HashSet;

use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{
        ServerProcess, TestApp, batch, body_json, order, seed_order_request, validation_issues,
    },
};

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(&self.api_key, path).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }
}

async fn sync_many(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    let orders: Vec<Value> = (0..n)
        .map(|i| order(&format!("{prefix}-{i:04}"), &[("prod_cap_002", "1", "1")]))
        .collect();
    let body = body_json(app.sync_orders(&batch(orders)).await).await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

both_backends! {
    async fn a_read_after_another_instance_changed_the_order_is_never_stale(app) {
        // A process answers a `GET` from the orders it has rendered only
        // while the database holds them unchanged: a change written by
        // another instance, with its own memory, is read at once.
        let first = batch(vec![order("fresh-1", &[("prod_cap_002", "1", "35")])]);
        let id = body_json(app.sync_orders(&first).await).await["data"][0]["id"].as_str().unwrap().to_owned();
        let path = format!("/api/orders/{id}");
        assert_eq!(body_json(app.get(&path).await).await["totalValueUsd"], 35);
        let other = ServerProcess::start(&app.database_url);
        let mut changed = order("fresh-1", &[("prod_hoodie_001", "2", "110"), ("prod_cap_002", "3", "35")]);
        changed["destinationRegion"] = json!("CA");
        let resp = app.client.post(format!("{}/api/orders/sync", other.address))
            .bearer_auth(&app.api_key).json(&batch(vec![changed])).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let written = body_json(resp).await["data"][0].clone();
        assert_eq!(written["totalValueUsd"], 325);
        for _ in 0..2 {
            let resp = app.get(&path).await;
            assert_eq!(resp.status(), 200);
            assert_eq!(body_json(resp).await, written);
        }
        // Another account's key finds nothing, though the order is in
        // memory now.
        let foreign = app.get_as(&app.other_api_key, &path).await;
        assert_eq!(foreign.status(), 404);
    }

    async fn a_cached_order_is_answered_only_at_its_version(app) {
        // What the cache answers is tied to the order's version: rows
        // changed behind the server's back, version kept, are not seen (so
        // the answer came from memory); a new version is read at once.
        // Every sync that changes an order gives it a new version (the
        // test above).
        use sea_orm::ConnectionTrait;
        let body = batch(vec![order("cached-1", &[("prod_cap_002", "1", "35")])]);
        let id = body_json(app.sync_orders(&body).await).await["data"][0]["id"].as_str().unwrap().to_owned();
        let path = format!("/api/orders/{id}");
        let before = body_json(app.get(&path).await).await;
        let conn = app.state.db.conn();
        conn.execute_unprepared(&format!("UPDATE order_items SET quantity = 9 WHERE order_id = '{id}'"))
            .await.unwrap();
        assert_eq!(body_json(app.get(&path).await).await, before);
        conn.execute_unprepared(&format!("UPDATE orders SET change_seq = change_seq + 1 WHERE id = '{id}'"))
            .await.unwrap();
        assert_eq!(body_json(app.get(&path).await).await["items"][0]["quantity"], 9);
    }

    async fn an_order_reads_back_in_the_sync_shape(app) {
        let synced = body_json(app.sync_orders(&seed_order_request()).await).await["data"][0].clone();
        let id = synced["id"].as_str().unwrap();
        let resp = app.get(&format!("/api/orders/{id}")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(body_json(resp).await, synced);
        // A page holds it the same, lines in the order sent (not by
        // product ID: the hoodie's line comes before the cap's).
        let page = body_json(app.get("/api/orders?externalId=wms-order-1001").await).await;
        assert_eq!(page["data"], json!([synced]));
    }

    async fn unknown_and_foreign_ids_are_404(app) {
        let id = body_json(app.sync_orders(&seed_order_request()).await).await["data"][0]["id"].as_str().unwrap().to_owned();
        let foreign = app.get_as(&app.other_api_key, &format!("/api/orders/{id}")).await;
        let unknown = app.get("/api/orders/ord_00000000000000000000000000000000").await;
        for resp in [foreign, unknown] {
            assert_eq!(resp.status(), 404);
            assert_eq!(body_json(resp).await, json!({"errorCode": "ORDER_NOT_FOUND", "message": "Order not found."}));
        }
        let foreign = app.get_as(&app.other_api_key, "/api/products/prod_hoodie_001").await;
        let unknown = app.get(&format!("/api/products/{}", app.other_product_id)).await;
        for resp in [foreign, unknown] {
            assert_eq!(resp.status(), 404);
            assert_eq!(body_json(resp).await, json!({"errorCode": "PRODUCT_NOT_FOUND", "message": "Product not found."}));
        }
        // Listings show only the caller's own.
        let theirs = body_json(app.get_as(&app.other_api_key, "/api/orders").await).await;
        assert_eq!(theirs, json!({"data": [], "nextCursor": null}));
        let reads = app.client.get(app.url(&format!("/api/orders/{id}"))).send().await.unwrap();
        assert_eq!(reads.status(), 401);
    }

    async fn a_pagination_walk_returns_every_order_once(app) {
        let mut expected: HashSet<String> = sync_many(&app, "walk", 250).await.into_iter().collect();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/orders?limit=60&cursor={c}"),
                None => "/api/orders?limit=60".to_owned(),
            };
            let page = body_json(app.get(&path).await).await;
            pages += 1;
            seen.extend(page["data"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()));
            if pages == 2 {
                // Orders arriving mid-walk do not disturb it.
                expected.extend(sync_many(&app, "late", 5).await);
                let resync = batch(vec![order("walk-0000", &[("prod_hoodie_001", "9", "1")])]);
                assert_eq!(app.sync_orders(&resync).await.status(), 200);
            }
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(pages, 5);
        let unique: HashSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "an order came twice");
        assert_eq!(unique, expected);
        // Lines come with each order.
        let first = body_json(app.get("/api/orders?limit=1").await).await;
        assert_eq!(first["data"][0]["items"].as_array().unwrap().len(), 1);
    }

    async fn an_update_time_walk_is_the_id_walk_however_many_match(app) {
        // More than the 10,000 matches a page is cut from in memory: the
        // first pages walk the IDs, the last ones are cut from the matches.
        let since = chrono::Utc::now() - chrono::Duration::seconds(1);
        let mut expected = Vec::new();
        for chunk in 0..11 {
            expected.extend(sync_many(&app, &format!("many{chunk:02}"), 1000).await);
        }
        expected.sort();
        let since = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/orders?limit=200&updatedSince={since}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = body_json(app.get(&path).await).await;
            seen.extend(page["data"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()));
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "every order once, in ID order");
    }

    async fn listing_filters_by_external_id_and_update_time(app) {
        sync_many(&app, "old", 3).await;
        let ids = sync_many(&app, "find", 2).await;
        let page = body_json(app.get("/api/orders?externalId=find-0001").await).await;
        assert_eq!(page["data"].as_array().unwrap().len(), 1);
        assert_eq!(page["data"][0]["id"], ids[1].as_str());
        assert_eq!(page["nextCursor"], Value::Null);
        let none = body_json(app.get("/api/orders?externalId=nope").await).await;
        assert_eq!(none, json!({"data": [], "nextCursor": null}));

        let since = app.instant_after_last_write().await;
        // The re-sync below is stamped after `since`.
        while chrono::Utc::now() <= since {
            tokio::task::yield_now().await;
        }
        let resync = batch(vec![order("old-0001", &[("prod_cap_002", "2", "1")])]);
        assert_eq!(app.sync_orders(&resync).await.status(), 200);
        let path = format!("/api/orders?updatedSince={}", since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        let changed = body_json(app.get(&path).await).await;
        let external: Vec<&str> = changed["data"].as_array().unwrap().iter().map(|o| o["externalId"].as_str().unwrap()).collect();
        assert_eq!(external, ["old-0001"]);
        // An offset is honoured: the same instant written in UTC-05:00.
        let local = since.with_timezone(&chrono::FixedOffset::west_opt(5 * 3600).unwrap());
        let path = format!("/api/orders?updatedSince={}", local.to_rfc3339_opts(chrono::SecondsFormat::Micros, false).replace('+', "%2B"));
        assert_eq!(body_json(app.get(&path).await).await["data"].as_array().unwrap().len(), 1);
    }

    async fn bad_list_parameters_are_validation_issues(app) {
        for (query, path) in [
            ("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"),
            ("cursor=bm90LW91cnM", "cursor"), ("cursor=%25%25", "cursor"), ("updatedSince=yesterday", "updatedSince"),
        ] {
            let issues = validation_issues(app.get(&format!("/api/orders?{query}")).await).await;
            assert_eq!(issues.len(), 1, "{query}");
            assert_eq!(issues[0].0, path, "{query}");
        }
        // A products cursor is not an orders cursor.
        let resp = app.sync_products(&json!({"accountId": "acc_123", "items": [{"externalId": "a", "name": "A"}]})).await;
        assert_eq!(resp.status(), 200);
        let page = body_json(app.get("/api/products?limit=1").await).await;
        let cursor = page["nextCursor"].as_str().unwrap();
        let issues = validation_issues(app.get(&format!("/api/orders?cursor={cursor}")).await).await;
        assert_eq!(issues[0].0, "cursor");
        assert_eq!(app.get("/api/orders?limit=200").await.status(), 200);
    }

    async fn products_read_back_and_list(app) {
        let body = json!({"accountId": "acc_123", "items": (0..5).map(|i| json!({"externalId": format!("sku-{i}"), "name": format!("P{i}")})).collect::<Vec<_>>()});
        let synced = body_json(app.sync_products(&body).await).await["data"].clone();
        let id = synced[2]["id"].as_str().unwrap();
        assert_eq!(body_json(app.get(&format!("/api/products/{id}")).await).await, synced[2]);
        let by_sku = body_json(app.get("/api/products?externalId=sku-3").await).await;
        assert_eq!(by_sku["data"], json!([synced[3]]));
        // 2 demo products + 5 new, in pages of 3.
        let mut seen = HashSet::new();
        let mut path = "/api/products?limit=3".to_owned();
        loop {
            let page = body_json(app.get(&path).await).await;
            for p in page["data"].as_array().unwrap() {
                assert!(seen.insert(p["id"].as_str().unwrap().to_owned()));
            }
            match page["nextCursor"].as_str() {
                Some(c) => path = format!("/api/products?limit=3&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 7);
    }
}
