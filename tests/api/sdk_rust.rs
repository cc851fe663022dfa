//! The seed flow through a Rust client that progenitor generates from the
//! committed spec at build time: a spec change that breaks generation or
//! the flow fails this test.

use crate::{both_backends, helpers::TestApp};

#[allow(clippy::all, dead_code, unused_imports, unused_variables)]
mod sdk {
    progenitor::generate_api!("openapi/openapi.json");
}

use sdk::types;

fn client(app: &TestApp) -> sdk::Client {
    let auth = format!("Bearer {}", app.api_key);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, auth.parse().unwrap());
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    sdk::Client::new_with_client(&app.address, http)
}

fn line(product_id: &str, quantity: u64, unit: f64) -> types::LineItem {
    types::LineItem {
        product_id: product_id.try_into().unwrap(),
        quantity: std::num::NonZeroU64::new(quantity).unwrap(),
        unit_value_usd: unit,
    }
}

both_backends! {
    async fn the_generated_rust_client_runs_the_seed_flow(app) {
        let api = client(&app);
        let products = types::SyncProductsRequest {
            account_id: "acc_123".try_into().unwrap(),
            idempotency_key: None,
            items: vec![types::SyncProductInput {
                external_id: "hoodie-001".try_into().unwrap(),
                name: "Hoodie".try_into().unwrap(),
                hs_code: Some("610220".parse().unwrap()),
                country_of_origin: None,
                description: None,
            }],
        };
        let synced = api.sync_products(None, &products).await.unwrap().into_inner();
        assert!(synced.data[0].id.starts_with("prod_"));

        let order = types::SyncOrdersRequest {
            account_id: "acc_123".try_into().unwrap(),
            idempotency_key: None,
            items: vec![types::SyncOrderInput {
                external_id: "wms-order-1001".try_into().unwrap(),
                destination_country: "US".parse().unwrap(),
                destination_region: Some("CA".try_into().unwrap()),
                destination_postal_code: Some("94105".try_into().unwrap()),
                items: vec![line("prod_hoodie_001", 2, 110.0), line("prod_cap_002", 1, 35.0)],
                metadata: Default::default(),
            }],
        };
        let key: types::SyncOrdersIdempotencyKey = "orders-sync-acc-123-001".parse().unwrap();
        let first = api.sync_orders(Some(&key), &order).await.unwrap();
        assert!(first.headers().get("idempotent-replayed").is_none());
        let first = first.into_inner();
        let retry = api.sync_orders(Some(&key), &order).await.unwrap();
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        let retry = retry.into_inner();
        assert_eq!(retry.data[0].id, first.data[0].id);
        assert_eq!(first.data[0].total_value_usd, 255.0);

        let read = api.get_order(&first.data[0].id).await.unwrap().into_inner();
        assert_eq!(read.id, first.data[0].id);
        assert_eq!(read.total_value_usd, 255.0);
        assert_eq!(read.destination_region.as_deref(), Some("CA"));
        let listed = api.list_orders(None, None, Some(std::num::NonZeroU64::new(10).unwrap()), None).await.unwrap().into_inner();
        assert_eq!(listed.data.len(), 1);
        assert!(listed.next_cursor.is_none());
    }
}
