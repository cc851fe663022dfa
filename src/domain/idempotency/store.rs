//! The protocol, start to end: before validation ([`Idempotency::earlier`]),
//! after it ([`Idempotency::replay_of_rejected`]), before the write
//! ([`Idempotency::claim`]), inside the write transaction
//! ([`Idempotency::recheck`] then [`Idempotency::complete`]) and after its
//! commit ([`Completion::committed`]).

use std::{collections::HashMap, sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, DbBackend};
use sha2::{Digest, Sha256};

use super::{
    Idempotent, Outcome, Stored,
    cache::{Completed, InFlight, InFlightGuard, Record, Scope, scope},
};
use crate::{
    db::{self, Db},
    error::{AppError, AppResult},
};

/// The state idempotent operations share within a process.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub in_flight: InFlight,
    completed: Completed,
    pub ttl: Duration,
}

impl Idempotency {
    /// Keys this process is executing now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

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

    /// What a stored record of this request's key says (one indexed read):
    /// the verdict a write's recheck would reach, without taking the key.
    pub async fn stored(
        &self,
        db: &Db,
        account: &str,
        idem: Option<&Idempotent>,
    ) -> AppResult<Earlier> {
        let Some(idem) = idem else {
            return Ok(Earlier::None);
        };
        Ok(match self.read_one(db.conn(), account, idem).await? {
            Some(record) => judge(&record, idem),
            None => Earlier::None,
        })
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
                .map(|row| {
                    let record = Record {
                        fingerprint: row.request_hash,
                        stored: Stored {
                            status: row.status,
                            body: row.response_body,
                        },
                        expires_at_ms: row.expires_at_ms,
                    };
                    ((row.account_id, row.operation, row.key), Arc::new(record))
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
        let records: Vec<db::idempotency::NewRecord<'_>> = stored
            .iter()
            .map(|(account, idem, stored)| db::idempotency::NewRecord {
                account_id: account,
                operation: idem.operation,
                key: idem.key.as_str(),
                request_hash: &idem.fingerprint,
                status: stored.status,
                response_body: &stored.body,
            })
            .collect();
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
