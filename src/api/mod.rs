//! The HTTP contract: poem-openapi types and thin handlers. The served spec
//! is generated from these types.

pub mod error;
pub mod health;
pub mod orders;
pub mod pagination;
pub mod payload;
pub mod products;
pub mod types;
pub mod validation;

use poem_openapi::{OpenApiService, Tags};
use std::collections::hash_map::Entry;

use serde_json::Value;

use crate::{
    error::{AppError, AppResult, Issue},
    idempotency::{self, IdempotencyKey, Idempotent},
};

#[derive(Tags)]
pub enum ApiTags {
    /// Orders synced from warehouse systems, shops and agents.
    Orders,
    /// Products that order lines reference.
    Products,
    /// Liveness and readiness probes.
    Health,
}

pub type Apis = (orders::OrdersApi, products::ProductsApi, health::HealthApi);

/// The API with its metadata. Needs no database, so the spec can be built
/// anywhere (`entrygo openapi`, the spec test).
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (orders::OrdersApi, products::ProductsApi, health::HealthApi),
        "EntryGo intake API",
        "1.0.0",
    )
    .description(
        "Sync orders, and the products they reference, into EntryGo for export planning. \
             Authenticate with `Authorization: Bearer <api-key>`. Every error is a JSON \
             envelope `{errorCode, message, field?, details?}`; branch on `errorCode`.",
    )
    .server("http://localhost:3000")
}

/// The spec as served at `/openapi.json` and committed in `openapi/`.
pub fn spec_json() -> String {
    service().spec()
}

/// `items.N.externalId` repeated within one batch: an issue on each later
/// occurrence.
pub fn duplicate_external_ids(body: &Value) -> Vec<Issue> {
    let mut first_at = std::collections::HashMap::new();
    let mut issues = Vec::new();
    for (i, item) in batch_items(body).enumerate() {
        let Some(ext) = item.get("externalId").and_then(Value::as_str) else {
            continue;
        };
        match first_at.entry(ext) {
            Entry::Occupied(first) => issues.push(Issue::new(
                format!("items.{i}.externalId"),
                "custom",
                format!(
                    "Duplicate externalId in this request (first at items.{})",
                    first.get()
                ),
            )),
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
    }
    issues
}

/// The elements of the body's top-level `items` array, if it is one.
pub fn batch_items(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The parsed request when neither the schema walk (`parsed`) nor the
/// request-level rules (`extra`) found an issue; otherwise every issue,
/// grouped by the order and line they concern.
pub fn collect_issues<T>(parsed: Result<T, Vec<Issue>>, extra: Vec<Issue>) -> AppResult<T> {
    let (parsed, mut issues) = match parsed {
        Ok(t) => (Some(t), Vec::new()),
        Err(issues) => (None, issues),
    };
    issues.extend(extra);
    match parsed {
        Some(t) if issues.is_empty() => Ok(t),
        _ => {
            // Stable: within one order or line, document order is kept.
            issues.sort_by_cached_key(|i| {
                i.path
                    .split('.')
                    .filter_map(|seg| seg.parse::<usize>().ok())
                    .collect::<Vec<_>>()
            });
            Err(AppError::Invalid(issues))
        }
    }
}

/// The idempotency key of a sync request: the `Idempotency-Key` header when
/// present (the body's `idempotencyKey` is then ignored, even a malformed
/// one), else the body's. The body's key is removed from `body`, so the
/// schema walk leaves it to this function; an invalid key is an issue.
pub fn take_idempotency(
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
            let fingerprint = idempotency::fingerprint(body);
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
