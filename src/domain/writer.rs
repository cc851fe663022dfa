//! The one writer of syncs in a process, for every resource: group commit.
//!
//! Small syncs arrive many at a time, and each used to pay for a
//! whole transaction of its own (SQLite allows one writer at a time, and
//! every statement is a round trip to the driver's thread). The writer task
//! takes every sync queued while the previous batch ran and writes them in
//! one transaction ([`Resource::write`]: for orders, one upsert of all
//! their orders and one replacement of all their lines), one commit (see
//! `group_commit.rs`). Each request stays atomic (its writes and its
//! idempotency record commit together, or not at all); if a batch fails,
//! its syncs are written again one by one, so one request never fails
//! because of another. Syncs that share an external ID are never in one
//! batch: the later one waits for the next, keeping arrival order.
//!
//! Syncs go through one of two lanes, each a task of its own: small syncs
//! (at most [`LARGE_JOB_ITEMS`] items) and large ones, one large sync per
//! transaction. A single-order sync then never queues behind a batch of
//! thousands of orders, however many one account sends: on PostgreSQL the
//! lanes write side by side; on SQLite, whose file has one writer, a small
//! batch waits for at most the one large transaction under way. Syncs of
//! one external ID in flight at once in both lanes may commit in either
//! order, as concurrent requests may anyway.
//!
//! Each lane is supervised: if its task panics, its batch is rolled back,
//! the syncs it held are answered 503 (nothing written, keys free), and a
//! new task takes over the queue after a pause. Meanwhile
//! [`Writer::is_running`] is false, which `/readyz` reports.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sea_orm::DatabaseTransaction;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{
    db::Db,
    domain::{
        admission::Ticket,
        group_commit,
        idempotency::{Idempotency, Idempotent, InFlightGuard, Outcome},
    },
    error::{AppError, AppResult},
    telemetry::metrics,
};

/// What the writer needs to know of a resource.
pub trait Resource: Send + Sync + 'static {
    /// One item of a sync, validated.
    type Input: Send + Sync + 'static;
    /// What a request computes before it is queued (totals, content
    /// hashes), so that the writer task, which every sync shares, does not.
    type Prepared: Send + Sync + 'static;
    /// For logs: `order`, `product`.
    const NAME: &'static str;

    fn prepare(inputs: &[Self::Input]) -> AppResult<Self::Prepared>;

    fn external_id(input: &Self::Input) -> &str;

    /// Writes the syncs of one account inside `txn`, one statement per
    /// table for all of them; returns each sync's response body, and what
    /// was done to the items.
    fn write(
        txn: &DatabaseTransaction,
        account: &str,
        syncs: &[(&[Self::Input], &Self::Prepared)],
    ) -> impl Future<Output = AppResult<(Vec<String>, ItemCounts)>> + Send;
}

/// What a write did to its items, counted once it has committed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ItemCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl std::ops::AddAssign for ItemCounts {
    fn add_assign(&mut self, other: Self) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
    }
}

/// Most syncs, and most items, written in one transaction.
pub(super) const MAX_BATCH_JOBS: usize = 64;
pub(super) const MAX_BATCH_ITEMS: usize = 5_000;
/// A sync of more items than this is large: one per batch.
pub const LARGE_JOB_ITEMS: usize = 100;

/// Pauses before restarting a writer that panicked: doubled on each
/// failure in a row, up to the longest.
const RESTART_PAUSE: Duration = Duration::from_millis(50);
const RESTART_PAUSE_MAX: Duration = Duration::from_secs(2);

/// One sync request, validated and claimed, waiting to be written.
pub(super) struct Job<R: Resource> {
    pub(super) account: String,
    pub(super) inputs: Vec<R::Input>,
    pub(super) prepared: R::Prepared,
    pub(super) idem: Option<Idempotent>,
    /// Holds the idempotency key in flight until the write ends, even when
    /// the client has gone.
    _claim: Option<InFlightGuard>,
    /// The request's room in the process's budgets, given back when the
    /// write has ended.
    _ticket: Ticket,
    /// Counted in the writer's queue depth until the job is dropped.
    _queued: metrics::Queued,
    reply: Option<oneshot::Sender<AppResult<Outcome>>>,
}

impl<R: Resource> Job<R> {
    pub(super) fn answer(&mut self, result: AppResult<Outcome>) {
        if let Some(reply) = self.reply.take() {
            // The client may have gone; the write stands either way.
            let _ = reply.send(result);
        }
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inputs
            .iter()
            .map(|input| (self.account.as_str(), R::external_id(input)))
    }
}

/// Handle to the writer's lanes for the resource `R`.
pub struct Writer<R: Resource> {
    small: Lane<R>,
    large: Lane<R>,
    /// Test-only fault switch: the lanes panic while it is set.
    fault: Arc<AtomicBool>,
}

impl<R: Resource> Clone for Writer<R> {
    fn clone(&self) -> Self {
        Self {
            small: self.small.clone(),
            large: self.large.clone(),
            fault: self.fault.clone(),
        }
    }
}

impl<R: Resource> std::fmt::Debug for Writer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("resource", &R::NAME)
            .field("running", &self.is_running())
            .finish()
    }
}

struct Lane<R: Resource> {
    /// Unbounded, because admission bounds what is queued: every job holds
    /// a ticket.
    queue: mpsc::UnboundedSender<Job<R>>,
    running: Arc<AtomicBool>,
}

