//! Opaque list cursors. A cursor names the last item of a page; it is
//! base64url so clients treat it as a token, and it says which listing it
//! belongs to, so a cursor from another listing (or a made-up one) is a
//! validation issue rather than a silently wrong page.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::{AppError, Issue};

/// Default page size.
pub fn default_limit() -> u64 {
    50
}

pub fn encode(kind: &str, last_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{last_id}"))
}

/// The last ID a cursor of listing `kind` names.
pub fn decode(kind: &str, cursor: &str) -> Result<String, AppError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let id = text.strip_prefix(kind)?.strip_prefix(':')?;
            let plausible = !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            plausible.then(|| id.to_owned())
        })
        .ok_or_else(|| {
            AppError::Invalid(vec![Issue::new(
                "cursor",
                "custom",
                "Invalid cursor: pass the nextCursor of a previous page",
            )])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_ones() {
        let c = encode("orders", "ord_0193abc");
        assert_eq!(decode("orders", &c).unwrap(), "ord_0193abc");
        assert!(decode("products", &c).is_err());
        assert!(decode("orders", "not base64!").is_err());
        assert!(decode("orders", &URL_SAFE_NO_PAD.encode("orders:")).is_err());
        assert!(decode("orders", &URL_SAFE_NO_PAD.encode("orders:x' OR 1=1")).is_err());
    }
}
