use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    both_backends,
    helpers::{Backend, body_json, seed_order_request, spawn_app_with},
};

async fn assert_invalid_api_key(resp: reqwest::Response) {
    assert_eq!(resp.status(), 401);
    assert_eq!(
        body_json(resp).await,
        json!({"errorCode": "INVALID_API_KEY", "message": "Missing or invalid API key."})
    );
}

both_backends! {
    async fn missing_malformed_and_unknown_keys_get_401(app) {
        let url = app.url("/api/orders/sync");
        let body = seed_order_request();
        assert_invalid_api_key(app.client.post(&url).json(&body).send().await.unwrap()).await;
        let basic = app.client.post(&url).header("authorization", "Basic dXNlcjpwdw==").json(&body);
        assert_invalid_api_key(basic.send().await.unwrap()).await;
        assert_invalid_api_key(app.post_as("eg_live_0000", "/api/orders/sync", &body).await).await;
        assert_invalid_api_key(app.post_as("", "/api/orders/sync", &body).await).await;
        // The key is checked before the body is parsed.
        let not_json = app.client.post(&url).header("content-type", "application/json").body("{");
        assert_invalid_api_key(not_json.send().await.unwrap()).await;
        assert_eq!(app.order_count().await, 0);
    }

    async fn a_revoked_key_is_refused_within_the_key_cache_time(app) {
        // Default --key-cache-ms: 1,000.
        let key = entrygo::domain::accounts::create_key(&app.state.db, &app.account_id).await.unwrap();
        let body = seed_order_request();
        assert_eq!(app.post_as(&key.api_key, "/api/orders/sync", &body).await.status(), 200);
        entrygo::domain::accounts::revoke_key(&app.state.db, &key.key_id).await.unwrap();
        let revoked = Instant::now();
        loop {
            // When the request was sent, not when its answer came: on a
            // loaded machine a request accepted at 0.9 s may answer after 1 s.
            let sent = revoked.elapsed();
            let resp = app.post_as(&key.api_key, "/api/orders/sync", &body).await;
            if resp.status() == 401 {
                assert_invalid_api_key(resp).await;
                break;
            }
            assert_eq!(resp.status(), 200);
            assert!(sent < Duration::from_millis(1_000), "accepted when sent {sent:?} after the revocation");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Refused from then on; other keys of the account keep working.
        assert_invalid_api_key(app.post_as(&key.api_key, "/api/orders/sync", &body).await).await;
        assert_eq!(app.sync_orders(&body).await.status(), 200);
    }

    async fn another_accounts_id_in_the_body_gets_403_with_both_ids(app) {
        let mut body = seed_order_request();
        body["accountId"] = json!("acc_999");
        // Scope is checked before validation: broken items do not matter.
        body["items"][0]["items"] = json!("broken");
        let resp = app.sync_orders(&body).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(body_json(resp).await, json!({
            "errorCode": "INVALID_ACCOUNT_SCOPE",
            "message": "Payload accountId does not match API key scope.",
            "details": {"apiKeyAccountId": "acc_123", "payloadAccountId": "acc_999"}
        }));
        let resp = app.post_as(&app.other_api_key, "/api/products/sync", &json!({
            "accountId": "acc_123", "items": [{"externalId": "x", "name": "x"}]
        })).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(app.order_count().await, 0);
    }

    async fn a_non_string_account_id_is_a_validation_issue(app) {
        let mut body = seed_order_request();
        body["accountId"] = json!(123);
        let resp = app.sync_orders(&body).await;
        assert_eq!(resp.status(), 400);
        assert_eq!(body_json(resp).await["field"], "accountId");
    }
}

/// With `--key-cache-ms 0`, every request checks its key: refused at once.
async fn without_the_key_cache_a_revoked_key_is_refused_at_once(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.key_cache_ms = 0).await else {
        return crate::helpers::postgres_missing();
    };
    let key = entrygo::domain::accounts::create_key(&app.state.db, &app.account_id)
        .await
        .unwrap();
    let body = seed_order_request();
    let resp = app.post_as(&key.api_key, "/api/orders/sync", &body).await;
    assert_eq!(resp.status(), 200);
    entrygo::domain::accounts::revoke_key(&app.state.db, &key.key_id)
        .await
        .unwrap();
    assert_invalid_api_key(app.post_as(&key.api_key, "/api/orders/sync", &body).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_key_cache_a_revoked_key_is_refused_at_once_sqlite() {
    without_the_key_cache_a_revoked_key_is_refused_at_once(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_key_cache_a_revoked_key_is_refused_at_once_postgres() {
    without_the_key_cache_a_revoked_key_is_refused_at_once(Backend::Postgres).await
}
