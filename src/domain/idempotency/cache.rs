//! What a process remembers: the keys it is executing, and completed
//! records it has written or read.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use super::{IdempotencyKey, Idempotent, Stored};
use crate::error::{AppError, AppResult};

/// Keys being executed by this process.
#[derive(Debug, Default, Clone)]
pub struct InFlight(Arc<Mutex<HashSet<Scope>>>);

/// Account, operation, key.
pub type Scope = (String, &'static str, IdempotencyKey);

pub fn scope(account: &str, idem: &Idempotent) -> Scope {
    (account.to_owned(), idem.operation, idem.key.clone())
}

/// Holds a key in flight; releases it when dropped, whatever happened.
pub struct InFlightGuard {
    set: InFlight,
    entry: Scope,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .expect("in-flight set")
            .remove(&self.entry);
    }
}

impl InFlight {
    /// Keys being executed now.
    pub fn len(&self) -> usize {
        self.0.lock().expect("in-flight set").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn claim(&self, account: &str, idem: &Idempotent) -> AppResult<InFlightGuard> {
        let entry = scope(account, idem);
        if !self.0.lock().expect("in-flight set").insert(entry.clone()) {
            return Err(AppError::IdempotencyKeyInUse);
        }
        Ok(InFlightGuard {
            set: self.clone(),
            entry,
        })
    }
}

/// Completed records this process has read from the database, by scope,
/// so that further replays of them need no read at all. Sound across
/// processes: a record never changes while it is live (only an expired
/// scope is written again), and an entry is ignored from its expiry on.
/// Only committed records (read back) enter it. Bounded by size.
#[derive(Clone)]
pub struct Completed(Arc<quick_cache::sync::Cache<Scope, Arc<Record>, RecordWeight>>);

/// A completed record as cached.
#[derive(Debug)]
pub struct Record {
    pub fingerprint: String,
    pub stored: Stored,
    pub expires_at_ms: i64,
}

/// Bytes of cached responses, roughly, across all entries. A blind retry
/// comes soon after its original, and the last few thousand single-order
/// responses are enough to answer it without a read; every budgeted byte
/// costs more than one of the process's memory (the scope, the record and
/// the allocator's rounding), and a miss costs only one indexed read
/// (README, "Performance").
const COMPLETED_CACHE_BYTES: u64 = 2 << 20;
/// Larger responses (batches of hundreds of orders, whose retries are rare
/// and cost far more than one read) are read each time, and never push the
/// many small records out.
const COMPLETED_CACHE_MAX_ENTRY: usize = 64 << 10;

#[derive(Clone)]
struct RecordWeight;

impl quick_cache::Weighter<Scope, Arc<Record>> for RecordWeight {
    fn weight(&self, scope: &Scope, record: &Arc<Record>) -> u64 {
        (scope.0.len() + scope.2.as_str().len() + record.stored.body.len() + 128) as u64
    }
}

impl Default for Completed {
    fn default() -> Self {
        Self(Arc::new(quick_cache::sync::Cache::with_weighter(
            4_096,
            COMPLETED_CACHE_BYTES,
            RecordWeight,
        )))
    }
}

impl std::fmt::Debug for Completed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completed")
            .field("entries", &self.0.len())
            .finish()
    }
}

impl Completed {
    pub fn get(&self, scope: &Scope, now_ms: i64) -> Option<Arc<Record>> {
        self.0
            .get(scope)
            .filter(|record| record.expires_at_ms > now_ms)
    }

    pub fn remember(&self, scope: Scope, record: Arc<Record>) {
        if record.stored.body.len() <= COMPLETED_CACHE_MAX_ENTRY {
            self.0.insert(scope, record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &str, expires_at_ms: i64) -> Arc<Record> {
        Arc::new(Record {
            fingerprint: "f".into(),
            stored: Stored {
                status: 200,
                body: body.into(),
            },
            expires_at_ms,
        })
    }

    #[test]
    fn completed_records_are_forgotten_at_expiry_and_large_ones_not_kept() {
        let cache = Completed::default();
        let scope = |k: &str| {
            (
                "acc_1".to_owned(),
                "syncOrders",
                IdempotencyKey::parse(k, "k").unwrap(),
            )
        };
        cache.remember(scope("a"), record("{}", 1_000));
        assert!(cache.get(&scope("a"), 999).is_some());
        assert!(cache.get(&scope("a"), 1_000).is_none());
        assert!(cache.get(&scope("b"), 0).is_none());
        let large = "x".repeat(COMPLETED_CACHE_MAX_ENTRY + 1);
        cache.remember(scope("c"), record(&large, 1_000));
        assert!(cache.get(&scope("c"), 0).is_none());
        // Bounded: far more than fits leaves the cache within its budget.
        let body = "y".repeat(64 << 10);
        for i in 0..1_000 {
            cache.remember(scope(&format!("k{i}")), record(&body, 1_000));
        }
        assert!(cache.0.weight() <= COMPLETED_CACHE_BYTES);
    }
}
