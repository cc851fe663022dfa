//! The HTTP contract: poem-openapi types and thin handlers. The served spec
//! is generated from these types.

pub mod body;
mod envelope;
pub mod error;
mod examples;
pub mod health;
pub mod orders;
pub mod pagination;
pub mod payload;
pub mod preview;
pub mod products;
mod resource;
pub mod types;
pub mod validation;

use std::sync::LazyLock;

use poem_openapi::{LicenseObject, OpenApiService, ServerObject, Tags};

use serde_json::Value;

use crate::{
    api::{
        body::{SyncBody, ValidatedJson},
        error::{ApiError, rate_limit_policy, rate_limit_state},
    },
    auth::Caller,
    domain::{self, admission::Ticket},
    state::AppState,
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

pub type Apis = (
    orders::OrdersApi,
    products::ProductsApi,
    preview::PreviewApi,
    health::HealthApi,
);

/// The API with its metadata. Needs no database, so the spec can be built
/// anywhere (`entrygo openapi`, the spec test).
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            orders::OrdersApi,
            products::ProductsApi,
            preview::PreviewApi,
            health::HealthApi,
        ),
        "EntryGo intake API",
        "1.0.0",
    )
    .description(
        "Sync orders, and the products they reference, into EntryGo for export planning. \
             Authenticate with `Authorization: Bearer <api-key>`. Every error is a JSON \
             envelope `{errorCode, message, field?, details?}`; branch on `errorCode`.",
    )
    .server(ServerObject::new("http://localhost:3000").description("A local `entrygo serve`"))
    .license(LicenseObject::new("Proprietary"))
}

/// The spec as served at `/openapi.json` and committed in `openapi/`:
/// poem-openapi's document, finished by [`finish_spec`].
pub fn spec_json() -> String {
    static SPEC: LazyLock<String> = LazyLock::new(|| {
        let mut spec: Value =
            serde_json::from_str(&service().spec()).expect("poem-openapi writes JSON");
        finish_spec(&mut spec);
        serde_json::to_string_pretty(&spec).expect("a Value serialises")
    });
    SPEC.clone()
}

/// Swagger UI, showing the finished spec.
pub fn swagger_ui_html() -> String {
    let service = service();
    service
        .swagger_ui_html()
        .replace(&service.spec(), &spec_json())
}

/// What poem-openapi cannot state itself:
/// - operations without an API key say so (`security: []`), so linters and
///   SDK generators know they are public rather than undocumented;
/// - response header names are written as sent (`Idempotent-Replayed`, not
///   upper case);
/// - JSON bodies are declared as `application/json`. poem-openapi writes
///   `application/json; charset=utf-8`, the same media type with a
///   parameter, which SDK generators and diff tools fail to recognise as
///   JSON. The server keeps sending the charset, which JSON clients accept.
fn finish_spec(spec: &mut Value) {
    rename_json_media_types(spec);
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.values_mut())
    {
        let Some(operation) = operation.as_object_mut() else {
            continue;
        };
        operation
            .entry("security")
            .or_insert_with(|| Value::Array(Vec::new()));
        let responses = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut);
        for response in responses.into_iter().flat_map(|r| r.values_mut()) {
            if let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) {
                *headers = std::mem::take(headers)
                    .into_iter()
                    .map(|(name, header)| (title_case_header(&name), header))
                    .collect();
            }
        }
    }
}

fn rename_json_media_types(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(media) = map.remove(POEM_JSON) {
                map.insert("application/json".to_owned(), media);
            }
            map.values_mut().for_each(rename_json_media_types);
        }
        Value::Array(items) => items.iter_mut().for_each(rename_json_media_types),
        _ => {}
    }
}

const POEM_JSON: &str = "application/json; charset=utf-8";

/// `IDEMPOTENT-REPLAYED` → `Idempotent-Replayed`; the RateLimit fields as
/// their draft spells them.
fn title_case_header(name: &str) -> String {
    for spelled in ["RateLimit", "RateLimit-Policy"] {
        if name.eq_ignore_ascii_case(spelled) {
            return spelled.to_owned();
        }
    }
    name.split('-')
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Each documented path template, split into segments, with the methods
/// and operation IDs it serves.
struct SpecRoute {
    template: &'static str,
    segments: Vec<&'static str>,
    methods: String,
    operations: Vec<String>,
}

static ROUTES: LazyLock<Vec<SpecRoute>> = LazyLock::new(|| {
    let spec: Value = serde_json::from_str(&spec_json()).expect("spec is JSON");
    spec["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(template, ops)| {
            let template: &'static str = Box::leak(template.clone().into_boxed_str());
            let ops: Vec<(&String, &Value)> = ops.as_object().into_iter().flatten().collect();
            SpecRoute {
                template,
                segments: template.split('/').collect(),
                methods: ops
                    .iter()
                    .map(|(m, _)| m.to_uppercase())
                    .collect::<Vec<_>>()
                    .join(", "),
                operations: ops
                    .iter()
                    .filter_map(|(_, op)| op["operationId"].as_str().map(str::to_owned))
                    .collect(),
            }
        })
        .collect()
});

