//! A writer lane's work: the next batch of queued syncs, and its one
//! transaction (see `writer.rs`).

use std::collections::{HashSet, VecDeque};

use crate::{
    db::Db,
    domain::{
        idempotency::{Idempotency, Idempotent, Outcome},
        should_retry,
        writer::{ItemCounts, Job, LARGE_JOB_ITEMS, MAX_BATCH_ITEMS, MAX_BATCH_JOBS, Resource},
    },
    error::AppResult,
    telemetry::metrics,
};

/// The next batch: jobs in arrival order, skipping (for now) any job that
/// shares an external ID with an earlier job still pending, and every
/// large job after the first.
pub(super) fn take_batch<R: Resource>(pending: &mut VecDeque<Job<R>>) -> Vec<Job<R>> {
    // A lone job is its own batch: no external ID of its to compare.
    if pending.len() == 1 {
        return pending.drain(..).collect();
    }
    let mut taken_keys: HashSet<(String, String)> = HashSet::new();
    let mut blocked_keys: HashSet<(String, String)> = HashSet::new();
    let (mut batch, mut rest) = (Vec::new(), VecDeque::new());
    let mut items = 0;
    let mut large_taken = false;
    while let Some(job) = pending.pop_front() {
        let keys: Vec<(String, String)> = job
            .keys()
            .map(|(a, e)| (a.to_owned(), e.to_owned()))
            .collect();
        let large = job.inputs.len() > LARGE_JOB_ITEMS;
        let fits = batch.is_empty()
            || (batch.len() < MAX_BATCH_JOBS
                && items + job.inputs.len() <= MAX_BATCH_ITEMS
                && !(large && large_taken));
        let clashes = keys
            .iter()
            .any(|k| taken_keys.contains(k) || blocked_keys.contains(k));
        if fits && !clashes {
            items += job.inputs.len();
            large_taken |= large;
            taken_keys.extend(keys);
            batch.push(job);
        } else {
            blocked_keys.extend(keys);
            rest.push_back(job);
        }
    }
    *pending = rest;
    batch
}

pub(super) async fn write_and_answer<R: Resource>(
    db: &Db,
    idempotency: &Idempotency,
    mut batch: Vec<Job<R>>,
) {
    match write_retrying(db, idempotency, &batch).await {
        Ok(outcomes) => {
            for (job, outcome) in batch.iter_mut().zip(outcomes) {
                job.answer(outcome);
            }
        }
        Err(err) if batch.len() == 1 => batch[0].answer(Err(err)),
        Err(err) => {
            tracing::warn!(error = %err, jobs = batch.len(), "batch failed; writing its syncs one by one");
            for job in batch {
                let mut alone = vec![job];
                let result = write_retrying(db, idempotency, &alone).await;
                alone[0]
                    .answer(result.and_then(|mut outcomes| outcomes.pop().expect("one outcome")));
            }
        }
    }
}

async fn write_retrying<R: Resource>(
    db: &Db,
    idempotency: &Idempotency,
    batch: &[Job<R>],
) -> AppResult<Vec<AppResult<Outcome>>> {
    let mut attempts = 1;
    loop {
        match write_batch(db, idempotency, batch).await {
            Err(e) if should_retry(&e, &mut attempts).await => continue,
            result => return result,
        }
    }
}

/// Writes every job of `batch` in one transaction; per job, its outcome
/// (a replay or refusal decided by the idempotency recheck, or the stored
/// response of its write).
async fn write_batch<R: Resource>(
    db: &Db,
    idempotency: &Idempotency,
    batch: &[Job<R>],
) -> AppResult<Vec<AppResult<Outcome>>> {
    let txn = db.begin_write().await?;
    let requests: Vec<(&str, Option<&Idempotent>)> = batch
        .iter()
        .map(|job| (job.account.as_str(), job.idem.as_ref()))
        .collect();
    let mut outcomes: Vec<Option<AppResult<Outcome>>> = idempotency
        .recheck(&*txn, &requests)
        .await?
        .into_iter()
        .map(|checked| match checked {
            Ok(None) => None,
            Ok(Some(replay)) => Some(Ok(replay)),
            Err(refused) => Some(Err(refused)),
        })
        .collect();
    let active: Vec<usize> = (0..batch.len())
        .filter(|&i| outcomes[i].is_none())
        .collect();

    // One write per account (a batch nearly always has one).
    let mut bodies: Vec<(usize, String)> = Vec::with_capacity(active.len());
    let mut items = ItemCounts::default();
    let mut accounts: Vec<&str> = active.iter().map(|&i| batch[i].account.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    for account in accounts {
        let jobs: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| batch[i].account == account)
            .collect();
        let syncs: Vec<(&[R::Input], &R::Prepared)> = jobs
            .iter()
            .map(|&i| (batch[i].inputs.as_slice(), &batch[i].prepared))
            .collect();
        let (written, counts) = R::write(&txn, account, &syncs).await?;
        items += counts;
        bodies.extend(jobs.into_iter().zip(written));
    }
    let responses: Vec<(&str, Option<&Idempotent>, &str)> = bodies
        .iter()
        .map(|(i, body)| {
            (
                batch[*i].account.as_str(),
                batch[*i].idem.as_ref(),
                body.as_str(),
            )
        })
        .collect();
    let completion = idempotency.complete(&*txn, &responses).await?;
    txn.commit().await?;
    completion.committed();
    metrics::items_synced(R::NAME, items);
    metrics::batch_written(R::NAME, batch.len());
    tracing::debug!(
        resource = R::NAME,
        jobs = batch.len(),
        written = bodies.len(),
        "batch committed"
    );
    for (i, body) in bodies {
        outcomes[i] = Some(Ok(Outcome {
            body,
            replayed: false,
        }));
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every job has an outcome"))
        .collect())
}
