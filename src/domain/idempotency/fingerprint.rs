//! Request fingerprints: a retry is the same request when its canonical
//! form is.

use std::io::Write;

use serde_json::{Number, Value};

use crate::domain::{digest::Sha256Writer, money::exact_decimal};

/// SHA-256 (hex) of the body in canonical form: object keys sorted, no
/// whitespace, numbers by exact value (`1.50` and `1.5e0` are `1.5`), and
/// without the body-level `idempotencyKey`. Reordering keys or reformatting
/// a retry does not change it; changing any value does.
pub fn fingerprint(body: &Value) -> String {
    let mut out = Sha256Writer::new();
    write_canonical(body, &mut out, Some("idempotencyKey"));
    out.hex()
}

/// Writes `value` in canonical form; `skip` names a key left out of this
/// (top-level) object. Written straight into the hasher: a batch's
/// canonical text is never held whole.
fn write_canonical(value: &Value, out: &mut Sha256Writer, skip: Option<&str>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map
                .iter()
                .filter(|(k, _)| Some(k.as_str()) != skip)
                .collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            put(out, b"{");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    put(out, b",");
                }
                put_json(out, k);
                put(out, b":");
                write_canonical(v, out, None);
            }
            put(out, b"}");
        }
        Value::Array(items) => {
            put(out, b"[");
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    put(out, b",");
                }
                write_canonical(v, out, None);
            }
            put(out, b"]");
        }
        Value::Number(n) => write_number(n, out),
        other => put_json(out, other),
    }
}

/// A number by its exact value, normalised; beyond what a decimal holds,
/// as written.
fn write_number(n: &Number, out: &mut Sha256Writer) {
    let text = n.as_str();
    // A plain integer that a decimal holds is its own normal form (JSON
    // allows no leading zeros): written as is, without the round trip.
    if text.len() <= 28 && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return put(out, text.as_bytes());
    }
    match exact_decimal(n) {
        Some(d) => write!(out, "{}", d.normalize()).expect("hashing cannot fail"),
        None => put(out, text.as_bytes()),
    }
}

fn put(out: &mut Sha256Writer, bytes: &[u8]) {
    out.write_all(bytes).expect("hashing cannot fail");
}

/// A string or a literal as JSON.
fn put_json(out: &mut Sha256Writer, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(out, value).expect("hashing cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprints_ignore_key_order_spacing_spelling_and_the_body_key() {
        let a: Value =
            serde_json::from_str(r#"{"accountId":"acc_1","items":[{"q":1.50,"p":"x"}]}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{ "items": [ {"p": "x", "q": 15e-1} ], "idempotencyKey": "k", "accountId": "acc_1" }"#)
                .unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&json!({"accountId": "acc_1", "items": [{"q": 2, "p": "x"}]}))
        );
        // Array order is meaningful.
        assert_ne!(fingerprint(&json!([1, 2])), fingerprint(&json!([2, 1])));
    }

    /// Fingerprints are stored with idempotency records: a retry after an
    /// upgrade must fingerprint as before, or it would be refused as a
    /// reused key. Pinned on a body with every kind of value.
    #[test]
    fn fingerprints_are_stable_across_versions() {
        let body: Value = serde_json::from_str(
            r#"{"accountId":"acc_1","idempotencyKey":"k-1","items":[
                {"externalId":"A-\"1\"\u00e9\n","destinationCountry":"us","destinationRegion":null,
                 "items":[{"productId":"prd_1","quantity":3,"unitValueUsd":10.50},
                          {"productId":"prd_2","quantity":-0,"unitValueUsd":1.5e2},
                          {"productId":"prd_3","quantity":12345678901234567890123456789012,"unitValueUsd":0.000001}],
                 "metadata":{"z":true,"a":[false,{"y":1e400,"b":"x"}],"m":-12.000}}]}"#,
        )
        .unwrap();
        assert_eq!(
            fingerprint(&body),
            "c2e6557a897bfd8a9de3da055e97810346c308fc27e860cf70e19fa7d55f8fe3"
        );
    }
}
