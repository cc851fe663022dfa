use serde_json::json;

use crate::{
    both_backends,
    helpers::{Backend, body_json, seed_order_request, spawn_app_with},
};

both_backends! {
    async fn a_body_that_is_not_json_gets_400_invalid_request(app) {
        for raw in ["{", "", "not json", "{\"accountId\": \"acc_123\",}"] {
            let resp = app
                .client
                .post(app.url("/api/orders/sync"))
                .bearer_auth(&app.api_key)
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400, "{raw:?}");
            assert_eq!(
                body_json(resp).await,
                json!({"errorCode": "INVALID_REQUEST", "message": "Request body is not valid JSON."})
            );
        }
        assert_eq!(app.order_count().await, 0);
    }

    async fn unknown_routes_and_wrong_methods_answer_in_the_envelope(app) {
        let resp = app.client.get(app.url("/nope")).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(body_json(resp).await["errorCode"], "NOT_FOUND");
        let resp = app.client.get(app.url("/api/orders/unknown/deeper")).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(body_json(resp).await["errorCode"], "NOT_FOUND");
        for method in [reqwest::Method::GET, reqwest::Method::DELETE, reqwest::Method::PUT] {
            let resp = app.client.request(method, app.url("/api/orders/sync")).send().await.unwrap();
            assert_eq!(resp.status(), 405);
            assert_eq!(resp.headers()["allow"], "POST");
            assert_eq!(body_json(resp).await["errorCode"], "METHOD_NOT_ALLOWED");
        }
        for (path, allow) in [("/api/orders/ord_1", "GET"), ("/api/products", "GET"), ("/readyz", "GET")] {
            let resp = app.client.patch(app.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 405, "{path}");
            assert_eq!(resp.headers()["allow"], allow, "{path}");
        }
    }

    async fn a_body_that_is_not_declared_json_gets_415(app) {
        let resp = app
            .client
            .post(app.url("/api/orders/sync"))
            .bearer_auth(&app.api_key)
            .header("content-type", "text/plain")
            .body(seed_order_request().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415);
        assert_eq!(body_json(resp).await["errorCode"], "UNSUPPORTED_MEDIA_TYPE");
    }

    async fn the_docs_and_the_spec_are_served(app) {
        let resp = app.client.get(app.url("/openapi.json")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(body_json(resp).await["info"]["title"], "EntryGo intake API");
        let resp = app.client.get(app.url("/docs")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await.unwrap().contains("swagger"));
    }
}

async fn oversized_bodies(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.body_limit = 4096).await else {
        return crate::helpers::postgres_missing();
    };
    let mut big = seed_order_request();
    big["items"][0]["metadata"] = json!({"pad": "x".repeat(5000)});
    // Declared length over the limit: refused before the key is even
    // checked, by a sync and by its preview alike.
    for path in ["/api/orders/sync", "/api/orders/sync/preview"] {
        let resp = app
            .client
            .post(app.url(path))
            .json(&big)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413, "{path}");
        assert_eq!(body_json(resp).await["errorCode"], "PAYLOAD_TOO_LARGE");
    }
    // Chunked, with no declared length: cut off while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .to_string()
        .into_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    let resp = app
        .client
        .post(app.url("/api/orders/sync"))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(body_json(resp).await["errorCode"], "PAYLOAD_TOO_LARGE");
    // The process keeps serving.
    assert_eq!(app.sync_orders(&seed_order_request()).await.status(), 200);
    assert_eq!(app.order_count().await, 1);
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_server_keeps_serving_sqlite() {
    oversized_bodies(Backend::Sqlite).await
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_server_keeps_serving_postgres() {
    oversized_bodies(Backend::Postgres).await
}
