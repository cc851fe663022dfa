//! The sync use case, written once for every resource (orders, products):
//!
//! 1. a replay this process remembers is answered at once;
//! 2. scope: the body's `accountId` must be the key's (403);
//! 3. the rules that need no database (duplicate `externalId`s, and the
//!    resource's own, e.g. metadata size) and those that do (product
//!    references), with the schema's issues: every issue at once (400);
//! 4. idempotency: a rejected retry of a completed request is replayed; a
//!    key used for another request is refused (422);
//! 5. the key is claimed in this process (409 while in flight), and the
//!    write goes through the resource's group-commit [`Writer`], which
//!    rechecks the key, writes and stores the answer in one transaction.

use std::collections::{HashMap, hash_map::Entry};

use serde_json::Value;

use crate::{
    domain::{
        admission::Ticket,
        idempotency::{self, Claim, Earlier, Idempotent, Outcome},
        writer::{Resource, Writer},
    },
    error::{AppError, AppResult, Issue},
    state::AppState,
    telemetry::metrics,
};

/// A resource a client syncs.
pub trait Syncable: Resource {
    /// The operation: the idempotency scope's name (`syncOrders`).
    const OPERATION: &'static str;

    /// This resource's writer in the process.
    fn writer(state: &AppState) -> &Writer<Self>
    where
        Self: Sized;

    /// Rules over the raw body beyond its schema that need no database.
    fn body_rules(_body: &Value) -> Vec<Issue> {
        Vec::new()
    }

    /// Rules that need the database, checked inside the caller's account.
    fn stored_rules(
        _state: &AppState,
        _account: &str,
        _body: &Value,
    ) -> impl Future<Output = AppResult<Vec<Issue>>> + Send {
        async { Ok(Vec::new()) }
    }
}

/// A sync request's JSON body, as the API layer read it: raw for the rules
/// and the fingerprint, and parsed against the published schema.
pub trait SyncBody<I> {
    fn raw(&self) -> &Value;
    fn raw_mut(&mut self) -> &mut Value;
    /// The items, or every issue the schema finds. Consumes the body, so a
    /// batch of 1,000 orders is not copied to parse it.
    fn into_inputs(self) -> Result<Vec<I>, Vec<Issue>>;
}

/// Runs a sync of `R` for `account`. `idempotency_header` is the raw
/// `Idempotency-Key` header; `ticket` is the request's room in the
/// process's budgets, held until the write has ended.
// A debug span: at the default level it costs nothing per request (replays
// included); the request's own info span names the account already.
#[tracing::instrument(level = "debug", skip_all, fields(operation = R::OPERATION))]
pub async fn sync<R: Syncable>(
    state: &AppState,
    account: &str,
    idempotency_header: Option<&str>,
    body: impl SyncBody<R::Input>,
    ticket: Ticket,
) -> AppResult<Outcome> {
    let result = async {
        let (inputs, idem) = match check::<R>(state, account, idempotency_header, body).await? {
            Checked::Replay(outcome) => return Ok(outcome),
            Checked::Fresh { inputs, idem } => (inputs, idem),
        };
        // A writer that is restarting takes nothing: refuse before claiming.
        let writer = R::writer(state);
        writer.ensure_running()?;
        let claim = match state
            .idempotency
            .claim(&state.db, account, idem.as_ref())
            .await?
        {
            Claim::Held(claim) => claim,
            Claim::Replay(outcome) => return Ok(outcome),
        };
        tracing::debug!("sync claimed");
        writer.write(account, inputs, idem, claim, ticket).await
    }
    .await;
    match &result {
        Ok(outcome) if outcome.replayed => metrics::idempotency_outcome("replayed"),
        Err(AppError::IdempotencyKeyInUse) => metrics::idempotency_outcome("in_use"),
        Err(AppError::IdempotencyKeyReused) => metrics::idempotency_outcome("reused"),
        _ => {}
    }
    result
}

/// What the checks of a sync left to do.
pub enum Checked<I> {
    /// An earlier request with the same key completed: its response.
    Replay(Outcome),
    /// A valid request to execute (or preview).
    Fresh {
        inputs: Vec<I>,
        idem: Option<Idempotent>,
    },
}

/// Steps 1 to 4 of a sync, shared with its preview: a remembered replay,
/// scope, every rule, and the idempotency verdicts that need no claim.
pub async fn check<R: Syncable>(
    state: &AppState,
    account: &str,
    idempotency_header: Option<&str>,
    mut body: impl SyncBody<R::Input>,
) -> AppResult<Checked<R::Input>> {
    let (idem, mut issues) =
        idempotency::from_request(R::OPERATION, idempotency_header, body.raw_mut());
    let earlier = state.idempotency.earlier(account, idem.as_ref());
    if let Earlier::Replay(outcome) = earlier {
        return Ok(Checked::Replay(outcome));
    }
    check_scope(account, body.raw())?;
    issues.extend(duplicate_external_ids(body.raw()));
    issues.extend(R::body_rules(body.raw()));
    issues.extend(R::stored_rules(state, account, body.raw()).await?);
    let inputs = match collect_issues(body.into_inputs(), issues) {
        Ok(inputs) => inputs,
        Err(rejected) => {
            // A retry is answered as the first time, even if the rules
            // have tightened since (one read, paid only when rejecting).
            let replay = state
                .idempotency
                .replay_of_rejected(&state.db, account, idem.as_ref())
                .await?;
            return replay.map(Checked::Replay).ok_or(rejected);
        }
    };
    if let Earlier::Reused = earlier {
        return Err(AppError::IdempotencyKeyReused);
    }
    Ok(Checked::Fresh { inputs, idem })
}

/// 403 when the body names an `accountId` (a string) other than the key's.
/// Checked before validation, as the contract orders the checks.
pub fn check_scope(account: &str, body: &Value) -> AppResult<()> {
    match body.get("accountId").and_then(Value::as_str) {
        Some(payload) if payload != account => Err(AppError::AccountScope {
            key_account: account.to_owned(),
            payload_account: payload.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// `items.N.externalId` repeated within one batch: an issue on each later
/// occurrence.
fn duplicate_external_ids(body: &Value) -> Vec<Issue> {
    let mut first_at = HashMap::new();
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

/// The elements of the value's `items` array, if it is one.
pub fn batch_items(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Most issues one answer lists: a hostile body (100,000 empty orders)
/// would otherwise turn a few hundred kilobytes into tens of megabytes.
pub const MAX_ISSUES: usize = 1_000;

/// The parsed items when neither the schema (`parsed`) nor the rules
/// (`extra`) found an issue; otherwise every issue (up to [`MAX_ISSUES`]),
/// grouped by the item and line they concern.
fn collect_issues<T>(parsed: Result<T, Vec<Issue>>, extra: Vec<Issue>) -> AppResult<T> {
    let (parsed, mut issues) = match parsed {
        Ok(t) => (Some(t), Vec::new()),
        Err(issues) => (None, issues),
    };
    issues.extend(extra);
    match parsed {
        Some(t) if issues.is_empty() => Ok(t),
        _ => {
            // Stable: within one item or line, document order is kept.
            issues.sort_by_cached_key(|i| {
                i.path
                    .split('.')
                    .filter_map(|seg| seg.parse::<usize>().ok())
                    .collect::<Vec<_>>()
            });
            issues.truncate(MAX_ISSUES);
            Err(AppError::Invalid(issues))
        }
    }
}
