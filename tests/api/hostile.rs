//! Hostile and careless bodies: each gets its documented 4xx, stores
//! nothing and leaves the server ready, on both backends alike.

use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{TestApp, batch, body_json, order, validation_issues},
};

const LINE: (&str, &str, &str) = ("prod_cap_002", "1", "1");

impl TestApp {
    /// POSTs raw bytes as JSON with the demo key.
    async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    async fn product_count(&self) -> u64 {
        use sea_orm::{EntityTrait, PaginatorTrait};
        entrygo::db::entities::products::Entity::find()
            .count(self.state.db.conn())
            .await
            .unwrap()
    }

    /// Nothing was stored and the server still answers `/readyz` 200.
    async fn assert_untouched(&self, products_before: u64) {
        assert_eq!(self.order_count().await, 0, "no order stored");
        assert_eq!(self.line_count().await, 0, "no line stored");
        assert_eq!(
            self.product_count().await,
            products_before,
            "no product stored"
        );
        let ready = self.client.get(self.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "server ready");
    }
}

fn issue(path: &str, code: &str) -> (String, String) {
    (path.to_owned(), code.to_owned())
}

/// An order whose `field` is replaced by `value`.
fn order_with(field: &str, value: Value) -> Value {
    let mut o = order("hostile-1", &[LINE]);
    o[field] = value;
    o
}

async fn assert_invalid_request(resp: reqwest::Response) {
    assert_eq!(resp.status(), 400);
    let body = body_json(resp).await;
    assert_eq!(body["errorCode"], "INVALID_REQUEST", "{body}");
}

