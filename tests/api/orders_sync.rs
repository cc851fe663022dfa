use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{batch, body_json, order, seed_order_request, validation_issues},
};

fn issue(path: &str, code: &str) -> (String, String) {
    (path.to_owned(), code.to_owned())
}

both_backends! {
    async fn seed_example_returns_the_seed_response_shape(app) {
        let resp = app
            .client
            .post(app.url("/api/orders/sync"))
            .bearer_auth(&app.api_key)
            .header("idempotency-key", "orders-sync-acc-123-001")
            .json(&seed_order_request())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = body_json(resp).await;
        let order = &body["data"][0];
        assert!(order["id"].as_str().unwrap().starts_with("ord_"));
        let mut expected = json!({
            "id": order["id"], "accountId": "acc_123", "externalId": "wms-order-1001",
            "destinationCountry": "US", "destinationRegion": "CA", "destinationPostalCode": "94105",
            "totalValueUsd": 255,
            "items": [
                {"productId": "prod_hoodie_001", "quantity": 2, "unitValueUsd": 110},
                {"productId": "prod_cap_002", "quantity": 1, "unitValueUsd": 35}
            ]
        });
        assert_eq!(body, json!({"data": [expected.take()]}));
        assert_eq!(body["data"].as_array().unwrap().len(), 1);
        assert_eq!(app.order_count().await, 1);
        assert_eq!(app.line_count().await, 2);
        // Stored as sent; an order without metadata stores none (not JSON null).
        use sea_orm::EntityTrait;
        let stored = entrygo::db::entities::orders::Entity::find().one(app.state.db.conn()).await.unwrap().unwrap();
        assert_eq!(stored.metadata, Some(json!({"source": "warehouse-wms", "wave": "wave-17"})));
        assert_eq!(stored.total_value_usd, "255");
        let bare = batch(vec![crate::helpers::order("no-metadata", &[("prod_cap_002", "1", "1")])]);
        assert_eq!(app.sync_orders(&bare).await.status(), 200);
        let stored = entrygo::db::entities::orders::Entity::find_by_id((
            app.account_id.clone(),
            body_json(app.sync_orders(&bare).await).await["data"][0]["id"].as_str().unwrap().to_owned(),
        )).one(app.state.db.conn()).await.unwrap().unwrap();
        assert_eq!((stored.metadata, stored.destination_region), (None, None));
    }

    async fn resync_keeps_the_id_and_replaces_destination_and_lines(app) {
        let first = body_json(app.sync_orders(&seed_order_request()).await).await;
        let id = first["data"][0]["id"].clone();
        let resync = batch(vec![json!({
            "externalId": "wms-order-1001", "destinationCountry": "ca",
            "items": [{"productId": "prod_cap_002", "quantity": 3, "unitValueUsd": 19.99}]
        })]);
        let resp = app.sync_orders(&resync).await;
        assert_eq!(resp.status(), 200);
        let order = body_json(resp).await["data"][0].clone();
        assert_eq!(order["id"], id);
        assert_eq!(order["destinationCountry"], "CA");
        assert_eq!(order["destinationRegion"], Value::Null);
        assert_eq!(order["destinationPostalCode"], Value::Null);
        assert_eq!(order["items"], json!([{"productId": "prod_cap_002", "quantity": 3, "unitValueUsd": 19.99}]));
        assert_eq!(order["totalValueUsd"].to_string(), "59.97");
        assert_eq!(app.order_count().await, 1);
        assert_eq!(app.line_count().await, 1);
    }

    async fn a_resync_with_unchanged_content_writes_nothing_and_answers_alike(app) {
        let body = batch(vec![
            order("wave-1", &[("prod_hoodie_001", "2", "110"), ("prod_cap_002", "1", "35")]),
            order("wave-2", &[("prod_cap_002", "3", "19.99")]),
        ]);
        app.log_line_writes().await;
        let first = app.sync_orders(&body).await;
        assert_eq!(first.status(), 200);
        let first = first.text().await.unwrap();
        let ids: Vec<String> = serde_json::from_str::<Value>(&first).unwrap()["data"]
            .as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect();
        let (versions, lines) = (app.order_versions().await, app.line_writes().await);
        assert_eq!(lines.len(), 3);
        let since = app.instant_after_last_write().await.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

        // Same content, numbers spelled differently: the same answer, and
        // neither order nor line is rewritten.
        let mut respelled = body.clone();
        respelled["items"][1]["items"][0]["unitValueUsd"] = serde_json::from_str("19.990").unwrap();
        let again = app.sync_orders(&respelled).await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.text().await.unwrap(), first);
        assert_eq!(app.order_versions().await, versions);
        assert_eq!(app.line_writes().await, lines);
        let pulled = app.client.get(app.url("/api/orders"))
            .query(&[("updatedSince", since.as_str())])
            .bearer_auth(&app.api_key).send().await.unwrap();
        assert_eq!(body_json(pulled).await["data"], json!([]));

        // One order changed in the same batch: only it is written.
        let mut changed = body.clone();
        changed["items"][0]["items"][1]["quantity"] = json!(4);
        let resp = body_json(app.sync_orders(&changed).await).await;
        assert_eq!(resp["data"][0]["totalValueUsd"].to_string(), "360");
        let now = app.order_versions().await;
        assert_ne!(now[0], versions[0]);
        assert_eq!(now[1], versions[1]);
        let writes = app.line_writes().await;
        let rewritten = |id: &String| writes.iter().filter(|(order, _)| order == id).count();
        assert_eq!((rewritten(&ids[0]), rewritten(&ids[1])), (4, 1), "the unchanged order's line stays");
        assert_eq!(app.line_count().await, 3);
        let pulled = app.client.get(app.url("/api/orders"))
            .query(&[("updatedSince", since.as_str())])
            .bearer_auth(&app.api_key).send().await.unwrap();
        let pulled = body_json(pulled).await;
        assert_eq!(pulled["data"].as_array().unwrap().len(), 1);
        assert_eq!(pulled["data"][0]["externalId"], "wave-1");
    }

    async fn totals_are_exact_decimal_sums(app) {
        let body = batch(vec![
            order("exact-1", &[("prod_cap_002", "3", "19.99"), ("prod_cap_002", "1", "0.1"), ("prod_hoodie_001", "1", "0.2")]),
            order("exact-2", &[("prod_cap_002", "1", "0.1"), ("prod_cap_002", "1", "0.2")]),
            order("exact-3", &[("prod_cap_002", "1000000000", "1000000000"), ("prod_cap_002", "1", "0.000001")]),
        ]);
        let data = body_json(app.sync_orders(&body).await).await["data"].clone();
        let totals: Vec<String> = data.as_array().unwrap().iter().map(|o| o["totalValueUsd"].to_string()).collect();
        assert_eq!(totals, ["60.27", "0.3", "1000000000000000000.000001"]);
        // A productId may appear on several lines; lines keep request order.
        assert_eq!(data[0]["items"].as_array().unwrap().len(), 3);
        assert_eq!(data[0]["items"][2]["productId"], "prod_hoodie_001");
    }

    async fn numbers_are_judged_by_value_not_spelling(app) {
        let body = batch(vec![order("spelling", &[
            ("prod_cap_002", "2.0", "0.1000000"),
            ("prod_cap_002", "1.5e2", "1.5e1"),
            ("prod_cap_002", "1E0", "0"),
        ])]);
        let resp = app.sync_orders(&body).await;
        assert_eq!(resp.status(), 200);
        let items = body_json(resp).await["data"][0]["items"].clone();
        assert_eq!(items, json!([
            {"productId": "prod_cap_002", "quantity": 2, "unitValueUsd": 0.1},
            {"productId": "prod_cap_002", "quantity": 150, "unitValueUsd": 15},
            {"productId": "prod_cap_002", "quantity": 1, "unitValueUsd": 0}
        ]));
    }

    async fn seed_validation_example_names_the_missing_product_id(app) {
        let mut body = seed_order_request();
        body["items"][0]["items"][0].as_object_mut().unwrap().remove("productId");
        let resp = app.sync_orders(&body).await;
        assert_eq!(resp.status(), 400);
        let body = body_json(resp).await;
        assert_eq!(body, json!({
            "errorCode": "VALIDATION_ERROR",
            "message": "Request validation failed.",
            "field": "items.0.items.0.productId",
            "details": {"issues": [{"path": "items.0.items.0.productId", "message": "Required", "code": "invalid_type"}]}
        }));
        assert_eq!(app.order_count().await, 0);
    }

    async fn every_issue_is_listed_and_nothing_is_written(app) {
        let long = "x".repeat(256);
        let body = json!({
            "accountId": "acc_123",
            "items": [
                {"externalId": "good", "destinationCountry": "US",
                 "items": [{"productId": "prod_cap_002", "quantity": 1, "unitValueUsd": 1}]},
                {"externalId": long, "destinationCountry": "ZZ", "destinationRegion": "r".repeat(101),
                 "destinationPostalCode": 94105,
                 "items": [{"productId": "prod_cap_002", "quantity": 2.5, "unitValueUsd": 0.1234567},
                           {"productId": "prod_cap_002", "quantity": 0, "unitValueUsd": -1},
                           {"productId": "prod_cap_002", "quantity": "two", "unitValueUsd": 1000000000.000001}],
                 "metadata": ["not", "an", "object"]},
                {"destinationCountry": "US", "items": []},
                order("good", &[("prod_cap_002", "1000000001", "1e400")])
            ]
        });
        let issues = validation_issues(app.sync_orders(&body).await).await;
        assert_eq!(issues, vec![
            issue("items.1.externalId", "too_big"),
            issue("items.1.destinationCountry", "invalid_string"),
            issue("items.1.destinationRegion", "too_big"),
            issue("items.1.destinationPostalCode", "invalid_type"),
            issue("items.1.metadata", "invalid_type"),
            issue("items.1.items.0.quantity", "invalid_type"),
            issue("items.1.items.0.unitValueUsd", "not_multiple_of"),
            issue("items.1.items.1.quantity", "too_small"),
            issue("items.1.items.1.unitValueUsd", "too_small"),
            issue("items.1.items.2.quantity", "invalid_type"),
            issue("items.1.items.2.unitValueUsd", "too_big"),
            issue("items.2.externalId", "invalid_type"),
            issue("items.2.items", "too_small"),
            issue("items.3.externalId", "custom"),
            issue("items.3.items.0.quantity", "too_big"),
            issue("items.3.items.0.unitValueUsd", "too_big"),
        ]);
        assert_eq!(app.order_count().await, 0);
    }

    async fn unknown_and_foreign_products_are_issues_at_their_paths(app) {
        let body = batch(vec![order("refs", &[
            ("prod_cap_002", "1", "1"),
            ("prod_does_not_exist", "1", "1"),
            (app.other_product_id.as_str(), "1", "1"),
        ])]);
        let issues = validation_issues(app.sync_orders(&body).await).await;
        assert_eq!(issues, vec![
            issue("items.0.items.1.productId", "custom"),
            issue("items.0.items.2.productId", "custom"),
        ]);
        assert_eq!(app.order_count().await, 0);
    }

    async fn duplicate_external_id_is_an_issue_on_the_later_order(app) {
        let body = batch(vec![
            order("dup", &[("prod_cap_002", "1", "1")]),
            order("other", &[("prod_cap_002", "1", "1")]),
            order("dup", &[("prod_cap_002", "2", "1")]),
        ]);
        let issues = validation_issues(app.sync_orders(&body).await).await;
        assert_eq!(issues, vec![issue("items.2.externalId", "custom")]);
    }

    async fn batch_and_line_counts_are_bounded(app) {
        let line = ("prod_cap_002", "1", "1");
        let orders: Vec<Value> = (0..1001).map(|i| order(&format!("o-{i}"), &[line])).collect();
        let issues = validation_issues(app.sync_orders(&batch(orders)).await).await;
        assert_eq!(issues, vec![issue("items", "too_big")]);
        let lines = vec![line; 1001];
        let issues = validation_issues(app.sync_orders(&batch(vec![order("many-lines", &lines)])).await).await;
        assert_eq!(issues, vec![issue("items.0.items", "too_big")]);
        let issues = validation_issues(app.sync_orders(&json!({"accountId": "acc_123", "items": []})).await).await;
        assert_eq!(issues, vec![issue("items", "too_small")]);
        let issues = validation_issues(app.sync_orders(&json!([])).await).await;
        assert_eq!(issues, vec![issue("", "invalid_type")]);
        assert_eq!(app.order_count().await, 0);
    }

    async fn metadata_is_an_object_of_at_most_64_kib(app) {
        let mut fits = order("meta-ok", &[("prod_cap_002", "1", "1")]);
        // {"k":"…"} is 8 bytes of framing around the value.
        fits["metadata"] = json!({"k": "v".repeat(64 * 1024 - 8)});
        assert_eq!(app.sync_orders(&batch(vec![fits.clone()])).await.status(), 200);
        let mut too_big = fits;
        too_big["metadata"] = json!({"k": "v".repeat(64 * 1024 - 7)});
        let issues = validation_issues(app.sync_orders(&batch(vec![too_big])).await).await;
        assert_eq!(issues, vec![issue("items.0.metadata", "too_big")]);
    }

    async fn lengths_count_unicode_code_points(app) {
        let mut o = order(&"é".repeat(255), &[("prod_cap_002", "1", "1")]);
        o["destinationRegion"] = json!("ü".repeat(100));
        assert_eq!(app.sync_orders(&batch(vec![o])).await.status(), 200);
    }

    async fn unknown_fields_are_ignored(app) {
        let mut body = seed_order_request();
        body["extra"] = json!(1);
        body["items"][0]["color"] = json!("red");
        body["items"][0]["items"][0]["note"] = json!({"a": 1});
        assert_eq!(app.sync_orders(&body).await.status(), 200);
    }

    async fn a_thousand_orders_of_three_lines_sync_in_one_request(app) {
        let lines = [("prod_hoodie_001", "2", "110"), ("prod_cap_002", "1", "35"), ("prod_cap_002", "3", "0.5")];
        let orders: Vec<Value> = (0..1000).map(|i| order(&format!("bulk-{i:04}"), &lines)).collect();
        let resp = app.sync_orders(&batch(orders.clone())).await;
        assert_eq!(resp.status(), 200);
        let first: Vec<Value> = body_json(resp).await["data"].as_array().unwrap().clone();
        assert_eq!(first.len(), 1000);
        assert_eq!(first[999]["externalId"], "bulk-0999");
        assert_eq!(first[999]["totalValueUsd"].to_string(), "256.5");
        assert_eq!((app.order_count().await, app.line_count().await), (1000, 3000));
        // Re-sync in reverse order: same IDs, returned in request order.
        let reversed: Vec<Value> = orders.into_iter().rev().collect();
        let again = body_json(app.sync_orders(&batch(reversed)).await).await;
        assert_eq!(again["data"][0]["id"], first[999]["id"]);
        assert_eq!(again["data"][999]["id"], first[0]["id"]);
        assert_eq!((app.order_count().await, app.line_count().await), (1000, 3000));
    }

    async fn concurrent_syncs_of_one_new_external_id_make_one_order(app) {
        let body = batch(vec![order("race-1", &[("prod_cap_002", "1", "1")])]);
        let requests = (0..20).map(|_| app.sync_orders(&body));
        let responses = futures_util::future::join_all(requests).await;
        let mut ids = Vec::new();
        for resp in responses {
            assert_eq!(resp.status(), 200);
            ids.push(body_json(resp).await["data"][0]["id"].clone());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!((app.order_count().await, app.line_count().await), (1, 1));
    }

    async fn concurrent_overlapping_batches_all_succeed(app) {
        // Batches share orders in opposite orders: no deadlock, no 500.
        let forward: Vec<Value> = (0..50).map(|i| order(&format!("shared-{i}"), &[("prod_cap_002", "1", "1")])).collect();
        let backward: Vec<Value> = forward.iter().rev().cloned().collect();
        let bodies = [batch(forward), batch(backward)];
        let requests = (0..10).map(|i| app.sync_orders(&bodies[i % 2]));
        for resp in futures_util::future::join_all(requests).await {
            assert_eq!(resp.status(), 200);
        }
        assert_eq!((app.order_count().await, app.line_count().await), (50, 50));
    }

    async fn many_concurrent_syncs_each_get_their_own_answer(app) {
        // Written together by the order writer, answered one by one.
        let bodies: Vec<Value> = (0..60)
            .map(|i| {
                let shared = if i % 10 == 0 { "shared-order" } else { "" };
                let ext = if shared.is_empty() { format!("own-{i}") } else { shared.to_owned() };
                batch(vec![order(&ext, &[("prod_cap_002", &(i + 1).to_string(), "1.5")])])
            })
            .collect();
        let keys: Vec<String> = (0..bodies.len()).map(|i| format!("many-{i}")).collect();
        let requests = bodies.iter().zip(&keys).map(|(body, key)| app.post_with_key("/api/orders/sync", key, body));
        let responses = futures_util::future::join_all(requests).await;
        let mut shared_ids = Vec::new();
        for (i, resp) in responses.into_iter().enumerate() {
            assert_eq!(resp.status(), 200);
            let order = body_json(resp).await["data"][0].clone();
            assert_eq!(order["items"][0]["quantity"], i + 1);
            assert_eq!(order["totalValueUsd"].to_string(), (rust_decimal::Decimal::from(i + 1) * rust_decimal::Decimal::new(15, 1)).normalize().to_string());
            if i % 10 == 0 {
                shared_ids.push(order["id"].clone());
            } else {
                assert_eq!(order["externalId"], format!("own-{i}"));
            }
        }
        shared_ids.dedup();
        assert_eq!(shared_ids.len(), 1);
        assert_eq!((app.order_count().await, app.line_count().await), (55, 55));
        // Each answer was stored with its key.
        let again = app.post_with_key("/api/orders/sync", "many-7", &bodies[7]).await;
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(body_json(again).await["data"][0]["items"][0]["quantity"], 8);
    }
}
