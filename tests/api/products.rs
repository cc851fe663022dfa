use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{body_json, validation_issues},
};

fn products(items: Value) -> Value {
    json!({"accountId": "acc_123", "items": items})
}

both_backends! {
    async fn products_sync_creates_then_replaces_by_external_id(app) {
        let full = json!({"externalId": "sku-1", "name": "Jacket", "hsCode": "62019300",
                          "countryOfOrigin": "vn", "description": "Padded jacket"});
        let resp = app.sync_products(&products(json!([full, {"externalId": "sku-2", "name": "Scarf"}]))).await;
        assert_eq!(resp.status(), 200);
        let data = body_json(resp).await["data"].clone();
        let id = data[0]["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("prod_"));
        assert_eq!(data[0], json!({"id": id, "accountId": "acc_123", "externalId": "sku-1", "name": "Jacket",
            "hsCode": "62019300", "countryOfOrigin": "VN", "description": "Padded jacket"}));
        assert_eq!(data[1]["hsCode"], Value::Null);
        assert_eq!(data[1]["countryOfOrigin"], Value::Null);
        assert_eq!(data[1]["description"], Value::Null);

        // A re-sync replaces: omitted optional fields become null.
        let resp = app.sync_products(&products(json!([{"externalId": "sku-1", "name": "Jacket v2"}]))).await;
        let again = body_json(resp).await["data"][0].clone();
        assert_eq!(again, json!({"id": id, "accountId": "acc_123", "externalId": "sku-1", "name": "Jacket v2",
            "hsCode": null, "countryOfOrigin": null, "description": null}));

        // The synced product can be referenced by an order line.
        let order = json!({"accountId": "acc_123", "items": [{"externalId": "o-1", "destinationCountry": "DE",
            "items": [{"productId": id, "quantity": 1, "unitValueUsd": 10}]}]});
        assert_eq!(app.sync_orders(&order).await.status(), 200);
    }

    async fn product_fields_are_validated_all_at_once(app) {
        let body = products(json!([
            {"externalId": "", "name": "x".repeat(256), "hsCode": "12345", "countryOfOrigin": "XX",
             "description": "d".repeat(2001)},
            {"externalId": "sku", "hsCode": "12345678901"},
            {"externalId": "sku", "name": "dup", "hsCode": 610220}
        ]));
        let issues = validation_issues(app.sync_products(&body).await).await;
        let paths: Vec<&str> = issues.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, [
            "items.0.externalId", "items.0.name", "items.0.hsCode", "items.0.countryOfOrigin",
            "items.0.description", "items.1.name", "items.1.hsCode", "items.2.hsCode", "items.2.externalId",
        ]);
    }
}
