//! The public docs' request and response examples, shown in the spec
//! (`example` of each sync body and result).

use poem_openapi::types::Example;

use crate::api::{
    orders::{LineItem, OrderView, SyncOrderInput, SyncOrdersRequest, SyncOrdersResult},
    products::{ProductView, SyncProductInput, SyncProductsRequest, SyncProductsResult},
    types::{CountryCode, HsCode, Metadata, Quantity, UnitValueUsd, Usd},
};

fn seed_lines() -> Vec<LineItem> {
    vec![
        LineItem {
            product_id: "prod_hoodie_001".into(),
            quantity: Quantity(2),
            unit_value_usd: UnitValueUsd(110.into()),
        },
        LineItem {
            product_id: "prod_cap_002".into(),
            quantity: Quantity(1),
            unit_value_usd: UnitValueUsd(35.into()),
        },
    ]
}

/// The public docs' request example.
impl Example for SyncOrdersRequest {
    fn example() -> Self {
        let metadata = serde_json::json!({"source": "warehouse-wms", "wave": "wave-17"});
        Self {
            account_id: "acc_123".into(),
            items: vec![SyncOrderInput {
                external_id: "wms-order-1001".into(),
                destination_country: CountryCode("US".into()),
                destination_region: Some("CA".into()),
                destination_postal_code: Some("94105".into()),
                items: seed_lines(),
                metadata: metadata.as_object().cloned().map(Metadata),
            }],
            idempotency_key: None,
        }
    }
}

/// The public docs' response example.
impl Example for SyncOrdersResult {
    fn example() -> Self {
        Self {
            data: vec![OrderView {
                id: "ord_123".into(),
                account_id: "acc_123".into(),
                external_id: "wms-order-1001".into(),
                destination_country: "US".into(),
                destination_region: Some("CA".into()),
                destination_postal_code: Some("94105".into()),
                total_value_usd: Usd(255.into()),
                items: seed_lines(),
            }],
        }
    }
}

impl Example for SyncProductsRequest {
    fn example() -> Self {
        Self {
            account_id: "acc_123".into(),
            items: vec![SyncProductInput {
                external_id: "hoodie-001".into(),
                name: "Hoodie".into(),
                hs_code: Some(HsCode("610220".into())),
                country_of_origin: Some(CountryCode("PT".into())),
                description: Some("Men's cotton hooded sweatshirt".into()),
            }],
            idempotency_key: None,
        }
    }
}

impl Example for SyncProductsResult {
    fn example() -> Self {
        Self {
            data: vec![ProductView {
                id: "prod_hoodie_001".into(),
                account_id: "acc_123".into(),
                external_id: "hoodie-001".into(),
                name: "Hoodie".into(),
                hs_code: Some("610220".into()),
                country_of_origin: Some("PT".into()),
                description: Some("Men's cotton hooded sweatshirt".into()),
            }],
        }
    }
}