impl<R: Resource> Clone for Lane<R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            running: self.running.clone(),
        }
    }
}

impl<R: Resource> Lane<R> {
    fn start(db: &Db, idempotency: &Idempotency, fault: &Arc<AtomicBool>) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        let running = Arc::new(AtomicBool::new(true));
        tokio::spawn(supervise::<R>(
            Arc::new(Mutex::new(jobs)),
            db.clone(),
            idempotency.clone(),
            running.clone(),
            fault.clone(),
        ));
        Self { queue, running }
    }
}

/// The queue outlives a writer task that panics.
type Jobs<R> = Arc<Mutex<mpsc::UnboundedReceiver<Job<R>>>>;

impl<R: Resource> Writer<R> {
    /// Starts the supervised lanes on the current runtime.
    pub fn start(db: Db, idempotency: Idempotency) -> Self {
        let fault = Arc::new(AtomicBool::new(false));
        Self {
            small: Lane::start(&db, &idempotency, &fault),
            large: Lane::start(&db, &idempotency, &fault),
            fault,
        }
    }

    /// Whether both lanes are running (false while one is restarting).
    pub fn is_running(&self) -> bool {
        [&self.small, &self.large]
            .iter()
            .all(|lane| lane.running.load(Ordering::Acquire))
    }

    /// `Unavailable` while the writer is restarting.
    pub fn ensure_running(&self) -> AppResult<()> {
        if self.is_running() {
            Ok(())
        } else {
            Err(AppError::Unavailable("the writer is restarting"))
        }
    }

    /// For tests: while `on`, the writer task panics at its next batch and
    /// at every restart, as a bug or a lost invariant would make it.
    #[doc(hidden)]
    pub fn inject_fault(&self, on: bool) {
        self.fault.store(on, Ordering::Release);
    }

    /// Queues a sync and waits for its outcome. The claim and the ticket
    /// are held until the write has ended, even when the caller has gone.
    pub async fn write(
        &self,
        account: &str,
        inputs: Vec<R::Input>,
        idem: Option<Idempotent>,
        claim: Option<InFlightGuard>,
        ticket: Ticket,
    ) -> AppResult<Outcome> {
        let prepared = R::prepare(&inputs)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            account: account.to_owned(),
            inputs,
            prepared,
            idem,
            _claim: claim,
            _ticket: ticket,
            _queued: metrics::Queued::new(R::NAME),
            reply: Some(reply),
        };
        let lane = if job.inputs.len() > LARGE_JOB_ITEMS {
            &self.large
        } else {
            &self.small
        };
        lane.queue
            .send(job)
            .map_err(|_| AppError::Unavailable("the writer has stopped"))?;
        // A reply dropped unanswered: the writer panicked and its
        // transaction rolled back.
        answer
            .await
            .map_err(|_| AppError::Unavailable("the writer failed; nothing was written"))?
    }
}

/// Runs writer tasks one after another: a task that panics is replaced
/// after a pause, and the queue it left goes on being served.
async fn supervise<R: Resource>(
    jobs: Jobs<R>,
    db: Db,
    idempotency: Idempotency,
    running: Arc<AtomicBool>,
    fault: Arc<AtomicBool>,
) {
    let mut pause = RESTART_PAUSE;
    loop {
        let started = tokio::time::Instant::now();
        let task = tokio::spawn(run::<R>(
            jobs.clone(),
            db.clone(),
            idempotency.clone(),
            running.clone(),
            fault.clone(),
        ));
        match task.await {
            Ok(()) => return,
            Err(e) => {
                running.store(false, Ordering::Release);
                if started.elapsed() > RESTART_PAUSE_MAX * 5 {
                    pause = RESTART_PAUSE;
                }
                tracing::error!(error = %e, resource = R::NAME, pause_ms = pause.as_millis() as u64, "writer failed; restarting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RESTART_PAUSE_MAX);
            }
        }
    }
}

/// Marks a lane as not running when its task panics.
struct DownOnPanic(Arc<AtomicBool>);

impl Drop for DownOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(false, Ordering::Release);
        }
    }
}

fn check_fault(fault: &AtomicBool) {
    if fault.load(Ordering::Acquire) {
        panic!("injected writer fault");
    }
}

async fn run<R: Resource>(
    jobs: Jobs<R>,
    db: Db,
    idempotency: Idempotency,
    running: Arc<AtomicBool>,
    fault: Arc<AtomicBool>,
) {
    let mut jobs = jobs.lock().await;
    check_fault(&fault);
    running.store(true, Ordering::Release);
    let mut pending: VecDeque<Job<R>> = VecDeque::new();
    // Dropped before `pending` when a panic unwinds: readiness is false
    // before the syncs this task held are answered.
    let _down_on_panic = DownOnPanic(running);
    loop {
        if pending.is_empty() {
            match jobs.recv().await {
                Some(job) => pending.push_back(job),
                None => return,
            }
        }
        while pending.len() < MAX_BATCH_JOBS * 4 {
            match jobs.try_recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => break,
            }
        }
        check_fault(&fault);
        let batch = group_commit::take_batch(&mut pending);
        group_commit::write_and_answer(&db, &idempotency, batch).await;
    }
}
