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
//! cache ([`Completed`]), so its replays need no database read.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::{ConnectionTrait, DbBackend};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    db::{self, Db},
    error::{AppError, AppResult, Issue},
};

/// Longest idempotency key, in characters.
pub const KEY_MAX_LEN: usize = 255;

/// The characters of a key, as the spec states them (0x21–0x7E).
pub const KEY_PATTERN: &str = "^[!-~]+$";

/// A key of 1 to 255 visible ASCII characters (0x21–0x7E).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a key; an issue at `path` (`Idempotency-Key` for the header,
    /// `idempotencyKey` for the body) when it is not one.
    pub fn parse(raw: &str, path: &str) -> Result<Self, Issue> {
        if raw.is_empty() {
            return Err(Issue::new(
                path,
                "too_small",
                "String must contain at least 1 character(s)",
            ));
        }
        if raw.len() > KEY_MAX_LEN {
            return Err(Issue::new(
                path,
                "too_big",
                format!("String must contain at most {KEY_MAX_LEN} character(s)"),
            ));
        }
        if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Issue::new(
                path,
                "invalid_string",
                "Only visible ASCII characters (0x21-0x7E) are allowed",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An idempotent request: which operation, under which key, with which
/// fingerprint.
#[derive(Debug, Clone)]
pub struct Idempotent {
    pub operation: &'static str,
    pub key: IdempotencyKey,
    pub fingerprint: String,
}

/// SHA-256 (hex) of the body in canonical form: object keys sorted, no
/// whitespace, numbers by exact value (`1.50` and `1.5e0` are `1.5`), and
/// without the body-level `idempotencyKey`. Reordering keys or reformatting
/// a retry does not change it; changing any value does.
pub fn fingerprint(body: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical, Some("idempotencyKey"));
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Writes `value` in canonical form; `skip` names a key left out of this
/// (top-level) object.
fn write_canonical(value: &Value, out: &mut String, skip: Option<&str>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map
                .iter()
                .filter(|(k, _)| Some(k.as_str()) != skip)
                .collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out, None);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out, None);
            }
            out.push(']');
        }
        Value::Number(n) => match crate::domain::money::exact_decimal(n) {
            Some(d) => out.push_str(&d.normalize().to_string()),
            None => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

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

/// Keys being executed by this process.
#[derive(Debug, Default, Clone)]
pub struct InFlight(Arc<Mutex<HashSet<Scope>>>);

/// Account, operation, key.
type Scope = (String, &'static str, IdempotencyKey);

fn scope(account: &str, idem: &Idempotent) -> Scope {
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
    fn claim(&self, account: &str, idem: &Idempotent) -> AppResult<InFlightGuard> {
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
struct Record {
    fingerprint: String,
    stored: Stored,
    expires_at_ms: i64,
}

/// Bytes of cached responses, roughly, across all entries.
const COMPLETED_CACHE_BYTES: u64 = 8 << 20;
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
    fn get(&self, scope: &Scope, now_ms: i64) -> Option<Arc<Record>> {
        self.0
            .get(scope)
            .filter(|record| record.expires_at_ms > now_ms)
    }

    fn remember(&self, scope: Scope, record: Arc<Record>) {
        if record.stored.body.len() <= COMPLETED_CACHE_MAX_ENTRY {
            self.0.insert(scope, record);
        }
    }
}

/// The state idempotent operations share within a process.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub in_flight: InFlight,
    completed: Completed,
    pub ttl: Duration,
}

impl Idempotency {
    pub fn new(ttl: Duration) -> Self {
        Self {
            in_flight: InFlight::default(),
            completed: Completed::default(),
            ttl,
        }
    }

    /// Before validation: the response of an earlier request with this
    /// key, when this process holds its record (it wrote or read it), which
    /// costs no database read. A replay needs nothing else: the same
    /// fingerprint means the same body, which passed every check before. A
    /// key used for another request is only refused after validation, which
    /// the contract orders first. Records this process has not seen are
    /// found by the write's [`recheck`](Self::recheck), or by
    /// [`replay_of_rejected`](Self::replay_of_rejected).
    pub fn earlier(&self, account: &str, idem: Option<&Idempotent>) -> Earlier {
        let Some(idem) = idem else {
            return Earlier::None;
        };
        match self.completed.get(&scope(account, idem), now_ms()) {
            Some(record) => judge(&record, idem),
            None => Earlier::None,
        }
    }

    /// For a request that validation rejects: the stored response of the
    /// same request, if it completed before (one indexed read). A retry is
    /// answered as the first time even if the rules have tightened since.
    pub async fn replay_of_rejected(
        &self,
        db: &Db,
        account: &str,
        idem: Option<&Idempotent>,
    ) -> AppResult<Option<Outcome>> {
        let Some(idem) = idem else {
            return Ok(None);
        };
        let record = self.read_one(db.conn(), account, idem).await?;
        Ok(record.and_then(|record| replay(&record, idem).ok()))
    }

    /// The live records of these requests' scopes, in one statement,
    /// parallel to `requests`; each one found is remembered.
    async fn read(
        &self,
        conn: &impl ConnectionTrait,
        requests: &[(&str, &Idempotent)],
    ) -> AppResult<Vec<Option<Arc<Record>>>> {
        let scopes: Vec<(&str, &str, &str)> = requests
            .iter()
            .map(|(account, idem)| (*account, idem.operation, idem.key.as_str()))
            .collect();
        let found: HashMap<(String, String, String), Arc<Record>> =
            db::idempotency::find_live_many(conn, &scopes, now_ms())
                .await?
                .into_iter()
                .map(|(scope, (fingerprint, stored, expires_at_ms))| {
                    let record = Record {
                        fingerprint,
                        stored,
                        expires_at_ms,
                    };
                    (scope, Arc::new(record))
                })
                .collect();
        Ok(scopes
            .iter()
            .zip(requests)
            .map(|((account, operation, key), (_, idem))| {
                let key = (
                    (*account).to_owned(),
                    (*operation).to_owned(),
                    (*key).to_owned(),
                );
                let record = found.get(&key).cloned()?;
                self.completed
                    .remember(scope(account, idem), record.clone());
                Some(record)
            })
            .collect())
    }

    /// [`read`](Self::read) for one request.
    async fn read_one(
        &self,
        conn: &impl ConnectionTrait,
        account: &str,
        idem: &Idempotent,
    ) -> AppResult<Option<Arc<Record>>> {
        Ok(self.read(conn, &[(account, idem)]).await?.pop().flatten())
    }

    /// Before the write transaction: claims the key for this process. When
    /// one of its requests holds the key already, that may be the replay of
    /// a completed request on its way through the writer (a burst of
    /// retries this process had not seen): one read tells, and a completed
    /// record is replayed (or refused, 422); otherwise 409.
    pub async fn claim(
        &self,
        db: &Db,
        account: &str,
        idem: Option<&Idempotent>,
    ) -> AppResult<Claim> {
        let Some(idem) = idem else {
            return Ok(Claim::Held(None));
        };
        match self.in_flight.claim(account, idem) {
            Ok(guard) => Ok(Claim::Held(Some(guard))),
            Err(in_use) => match self.read_one(db.conn(), account, idem).await? {
                Some(record) => replay(&record, idem).map(Claim::Replay),
                None => Err(in_use),
            },
        }
    }

    /// Inside the write transaction, before writing, for each request of
    /// a batch (account, key): takes the scope's lock (409 when another
    /// process holds it) and looks again, since another request may have
    /// completed since `earlier`. `Ok(None)`: execute. One statement takes
    /// all the locks, one more looks up all the keys.
    pub async fn recheck(
        &self,
        txn: &impl ConnectionTrait,
        requests: &[(&str, Option<&Idempotent>)],
    ) -> AppResult<Vec<AppResult<Option<Outcome>>>> {
        let keyed: Vec<(usize, &str, &Idempotent)> = requests
            .iter()
            .enumerate()
            .filter_map(|(i, (account, idem))| idem.map(|idem| (i, *account, idem)))
            .collect();
        let mut results: Vec<AppResult<Option<Outcome>>> =
            requests.iter().map(|_| Ok(None)).collect();
        if keyed.is_empty() {
            return Ok(results);
        }
        let mut open = Vec::with_capacity(keyed.len());
        if txn.get_database_backend() == DbBackend::Postgres {
            let ids: Vec<i64> = keyed
                .iter()
                .map(|(_, account, idem)| lock_id(account, idem))
                .collect();
            let locked = db::idempotency::try_advisory_xact_locks(txn, &ids).await?;
            for (entry, got) in keyed.into_iter().zip(locked) {
                if got {
                    open.push(entry);
                } else {
                    results[entry.0] = Err(AppError::IdempotencyKeyInUse);
                }
            }
        } else {
            open = keyed;
        }
        let requests: Vec<(&str, &Idempotent)> = open
            .iter()
            .map(|(_, account, idem)| (*account, *idem))
            .collect();
        let records = self.read(txn, &requests).await?;
        for ((i, _, idem), record) in open.into_iter().zip(records) {
            results[i] = match record {
                None => Ok(None),
                Some(record) => replay(&record, idem).map(Some),
            };
        }
        Ok(results)
    }

    /// Inside the write transaction, after writing: stores the responses
    /// of the requests that carry a key, in one statement. Call
    /// [`Completion::committed`] once the transaction has committed.
    pub async fn complete(
        &self,
        txn: &impl ConnectionTrait,
        responses: &[(&str, Option<&Idempotent>, &str)],
    ) -> AppResult<Completion> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let expires_at_ms = now_ms().saturating_add(ttl_ms);
        let stored: Vec<(&str, &Idempotent, Stored)> = responses
            .iter()
            .filter_map(|(account, idem, body)| {
                idem.map(|idem| {
                    (
                        *account,
                        idem,
                        Stored {
                            status: 200,
                            body: (*body).to_owned(),
                        },
                    )
                })
            })
            .collect();
        let records: Vec<(&str, &Idempotent, &Stored)> =
            stored.iter().map(|(a, i, s)| (*a, *i, s)).collect();
        db::idempotency::save(txn, &records, expires_at_ms).await?;
        Ok(Completion {
            completed: self.completed.clone(),
            records: stored
                .into_iter()
                .map(|(account, idem, stored)| {
                    let scope = scope(account, idem);
                    let record = Record {
                        fingerprint: idem.fingerprint.clone(),
                        stored,
                        expires_at_ms,
                    };
                    (scope, Arc::new(record))
                })
                .collect(),
        })
    }
}

/// Records stored by a write transaction, to remember once it commits (a
/// rolled-back record must never be replayed).
#[must_use = "call `committed` after the transaction commits"]
pub struct Completion {
    completed: Completed,
    records: Vec<(Scope, Arc<Record>)>,
}

impl Completion {
    pub fn committed(self) {
        for (scope, record) in self.records {
            self.completed.remember(scope, record);
        }
    }
}

/// The outcome of [`Idempotency::claim`].
pub enum Claim {
    /// Execute, holding the key (if any) until the write ends.
    Held(Option<InFlightGuard>),
    /// The same request completed meanwhile: its response.
    Replay(Outcome),
}

/// What an earlier request with the same key left.
pub enum Earlier {
    /// Nothing (or no key): execute.
    None,
    /// The same request completed: replay its response.
    Replay(Outcome),
    /// Another request used the key: 422 once the request is validated.
    Reused,
}

impl From<Stored> for Outcome {
    fn from(stored: Stored) -> Self {
        Outcome {
            body: stored.body,
            replayed: true,
        }
    }
}

/// A live record against a request under its key: the same request is
/// replayed, another is refused.
fn judge(record: &Record, idem: &Idempotent) -> Earlier {
    match replay(record, idem) {
        Ok(outcome) => Earlier::Replay(outcome),
        Err(_) => Earlier::Reused,
    }
}

/// The record's response for the same request; 422 for another.
fn replay(record: &Record, idem: &Idempotent) -> AppResult<Outcome> {
    if record.fingerprint == idem.fingerprint {
        Ok(record.stored.clone().into())
    } else {
        Err(AppError::IdempotencyKeyReused)
    }
}

/// A 64-bit advisory lock ID for the scope (collisions only cost a
/// spurious 409, at odds of 2^-64).
fn lock_id(account: &str, idem: &Idempotent) -> i64 {
    let digest = Sha256::new()
        .chain_update(account.as_bytes())
        .chain_update([0])
        .chain_update(idem.operation.as_bytes())
        .chain_update([0])
        .chain_update(idem.key.as_str().as_bytes())
        .finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Deletes expired records every `every`, for as long as the process runs.
/// Expired records are already ignored at once; this only reclaims space.
pub async fn purge_expired_forever(db: Db, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match db::idempotency::purge_expired(db.conn(), now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired idempotency records purged"),
            Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_pattern_agrees_with_the_parser() {
        let re = regex::Regex::new(KEY_PATTERN).unwrap();
        for sample in ["a", "!~", "a b", "é", "tab\t", "A-Z_0.9:/"] {
            assert_eq!(
                re.is_match(sample),
                IdempotencyKey::parse(sample, "k").is_ok(),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn keys_are_visible_ascii_of_1_to_255_characters() {
        assert!(IdempotencyKey::parse("orders-sync-acc-123-001", "k").is_ok());
        assert!(IdempotencyKey::parse("!~", "k").is_ok());
        assert!(IdempotencyKey::parse(&"a".repeat(255), "k").is_ok());
        assert_eq!(
            IdempotencyKey::parse(&"a".repeat(256), "k")
                .unwrap_err()
                .code,
            "too_big"
        );
        assert_eq!(
            IdempotencyKey::parse("", "k").unwrap_err().code,
            "too_small"
        );
        for bad in ["a b", "tab\t", "é", "nul\0"] {
            assert_eq!(
                IdempotencyKey::parse(bad, "Idempotency-Key")
                    .unwrap_err()
                    .path,
                "Idempotency-Key"
            );
        }
    }

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

    #[test]
    fn fingerprints_ignore_key_order_spacing_spelling_and_the_body_key() {
        let a: Value =
            serde_json::from_str(r#"{"accountId":"acc_1","items":[{"q":1.50,"p":"x"}]}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{ "items": [ {"p": "x", "q": 15e-1} ], "idempotencyKey": "k", "accountId": "acc_1" }"#)
                .unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&json!({"accountId": "acc_1", "items": [{"q": 2, "p": "x"}]}))
        );
        // Array order is meaningful.
        assert_ne!(fingerprint(&json!([1, 2])), fingerprint(&json!([2, 1])));
    }
}
