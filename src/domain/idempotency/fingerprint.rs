//! Request fingerprints: a retry is the same request when its canonical
//! form is.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::money::exact_decimal;

/// SHA-256 (hex) of the body in canonical form: object keys sorted, no
/// whitespace, numbers by exact value (`1.50` and `1.5e0` are `1.5`), and
/// without the body-level `idempotencyKey`. Reordering keys or reformatting
/// a retry does not change it; changing any value does.
pub fn fingerprint(body: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical, Some("idempotencyKey"));
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Writes `value` in canonical form; `skip` names a key left out of this
/// (top-level) object.
fn write_canonical(value: &Value, out: &mut String, skip: Option<&str>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map
                .iter()
                .filter(|(k, _)| Some(k.as_str()) != skip)
                .collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out, None);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out, None);
            }
            out.push(']');
        }
        Value::Number(n) => match exact_decimal(n) {
            Some(d) => out.push_str(&d.normalize().to_string()),
            None => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
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
}
