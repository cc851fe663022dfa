//! Business rules and transactions. No HTTP here: handlers in `api/` call
//! one function of this layer and map its result.

pub mod accounts;
pub mod admission;
pub mod changes;
pub mod digest;
mod group_commit;
pub mod idempotency;
pub mod money;
pub mod orders;
pub mod preview;
pub mod products;
pub mod sync;
pub mod writer;

use crate::{
    db,
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

/// A sync's response body: `{"data": [...]}`, the items in request order.
/// The stored bytes of an idempotent request are these, replayed as they
/// are.
pub fn render<T: serde::Serialize>(items: &[T]) -> String {
    #[derive(serde::Serialize)]
    struct Synced<'a, T> {
        data: &'a [T],
    }
    serde_json::to_string(&Synced { data: items }).expect("synced items serialise")
}

/// Whether this process can serve: its order writer runs and the
/// database answers within a second.
pub async fn ready(state: &AppState) -> AppResult<()> {
    state.order_writer.ensure_running()?;
    state.product_writer.ensure_running()?;
    state.db.ping().await?;
    Ok(())
}

/// One page of a listing. `next_after` is the last ID when more may follow.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

/// A listing's page as the API answers it: `{"data": [...], "nextCursor":
/// "…" | null}`.
pub fn render_page<T: serde::Serialize>(page: &Page<T>) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Listed<'a, T> {
        data: &'a [T],
        next_cursor: Option<&'a str>,
    }
    serde_json::to_string(&Listed {
        data: &page.items,
        next_cursor: page.next_after.as_deref(),
    })
    .expect("a page serialises")
}

/// Largest page a listing returns.
pub const MAX_PAGE: u64 = 200;

/// Which page of a listing to read: the items after the position `after`
/// (a cursor or feed token; none = from the start), at most `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct Paging<'a> {
    pub after: Option<&'a str>,
    pub limit: u64,
}

impl<'a> Paging<'a> {
    /// `limit` is held to 1..=[`MAX_PAGE`].
    pub fn new(after: Option<&'a str>, limit: u64) -> Self {
        Self {
            after,
            limit: limit.clamp(1, MAX_PAGE),
        }
    }
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