both_backends! {
    async fn a_nul_character_in_any_string_is_an_invalid_string_issue(app) {
        let products = app.product_count().await;
        let nul = "a\u{0}b";
        let cases = [
            (order_with("externalId", json!(nul)), "items.0.externalId"),
            (order_with("destinationRegion", json!(nul)), "items.0.destinationRegion"),
            (order_with("destinationPostalCode", json!(nul)), "items.0.destinationPostalCode"),
            (order_with("metadata", json!({"k": nul})), "items.0.metadata.k"),
            (order_with("metadata", json!({"a": {"b": [1, nul]}})), "items.0.metadata.a.b.1"),
            (order_with("metadata", json!({nul: "v"})), "items.0.metadata"),
            (order_with("metadata", json!({"a": {nul: 1}})), "items.0.metadata.a"),
        ];
        // Unknown fields are ignored, never stored: U+0000 there is harmless.
        let ignored = order_with("unknownField", json!({nul: [nul]}));
        assert_eq!(app.sync_orders(&batch(vec![ignored])).await.status(), 200);
        assert_eq!(app.order_count().await, 1);
        let stored_before = app.order_versions().await;
        for (o, path) in cases {
            let issues = validation_issues(app.sync_orders(&batch(vec![o])).await).await;
            assert_eq!(issues, vec![issue(path, "invalid_string")], "{path}");
        }
        let mut line = order("hostile-1", &[LINE]);
        line["items"][0]["productId"] = json!("prod_cap_002\u{0}");
        let issues = validation_issues(app.sync_orders(&batch(vec![line])).await).await;
        assert_eq!(issues, vec![issue("items.0.items.0.productId", "invalid_string")]);
        for (field, path) in [("externalId", "items.0.externalId"), ("name", "items.0.name"), ("description", "items.0.description")] {
            let mut product = json!({"externalId": "sku-nul", "name": "Nul"});
            product[field] = json!(nul);
            let body = json!({"accountId": "acc_123", "items": [product]});
            let issues = validation_issues(app.sync_products(&body).await).await;
            assert_eq!(issues, vec![issue(path, "invalid_string")], "{field}");
        }
        assert_eq!(app.order_versions().await, stored_before, "nothing written");
        assert_eq!(app.product_count().await, products);
    }

    async fn a_nul_character_in_a_read_finds_nothing(app) {
        for path in ["/api/orders/ord_x%00", "/api/products/prod_x%00"] {
            let resp = app.client.get(app.url(path)).bearer_auth(&app.api_key).send().await.unwrap();
            assert_eq!(resp.status(), 404, "{path}");
        }
        for path in ["/api/orders?externalId=a%00", "/api/products?externalId=a%00"] {
            let resp = app.client.get(app.url(path)).bearer_auth(&app.api_key).send().await.unwrap();
            assert_eq!(validation_issues(resp).await, vec![issue("externalId", "invalid_string")], "{path}");
        }
    }

    async fn json_that_is_not_an_object_is_an_issue_at_the_empty_path(app) {
        for body in [json!([]), json!("x"), Value::Null, json!(5)] {
            let resp = app.sync_orders(&body).await;
            assert_eq!(resp.status(), 400);
            let body = body_json(resp).await;
            assert_eq!(body["errorCode"], "VALIDATION_ERROR");
            assert_eq!(body["field"], "", "{body}");
            assert_eq!(body["details"]["issues"][0]["path"], "");
            assert_eq!(body["details"]["issues"][0]["code"], "invalid_type");
        }
        app.assert_untouched(app.product_count().await).await;
    }

    async fn bodies_that_are_not_json_get_invalid_request(app) {
        let products = app.product_count().await;
        let valid = serde_json::to_string(&batch(vec![order("hostile-1", &[LINE])])).unwrap();
        let surrogate = valid.replace("hostile-1", "\\ud800");
        let mut bom = "\u{feff}".as_bytes().to_vec();
        bom.extend_from_slice(valid.as_bytes());
        let invalid_utf8 = valid.replace("hostile-1", "hostile-\u{1}").into_bytes();
        let invalid_utf8: Vec<u8> = invalid_utf8.into_iter().map(|b| if b == 1 { 0xff } else { b }).collect();
        let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        let nested = valid.replace(r#""destinationCountry""#, &format!(r#""metadata":{{"d":{deep}}},"destinationCountry""#));
        let truncated = valid[..valid.len() / 2].to_owned();
        for body in [surrogate.into_bytes(), bom, invalid_utf8, nested.into_bytes(), truncated.into_bytes()] {
            assert_invalid_request(app.post_raw("/api/orders/sync", body).await).await;
        }
        app.assert_untouched(products).await;
    }

    async fn extreme_numbers_are_issues_not_failures(app) {
        let products = app.product_count().await;
        let digits = "9".repeat(200_000);
        let cases = [
            (r#""quantity":1e999999999"#, "items.0.items.0.quantity", "too_big"),
            (r#""quantity":1e-999999999"#, "items.0.items.0.quantity", "invalid_type"),
            (r#""unitValueUsd":1e-999999999"#, "items.0.items.0.unitValueUsd", "not_multiple_of"),
            (r#""unitValueUsd":1e999999999"#, "items.0.items.0.unitValueUsd", "too_big"),
        ];
        let valid = serde_json::to_string(&batch(vec![order("hostile-1", &[LINE])])).unwrap();
        for (replacement, path, code) in cases {
            let field = replacement.split(':').next().unwrap();
            let original = if field.contains("quantity") { r#""quantity":1"# } else { r#""unitValueUsd":1"# };
            let body = valid.replacen(original, replacement, 1);
            assert_ne!(body, valid);
            let resp = app.post_raw("/api/orders/sync", body).await;
            assert_eq!(validation_issues(resp).await, vec![issue(path, code)], "{replacement}");
        }
        let long = valid.replacen(r#""quantity":1"#, &format!(r#""quantity":{digits}"#), 1);
        let resp = app.post_raw("/api/orders/sync", long).await;
        assert_eq!(validation_issues(resp).await, vec![issue("items.0.items.0.quantity", "too_big")]);
        // Metadata is stored: its numbers must fit a 64-bit float, on every backend.
        for (number, code) in [("1e999999999", "too_big"), ("-1e400", "too_big"), ("1e-999999999", "too_small"), (&format!("0.{}", "1".repeat(1_001)), "too_big")] {
            let body = valid.replacen(r#""destinationCountry""#, &format!(r#""metadata":{{"n":[{number}]}},"destinationCountry""#), 1);
            let resp = app.post_raw("/api/orders/sync", body).await;
            assert_eq!(validation_issues(resp).await, vec![issue("items.0.metadata.n.0", code)], "{number}");
        }
        let resp = app.post_raw("/api/orders/sync", valid.replacen(r#""destinationCountry""#, &format!(r#""metadata":{{"n":{digits}}},"destinationCountry""#), 1)).await;
        let issues = validation_issues(resp).await;
        assert!(issues.contains(&issue("items.0.metadata", "too_big")), "{issues:?}");
        app.assert_untouched(products).await;
    }

    async fn huge_batches_are_refused_with_a_bounded_list_of_issues(app) {
        let products = app.product_count().await;
        let empty = format!(r#"{{"accountId":"acc_123","items":[{}]}}"#, vec!["{}"; 100_000].join(","));
        let resp = app.post_raw("/api/orders/sync", empty).await;
        let issues = validation_issues(resp).await;
        assert_eq!(issues[0], issue("items", "too_big"));
        assert_eq!(issues.len(), 1_000, "the list is cut at 1,000 issues");

        let line = r#"{"productId":"prod_cap_002","quantity":1,"unitValueUsd":1}"#;
        let lines = format!(r#"{{"accountId":"acc_123","items":[{{"externalId":"many","destinationCountry":"US","items":[{}]}}]}}"#, vec![line; 100_000].join(","));
        let resp = app.post_raw("/api/orders/sync", lines).await;
        assert_eq!(validation_issues(resp).await, vec![issue("items.0.items", "too_big")]);

        let long_id = order_with("externalId", json!("x".repeat(1 << 20)));
        let issues = validation_issues(app.sync_orders(&batch(vec![long_id])).await).await;
        assert_eq!(issues, vec![issue("items.0.externalId", "too_big")]);
        app.assert_untouched(products).await;
    }

    async fn emoji_and_right_to_left_text_are_stored_unchanged(app) {
        let mut o = order("📦-طلب-١٠٠١", &[LINE]);
        o["destinationRegion"] = json!("القاهرة");
        o["destinationPostalCode"] = json!("🏠‏٢٣");
        o["metadata"] = json!({"note": "שלום 👋 \u{202e}abc", "🔑": ["עברית", "👨‍👩‍👧"]});
        let resp = app.sync_orders(&batch(vec![o.clone()])).await;
        assert_eq!(resp.status(), 200);
        let synced = body_json(resp).await["data"][0].clone();
        let id = synced["id"].as_str().unwrap();
        let read = body_json(
            app.client.get(app.url(&format!("/api/orders/{id}"))).bearer_auth(&app.api_key).send().await.unwrap(),
        )
        .await;
        for field in ["externalId", "destinationRegion", "destinationPostalCode"] {
            assert_eq!(read[field], o[field], "{field}");
            assert_eq!(synced[field], o[field], "{field}");
        }
        use sea_orm::EntityTrait;
        let stored = entrygo::db::entities::orders::Entity::find_by_id((app.account_id.clone(), id.to_owned()))
            .one(app.state.db.conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.metadata, Some(o["metadata"].clone()));
    }
}
