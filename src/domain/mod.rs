//! Business rules and transactions. No HTTP here: handlers in `api/` call
//! one function of this layer and map its result.

pub mod accounts;
pub mod money;
pub mod orders;
pub mod products;

use crate::{db, error::AppError};

/// A new, time-ordered, globally unique ID with a type prefix
/// (`ord_0192…`). Time order keeps index inserts local and makes the
/// default list order roughly creation order.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

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
