//! Prometheus metrics on their own listener (`--metrics-addr`).

use crate::{
    both_backends,
    helpers::{ServerProcess, batch, order, seed_order_request},
};

/// The value of the sample `name{labels}` in a scrape (labels as rendered,
/// in any order), 0 when absent.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name)
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

both_backends! {
    async fn metrics_count_requests_by_route_template_and_outcomes(app) {
        let server = ServerProcess::start_with(&app.database_url, &["--metrics-addr", "127.0.0.1:0"]);
        let metrics = server.metrics_address.clone().expect("metrics listening logged");
        let client = &app.client;
        let post = |key: Option<&str>, body: serde_json::Value| {
            let mut req = client.post(format!("{}/api/orders/sync", server.address)).bearer_auth(&app.api_key).json(&body);
            if let Some(key) = key {
                req = req.header("idempotency-key", key);
            }
            async move { req.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(post(Some("m-1"), seed_order_request()).await, 200);
        assert_eq!(post(Some("m-1"), seed_order_request()).await, 200);
        let other = batch(vec![order("m-other", &[("prod_cap_002", "1", "1")])]);
        assert_eq!(post(Some("m-1"), other).await, 422);
        assert_eq!(post(None, seed_order_request()).await, 200);
        let base = server.address.clone();
        let get = |path: &str| {
            let req = client.get(format!("{base}{path}")).bearer_auth(&app.api_key);
            async move { req.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(get("/api/orders/ord_nope").await, 404);
        assert_eq!(get("/api/orders?limit=5").await, 200);
        assert_eq!(get("/no/such/path").await, 404);
        assert_eq!(get("/metrics").await, 404, "never on the API port");

        let scrape = client.get(format!("{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
        let count = |route: &str, status: &str| sample(&scrape, "http_server_request_duration_seconds_count",
            &[("http_route", route), ("http_response_status_code", status), ("http_request_method", if route.ends_with("sync") { "POST" } else { "GET" })]);
        assert_eq!(count("/api/orders/sync", "200"), 3.0, "{scrape}");
        assert_eq!(count("/api/orders/sync", "422"), 1.0);
        assert_eq!(count("/api/orders/{id}", "404"), 1.0);
        assert_eq!(count("/api/orders", "200"), 1.0);
        assert_eq!(count("unmatched", "404"), 2.0, "no raw path becomes a label");
        assert!(!scrape.contains("ord_nope") && !scrape.contains("acc_123") && !scrape.contains("/no/such"));
        let outcome = |o: &str| sample(&scrape, "entrygo_idempotency_outcomes_total", &[("outcome", o)]);
        assert_eq!((outcome("replayed"), outcome("reused"), outcome("in_use")), (1.0, 1.0, 0.0));
        let items = |r: &str| sample(&scrape, "entrygo_synced_items_total", &[("resource", "order"), ("result", r)]);
        assert_eq!((items("created"), items("unchanged")), (1.0, 1.0), "the unkeyed re-sync changed nothing");
        assert_eq!(sample(&scrape, "entrygo_writer_batch_syncs_count", &[("resource", "order")]), 2.0);
        assert_eq!(sample(&scrape, "entrygo_writer_queue_depth", &[("resource", "order")]), 0.0);
        assert!(sample(&scrape, "process_resident_memory_bytes", &[]) > 0.0);
        assert!(sample(&scrape, "entrygo_db_pool_connections", &[("state", "idle")]) >= 1.0);
        assert!(scrape.contains("# TYPE http_server_request_duration_seconds histogram"));
    }
}
