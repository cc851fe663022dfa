//! Idempotent retries of the sync operations.
//!
//! Scope: account + operation + key. The first request that executes stores
//! its response in the same transaction as its writes, so a crash leaves
//! either both or neither. A retry with the same key and the same request
//! replays that response; with another request it is refused (422); while
//! the first is still running it is told to retry later (409):
//!
//! - within one process, an in-memory set of keys in flight answers 409;
//! - across processes on PostgreSQL, the writer holds a transaction-scoped
//!   advisory lock on the scope; a second writer's *try* lock fails at
//!   once (a plain insert would block behind the first's uncommitted row
//!   and then replay instead of answering 409);
//! - across processes on one SQLite file, writers are serialised by the
//!   file's write lock, so the later one waits and then replays.
//!
//! Completed records a process has written or read are kept in a bounded
//! cache (`cache.rs`), so its replays need no database read.
//!
//! - `key.rs`: what a key is, and where a request's key comes from;
//! - `fingerprint.rs`: when a retry is the same request;
//! - `cache.rs`: the keys in flight and the completed records remembered;
//! - `store.rs`: the protocol from claim to commit, the one entry point.

mod cache;
mod fingerprint;
mod key;
mod store;

pub use cache::InFlightGuard;
pub use fingerprint::fingerprint;
pub use key::{IdempotencyKey, Idempotent, KEY_MAX_LEN, KEY_PATTERN, from_request};
pub use store::{Claim, Completion, Earlier, Idempotency, now_ms, purge_expired_forever};

/// A stored first response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub status: u16,
    pub body: String,
}

/// What a sync answers: the response body, and whether it is a replay.
#[derive(Debug)]
pub struct Outcome {
    pub body: String,
    pub replayed: bool,
}
