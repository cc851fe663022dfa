//! The committed contract equals the served one.

use crate::{both_backends, helpers::body_json};

const REGENERATE: &str = "cargo run -q -- openapi > openapi/openapi.json";

fn committed() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
        .expect("openapi/openapi.json exists")
}

#[test]
fn committed_spec_is_up_to_date() {
    let expected = format!("{}\n", entrygo::api::spec_json());
    assert!(
        committed() == expected,
        "openapi/openapi.json differs from the spec the server serves; regenerate it with `{REGENERATE}`"
    );
}

both_backends! {
    async fn served_spec_equals_the_committed_file(app) {
        let served = body_json(app.client.get(app.url("/openapi.json")).send().await.unwrap()).await;
        let committed: serde_json::Value = serde_json::from_str(&committed()).unwrap();
        assert!(served == committed, "served spec differs; regenerate with `{REGENERATE}`");
    }
}
