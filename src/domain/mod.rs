//! Business rules and transactions. No HTTP here: handlers in `api/` call
//! one function of this layer and map its result.

pub mod accounts;
pub mod admission;
pub mod idempotency;
pub mod money;
pub mod order_writer;
pub mod orders;
pub mod products;

use tracing::Instrument;

use crate::{
    db,
    domain::idempotency::{Claim, Idempotent, Outcome},
    error::{AppError, AppResult},
    state::AppState,
};

/// A new, time-ordered, globally unique ID with a type prefix
/// (`ord_0192…`). Time order keeps index inserts local and makes the
/// default list order roughly creation order.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Whether `text` can be stored: PostgreSQL's `text` and `jsonb` cannot
/// hold U+0000, so validation refuses it everywhere, and no stored ID or
/// external ID contains it. A look-up by such a string finds nothing
/// without asking the database, on both backends alike.
pub fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// The issue of a filter that can match nothing stored.
fn unstorable_filter(name: &str) -> AppError {
    AppError::invalid(name, "invalid_string", "String must not contain U+0000")
}

/// Turns what a sync wrote into its response body (JSON). Given by the
/// API layer, so that the bytes stored for replays are the bytes sent.
pub type Render<T> = fn(&[T]) -> String;

/// Runs a sync's `write` (again on transient conflicts) in a task of its
/// own, holding the idempotency key for this process meanwhile.
/// Once started, a write finishes and its response is stored even when the
/// client hangs up: the client's retry then gets it instead of a second
/// execution.
pub async fn execute_sync<F, Fut>(
    state: &AppState,
    account: &str,
    idem: Option<&Idempotent>,
    ticket: admission::Ticket,
    mut write: F,
) -> AppResult<Outcome>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = AppResult<Outcome>> + Send + 'static,
{
    let claim = match state.idempotency.claim(&state.db, account, idem).await? {
        Claim::Held(claim) => claim,
        Claim::Replay(outcome) => return Ok(outcome),
    };
    let task = tokio::spawn(
        async move {
            // Held until the write ends: a concurrent retry gets 409, and
            // the request's room in the budgets stays taken.
            let _held = (claim, ticket);
            let mut attempts = 1;
            loop {
                match write().await {
                    Err(e) if should_retry(&e, &mut attempts).await => continue,
                    result => return result,
                }
            }
        }
        .in_current_span(),
    );
    task.await
        .map_err(|e| AppError::Unexpected(anyhow::anyhow!("write task failed: {e}")))?
}

/// Whether this process can serve: its order writer runs and the
/// database answers within a second.
pub async fn ready(state: &AppState) -> AppResult<()> {
    state.order_writer.ensure_running()?;
    state.db.ping().await?;
    Ok(())
}

/// One page of a listing. `next_after` is the last ID when more may follow.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

/// Largest page a listing returns.
pub const MAX_PAGE: u64 = 200;

/// Attempts of a write transaction that hit a transient conflict
/// (deadlock, serialisation failure, SQLite busy) before giving up.
const WRITE_ATTEMPTS: u32 = 5;

/// Whether a failed write transaction should run again: it hit a
/// transient conflict (deadlock, serialisation failure, SQLite busy) and
/// has attempts left. Backs off before answering yes, so that concurrent
/// requests never fail because of each other.
pub async fn should_retry(err: &AppError, attempts: &mut u32) -> bool {
    let AppError::Database(e) = err else {
        return false;
    };
    if !db::is_transient(e) || *attempts >= WRITE_ATTEMPTS {
        return false;
    }
    tracing::warn!(error = %e, attempts = *attempts, "transient database conflict, retrying");
    tokio::time::sleep(std::time::Duration::from_millis(10 * u64::from(*attempts))).await;
    *attempts += 1;
    true
}
