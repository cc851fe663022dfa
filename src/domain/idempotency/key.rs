//! Idempotency keys: where a request's key comes from, and what a key is.

use serde_json::Value;

use super::fingerprint::fingerprint;
use crate::error::Issue;

/// Longest idempotency key, in characters.
pub const KEY_MAX_LEN: usize = 255;

/// The characters of a key, as the spec states them (0x21–0x7E).
pub const KEY_PATTERN: &str = "^[!-~]+$";

/// A key of 1 to 255 visible ASCII characters (0x21–0x7E).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a key; an issue at `path` (`Idempotency-Key` for the header,
    /// `idempotencyKey` for the body) when it is not one.
    pub fn parse(raw: &str, path: &str) -> Result<Self, Issue> {
        if raw.is_empty() {
            return Err(Issue::new(
                path,
                "too_small",
                "String must contain at least 1 character(s)",
            ));
        }
        if raw.len() > KEY_MAX_LEN {
            return Err(Issue::new(
                path,
                "too_big",
                format!("String must contain at most {KEY_MAX_LEN} character(s)"),
            ));
        }
        if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Issue::new(
                path,
                "invalid_string",
                "Only visible ASCII characters (0x21-0x7E) are allowed",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An idempotent request: which operation, under which key, with which
/// fingerprint.
#[derive(Debug, Clone)]
pub struct Idempotent {
    pub operation: &'static str,
    pub key: IdempotencyKey,
    pub fingerprint: String,
}

/// The idempotency key of a sync request: the `Idempotency-Key` header when
/// present (the body's `idempotencyKey` is then ignored, even a malformed
/// one), else the body's. The body's key is removed from `body`, so that
/// the schema walk leaves it alone; an invalid key is an issue.
pub fn from_request(
    operation: &'static str,
    header: Option<&str>,
    body: &mut Value,
) -> (Option<Idempotent>, Vec<Issue>) {
    let from_body = body
        .as_object_mut()
        .and_then(|m| m.remove("idempotencyKey"));
    let parsed = match (header, &from_body) {
        (Some(raw), _) => Some(IdempotencyKey::parse(raw, "Idempotency-Key")),
        (None, None | Some(Value::Null)) => None,
        (None, Some(Value::String(raw))) => Some(IdempotencyKey::parse(raw, "idempotencyKey")),
        (None, Some(_)) => Some(Err(Issue::new(
            "idempotencyKey",
            "invalid_type",
            "Expected string, received another type",
        ))),
    };
    match parsed {
        None => (None, Vec::new()),
        Some(Err(issue)) => (None, vec![issue]),
        Some(Ok(key)) => {
            let fingerprint = fingerprint(body);
            (
                Some(Idempotent {
                    operation,
                    key,
                    fingerprint,
                }),
                Vec::new(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_pattern_agrees_with_the_parser() {
        let re = regex::Regex::new(KEY_PATTERN).unwrap();
        for sample in ["a", "!~", "a b", "é", "tab\t", "A-Z_0.9:/"] {
            assert_eq!(
                re.is_match(sample),
                IdempotencyKey::parse(sample, "k").is_ok(),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn keys_are_visible_ascii_of_1_to_255_characters() {
        assert!(IdempotencyKey::parse("orders-sync-acc-123-001", "k").is_ok());
        assert!(IdempotencyKey::parse("!~", "k").is_ok());
        assert!(IdempotencyKey::parse(&"a".repeat(255), "k").is_ok());
        assert_eq!(
            IdempotencyKey::parse(&"a".repeat(256), "k")
                .unwrap_err()
                .code,
            "too_big"
        );
        assert_eq!(
            IdempotencyKey::parse("", "k").unwrap_err().code,
            "too_small"
        );
        for bad in ["a b", "tab\t", "é", "nul\0"] {
            assert_eq!(
                IdempotencyKey::parse(bad, "Idempotency-Key")
                    .unwrap_err()
                    .path,
                "Idempotency-Key"
            );
        }
    }
}