/// The documented route `path` belongs to. An exact path
/// (`/api/orders/sync`) beats a template (`/api/orders/{id}`).
fn spec_route(path: &str) -> Option<&'static SpecRoute> {
    ROUTES
        .iter()
        .filter(|route| {
            route.segments.len() == path.split('/').count()
                && route
                    .segments
                    .iter()
                    .zip(path.split('/'))
                    .all(|(t, s)| *t == s || (t.starts_with('{') && !s.is_empty()))
        })
        .min_by_key(|route| route.segments.iter().filter(|t| t.starts_with('{')).count())
}

/// The methods each documented path accepts, for the `Allow` header of a
/// 405 (RFC 9110 requires it).
pub fn allowed_methods(path: &str) -> Option<String> {
    spec_route(path).map(|route| route.methods.clone())
}

/// The `http_route` label of a request: the route template of the
/// operation that answered, else the documented route its path belongs to
/// (a request refused before routing, e.g. a 413), else a fixed value, so
/// that no label carries a raw path.
pub fn route_label(operation: Option<&str>, path: &str) -> &'static str {
    if let Some(op) = operation
        && let Some(route) = ROUTES.iter().find(|r| r.operations.iter().any(|o| o == op))
    {
        return route.template;
    }
    match path {
        "/openapi.json" => "/openapi.json",
        "/docs" => "/docs",
        _ => spec_route(path).map_or("unmatched", |route| route.template),
    }
}

/// Admits a write of `account` into the process's budgets, then reads its
/// body within its charge; with its raw `Idempotency-Key` header. A
/// refused request's body is read and dropped (never held), so the client
/// gets the refusal rather than a reset.
async fn admit_and_read<T>(
    state: &AppState,
    account: &str,
    mut body: SyncBody<T>,
) -> Result<(Option<String>, Ticket, ValidatedJson<T>), ApiError> {
    let header = body.take_idempotency_header();
    match state.admission.admit(account, body.declared_len()).await {
        Ok(mut ticket) => {
            let body = body.read(&mut ticket).await?;
            Ok((header, ticket, body))
        }
        Err(refused) => {
            body.discard().await;
            Err(refused.into())
        }
    }
}

/// `RateLimit-Policy` and `RateLimit` of an admitted write.
fn rate_limit_headers(ticket: &Ticket) -> (Option<String>, Option<String>) {
    (
        Some(rate_limit_policy(ticket.share_bytes())),
        Some(rate_limit_state(ticket.remaining_bytes(), None)),
    )
}

/// What a sync handler answers with: the outcome, and the account's
/// `RateLimit-Policy` and `RateLimit` fields.
pub struct Synced {
    pub body: String,
    pub replayed: Option<bool>,
    pub rate_limit_policy: Option<String>,
    pub rate_limit: Option<String>,
}

/// A sync handler's whole work, for every resource: admission, the body
/// read within it, then the one domain call.
pub async fn run_sync<R, T>(caller: &Caller<'_>, body: SyncBody<T>) -> Result<Synced, ApiError>
where
    R: domain::sync::Syncable,
    ValidatedJson<T>: domain::sync::SyncBody<R::Input>,
{
    let Caller { account, state } = caller;
    let (header, ticket, body) = admit_and_read(state, account, body).await?;
    let (rate_limit_policy, rate_limit) = rate_limit_headers(&ticket);
    let outcome = domain::sync::sync::<R>(state, account, header.as_deref(), body, ticket).await?;
    Ok(Synced {
        body: outcome.body,
        replayed: outcome.replayed.then_some(true),
        rate_limit_policy,
        rate_limit,
    })
}

/// A preview handler's work, for every resource: admission and the body
/// read within it, as for a sync, then the one domain call.
pub async fn run_preview<R, T>(
    caller: &Caller<'_>,
    body: SyncBody<T>,
) -> Result<domain::preview::Preview, ApiError>
where
    R: domain::preview::Previewable,
    ValidatedJson<T>: domain::sync::SyncBody<R::Input>,
{
    let Caller { account, state } = caller;
    let (header, ticket, body) = admit_and_read(state, account, body).await?;
    Ok(domain::preview::preview::<R>(state, account, header.as_deref(), body, ticket).await?)
}
