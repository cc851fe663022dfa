//! The operator commands, run as the real binary.

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::{both_backends, helpers::body_json};

fn entrygo(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_entrygo"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs")
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn assert_fails_with_one_line(out: &Output, needle: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{err}");
}

both_backends! {
    async fn accounts_and_keys_are_managed_from_the_command_line(app) {
        let url = app.database_url.clone();
        let created = stdout_json(&entrygo(&url, &["accounts", "create", "--name", "Acme", "--id", "acc_acme"]));
        assert_eq!(created["accountId"], "acc_acme");
        let key = created["apiKey"].as_str().unwrap().to_owned();
        let products = json!({"accountId": "acc_acme", "items": [{"externalId": "a", "name": "A"}]});
        assert_eq!(app.post_as(&key, "/api/products/sync", &products).await.status(), 200);

        // The global flag is accepted after the command name too.
        let out = Command::new(env!("CARGO_BIN_EXE_entrygo"))
            .args(["keys", "create", "--account", "acc_acme", "--database-url", &url])
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        let second = stdout_json(&out);
        let (key_id, second_key) = (second["keyId"].as_str().unwrap(), second["apiKey"].as_str().unwrap());
        assert!(key_id.starts_with("key_"));
        assert_eq!(app.post_as(second_key, "/api/products/sync", &products).await.status(), 200);

        let out = entrygo(&url, &["keys", "revoke", key_id]);
        assert!(out.status.success() && out.stdout.is_empty());
        // The running server refuses it within --key-cache-ms (1 s): a
        // request sent after that is refused. (When it was answered does
        // not count: on a loaded machine a request sent in time, which the
        // cache still vouched for, can be answered after it.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1_000);
        let resp = loop {
            let sent = std::time::Instant::now();
            let resp = app.post_as(second_key, "/api/products/sync", &products).await;
            if resp.status() != 200 || sent > deadline {
                break resp;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(resp.status(), 401);
        assert_eq!(body_json(resp).await["errorCode"], "INVALID_API_KEY");
        assert_eq!(app.post_as(&key, "/api/products/sync", &products).await.status(), 200);

        let generated = stdout_json(&entrygo(&url, &["accounts", "create", "--name", "Generated"]));
        assert!(generated["accountId"].as_str().unwrap().starts_with("acc_"));

        assert_fails_with_one_line(&entrygo(&url, &["accounts", "create", "--name", "Again", "--id", "acc_acme"]), "already exists");
        assert_fails_with_one_line(&entrygo(&url, &["accounts", "create", "--name", "Bad", "--id", "nope"]), "acc_");
        assert_fails_with_one_line(&entrygo(&url, &["keys", "create", "--account", "acc_missing"]), "acc_missing");
        assert_fails_with_one_line(&entrygo(&url, &["keys", "revoke", "key_missing"]), "no such API key");
        assert!(!entrygo(&url, &["accounts", "create"]).status.success());
    }
}

#[test]
fn migrate_creates_a_new_sqlite_database_and_accounts_work_on_it() {
    let dir = std::env::temp_dir().join(format!("entrygo-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("fresh.db").display());
    let out = entrygo(&url, &["migrate"]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("fresh.db").exists());
    // Every command migrates first: a brand-new file works directly too.
    let url2 = format!("sqlite://{}", dir.join("direct.db").display());
    let created = stdout_json(&entrygo(&url2, &["accounts", "create", "--name", "Direct"]));
    assert!(created["apiKey"].as_str().unwrap().starts_with("eg_live_"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn openapi_prints_the_served_spec() {
    let out = entrygo("sqlite://unused.db", &["openapi"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", entrygo::api::spec_json())
    );
}

#[test]
fn an_unreachable_database_fails_with_one_line() {
    let out = entrygo("postgres://postgres@127.0.0.1:1/none", &["migrate"]);
    assert_fails_with_one_line(&out, "cannot connect to database");
}
