//! Previewing a sync: the sync use case's checks, then what its write
//! would do to each item (create, update, or leave unchanged), read from
//! one snapshot. Writes nothing, stores no idempotency record and never
//! waits for the writer.

use std::str::FromStr;

use rust_decimal::Decimal;
use sea_orm::DatabaseTransaction;
use serde_json::Value;

use crate::{
    domain::{
        admission::Ticket,
        idempotency::Earlier,
        sync::{Checked, SyncBody, Syncable, check},
    },
    error::{AppError, AppResult},
    state::AppState,
};

/// What a sync would do to one stored item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Unchanged,
}

/// One item of a preview, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub external_id: String,
    /// The existing EntryGo ID; `None` for a new item.
    pub id: Option<String>,
    pub action: Action,
    /// Orders only: the total the sync would store.
    pub total_value_usd: Option<Decimal>,
}

/// A preview's answer.
#[derive(Debug)]
pub struct Preview {
    pub items: Vec<Planned>,
    /// The sync would replay an earlier request's response (so it would
    /// change nothing).
    pub replay: bool,
}

/// A resource whose syncs can be previewed.
pub trait Previewable: Syncable {
    /// What a sync of `inputs` would do to each, read in `txn`: the same
    /// judgement the write makes.
    fn plan(
        txn: &DatabaseTransaction,
        account: &str,
        inputs: &[Self::Input],
        prepared: &Self::Prepared,
    ) -> impl Future<Output = AppResult<Vec<Planned>>> + Send;
}

/// Previews a sync of `R` for `account`: the sync's checks in the sync's
/// order, then one read. `ticket` bounds the body's memory while it is
/// checked, as for a sync.
pub async fn preview<R: Previewable>(
    state: &AppState,
    account: &str,
    idempotency_header: Option<&str>,
    body: impl SyncBody<R::Input>,
    _ticket: Ticket,
) -> AppResult<Preview> {
    let (inputs, idem) = match check::<R>(state, account, idempotency_header, body).await? {
        Checked::Replay(outcome) => return replayed(&outcome.body),
        Checked::Fresh { inputs, idem } => (inputs, idem),
    };
    // The records this process has not seen: the read the write's recheck
    // would make.
    match state
        .idempotency
        .stored(&state.db, account, idem.as_ref())
        .await?
    {
        Earlier::Replay(outcome) => return replayed(&outcome.body),
        Earlier::Reused => return Err(AppError::IdempotencyKeyReused),
        Earlier::None => {}
    }
    let prepared = R::prepare(&inputs)?;
    let txn = state.db.begin_read().await?;
    let items = R::plan(&txn, account, &inputs, &prepared).await?;
    txn.commit().await?;
    Ok(Preview {
        items,
        replay: false,
    })
}

/// The preview of a replay: the stored response's items, none changed.
fn replayed(stored: &str) -> AppResult<Preview> {
    let stored: Value = serde_json::from_str(stored)
        .map_err(|e| anyhow::anyhow!("a stored response is not JSON: {e}"))?;
    let items = stored["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| Planned {
            external_id: item["externalId"].as_str().unwrap_or_default().to_owned(),
            id: item["id"].as_str().map(str::to_owned),
            action: Action::Unchanged,
            total_value_usd: item
                .get("totalValueUsd")
                .and_then(|t| Decimal::from_str(&t.to_string()).ok()),
        })
        .collect();
    Ok(Preview {
        items,
        replay: true,
    })
}
