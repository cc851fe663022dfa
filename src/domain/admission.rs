//! Budgets for the work a process holds, and each account's fair share.
//!
//! A write request is admitted before its body is read, weighed by its
//! body's bytes (at least [`MIN_WEIGHT`]): the bytes it reads, the parsed
//! request and its wait for the writer all grow with them. It holds its
//! [`Ticket`] until its write has ended, even when the client has gone, so
//! the budgets bound bodies being read, requests waiting for the writer and
//! writes in flight alike.
//!
//! - The process budget bounds the whole process: over it, 503.
//! - The account budget (its share) bounds one account: over it, 429, so
//!   a flood from one account waits or is refused while the others' small
//!   requests go on. Weighing by bytes, not requests, lets many small
//!   syncs (a retry storm of 20-order batches) through while the excess of
//!   heavy work is what waits.
//!
//! A request that does not fit waits up to `wait` for others to finish,
//! then is refused; at most [`MAX_WAITING_PER_ACCOUNT`] requests of one
//! account wait at a time, the others are refused at once (a waiting
//! request's connection holds what it has buffered of its body). A single request larger than a budget is charged the
//! whole budget, so it runs when nothing else does. Limits are per process.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::Notify;

use crate::{
    error::{AppError, AppResult},
    telemetry::metrics,
};

/// Smallest charge of a request: what it costs beyond its body.
pub const MIN_WEIGHT: u64 = 4 << 10;

/// Requests of one account that may wait for room at once.
pub const MAX_WAITING_PER_ACCOUNT: usize = 4;

/// Seconds a refused client is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The budgets, in body bytes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub process_bytes: u64,
    pub account_bytes: u64,
    pub wait: Duration,
}

/// The budgets of a process, shared by its requests.
#[derive(Clone, Debug)]
pub struct Admission(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limits: Limits,
    held: Mutex<Held>,
    released: Notify,
    /// Requests waiting for room now.
    waiting: AtomicUsize,
}

/// What admitted requests hold now, and who waits.
#[derive(Debug, Default)]
struct Held {
    total: u64,
    accounts: HashMap<String, u64>,
    waiting: HashMap<String, usize>,
}

/// Why a request does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The account holds its whole share.
    AccountShare,
    /// The process holds its whole budget.
    Process,
}

impl Held {
    fn fits(&self, limits: &Limits, account: &str, weight: u64) -> Result<(), Refusal> {
        let own = self.accounts.get(account).copied().unwrap_or(0);
        if own + weight.min(limits.account_bytes) > limits.account_bytes {
            Err(Refusal::AccountShare)
        } else if self.total + weight.min(limits.process_bytes) > limits.process_bytes {
            Err(Refusal::Process)
        } else {
            Ok(())
        }
    }

    fn take(&mut self, account: &str, weight: u64) {
        self.total += weight;
        match self.accounts.get_mut(account) {
            Some(own) => *own += weight,
            None => {
                self.accounts.insert(account.to_owned(), weight);
            }
        }
    }

    /// Counts one more waiter of `account`, unless it has its fill.
    fn start_waiting(&mut self, account: &str) -> bool {
        let waiting = self.waiting.entry(account.to_owned()).or_default();
        *waiting += 1;
        if *waiting > MAX_WAITING_PER_ACCOUNT {
            self.stop_waiting(account);
            return false;
        }
        true
    }

    fn stop_waiting(&mut self, account: &str) {
        if let Some(waiting) = self.waiting.get_mut(account) {
            *waiting -= 1;
            if *waiting == 0 {
                self.waiting.remove(account);
            }
        }
    }

    fn give_back(&mut self, account: &str, weight: u64) {
        self.total -= weight;
        if let Some(own) = self.accounts.get_mut(account) {
            *own -= weight;
            if *own == 0 {
                self.accounts.remove(account);
            }
        }
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Self(Arc::new(Inner {
            limits,
            held: Mutex::default(),
            released: Notify::new(),
            waiting: AtomicUsize::new(0),
        }))
    }

    /// Requests waiting for room now.
    pub fn waiting(&self) -> usize {
        self.0.waiting.load(Ordering::Relaxed)
    }

    /// Admits a write of `bytes` (its declared body; `None` when not
    /// declared) for `account`, waiting up to the configured time for room.
    /// Refused: [`AppError::RateLimited`] (the account's share) or
    /// [`AppError::Overloaded`] (the process).
    pub async fn admit(&self, account: &str, bytes: Option<u64>) -> AppResult<Ticket> {
        let weight = self.charge(bytes.unwrap_or(0));
        let deadline = tokio::time::Instant::now() + self.0.limits.wait;
        let mut waiting = false;
        let admitted = loop {
            // Registered before the check, so a release in between wakes us.
            let released = self.0.released.notified();
            let refusal = {
                let mut held = self.0.held.lock().expect("admission state");
                match held.fits(&self.0.limits, account, weight) {
                    Ok(()) => {
                        held.take(account, weight);
                        let remaining = self.remaining(&held, account);
                        break Ok(Ticket {
                            admission: self.clone(),
                            account: account.to_owned(),
                            weight,
                            remaining,
                        });
                    }
                    Err(refusal) if !waiting && !held.start_waiting(account) => {
                        return Err(self.refusal(refusal));
                    }
                    Err(refusal) => refusal,
                }
            };
            if !waiting {
                waiting = true;
                self.0.waiting.fetch_add(1, Ordering::Relaxed);
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                break Err(self.refusal(refusal));
            }
        };
        if waiting {
            self.0.waiting.fetch_sub(1, Ordering::Relaxed);
            self.0
                .held
                .lock()
                .expect("admission state")
                .stop_waiting(account);
        }
        admitted
    }

    /// The charge of a body of `bytes`: at least [`MIN_WEIGHT`], at most
    /// the smaller budget, so that it can always be admitted alone.
    fn charge(&self, bytes: u64) -> u64 {
        let limits = &self.0.limits;
        bytes
            .max(MIN_WEIGHT)
            .min(limits.account_bytes)
            .min(limits.process_bytes)
    }

    fn remaining(&self, held: &Held, account: &str) -> u64 {
        let own = held.accounts.get(account).copied().unwrap_or(0);
        self.0.limits.account_bytes.saturating_sub(own)
    }

    fn refusal(&self, refusal: Refusal) -> AppError {
        metrics::refused(match refusal {
            Refusal::AccountShare => "rate_limited",
            Refusal::Process => "overloaded",
        });
        match refusal {
            Refusal::AccountShare => AppError::RateLimited {
                share_bytes: self.0.limits.account_bytes,
                retry_after_seconds: RETRY_AFTER_SECONDS,
            },
            Refusal::Process => AppError::Overloaded {
                retry_after_seconds: RETRY_AFTER_SECONDS,
            },
        }
    }
}

/// Room held by one admitted request, given back when dropped (after its
/// write, wherever that ran).
#[derive(Debug)]
pub struct Ticket {
    admission: Admission,
    account: String,
    weight: u64,
    remaining: u64,
}

impl Ticket {
    /// Grows the charge to cover a body of `bytes` read so far (a body
    /// sent without a declared length), without waiting: the reader holds
    /// what it has read already.
    pub fn cover(&mut self, bytes: u64) -> AppResult<()> {
        let wanted = self.admission.charge(bytes);
        if wanted <= self.weight {
            return Ok(());
        }
        let extra = wanted - self.weight;
        let mut held = self.admission.0.held.lock().expect("admission state");
        // Checked as if this request held nothing yet beyond its own charge.
        held.give_back(&self.account, self.weight);
        let fits = held.fits(&self.admission.0.limits, &self.account, wanted);
        held.take(&self.account, self.weight);
        fits.map_err(|refusal| self.admission.refusal(refusal))?;
        held.take(&self.account, extra);
        self.weight = wanted;
        self.remaining = self.admission.remaining(&held, &self.account);
        Ok(())
    }

    /// The account's share, in bytes.
    pub fn share_bytes(&self) -> u64 {
        self.admission.0.limits.account_bytes
    }

    /// Bytes of the account's share left when this request was admitted.
    pub fn remaining_bytes(&self) -> u64 {
        self.remaining
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let anyone_waiting = {
            let mut held = self.admission.0.held.lock().expect("admission state");
            held.give_back(&self.account, self.weight);
            // Waiters register under this lock before they wait, so none
            // can be missed.
            !held.waiting.is_empty()
        };
        if anyone_waiting {
            self.admission.0.released.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(process: u64, account: u64, wait_ms: u64) -> Admission {
        Admission::new(Limits {
            process_bytes: process,
            account_bytes: account,
            wait: Duration::from_millis(wait_ms),
        })
    }

    #[tokio::test]
    async fn an_account_over_its_share_is_rate_limited_while_others_pass() {
        let a = admission(1 << 20, 100 << 10, 0);
        let _first = a.admit("acc_a", Some(60 << 10)).await.unwrap();
        assert!(matches!(
            a.admit("acc_a", Some(60 << 10)).await,
            Err(AppError::RateLimited { .. })
        ));
        let other = a.admit("acc_b", Some(60 << 10)).await.unwrap();
        assert_eq!(other.remaining_bytes(), 40 << 10);
    }

    #[tokio::test]
    async fn the_process_budget_refuses_with_overloaded() {
        let a = admission(100 << 10, 80 << 10, 0);
        let _first = a.admit("acc_a", Some(80 << 10)).await.unwrap();
        assert!(matches!(
            a.admit("acc_b", Some(40 << 10)).await,
            Err(AppError::Overloaded { .. })
        ));
    }

    #[tokio::test]
    async fn a_request_larger_than_the_share_runs_alone_and_room_comes_back() {
        let a = admission(1 << 20, 100 << 10, 0);
        let big = a.admit("acc_a", Some(10 << 20)).await.unwrap();
        assert_eq!(big.remaining_bytes(), 0);
        assert!(a.admit("acc_a", None).await.is_err());
        drop(big);
        let small = a.admit("acc_a", None).await.unwrap();
        assert_eq!(small.remaining_bytes(), (100 << 10) - MIN_WEIGHT);
    }

    #[tokio::test]
    async fn a_waiting_request_is_admitted_when_room_is_given_back() {
        let a = admission(1 << 20, 100 << 10, 5_000);
        let first = a.admit("acc_a", Some(100 << 10)).await.unwrap();
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.admit("acc_a", Some(50 << 10)).await.map(|t| t.weight) }
        });
        tokio::task::yield_now().await;
        drop(first);
        assert_eq!(waiting.await.unwrap().unwrap(), 50 << 10);
    }

    #[tokio::test]
    async fn only_a_few_requests_of_one_account_wait_the_rest_are_refused_at_once() {
        let a = admission(1 << 20, 100 << 10, 60_000);
        let _full = a.admit("acc_a", Some(100 << 10)).await.unwrap();
        let waiters: Vec<_> = (0..MAX_WAITING_PER_ACCOUNT)
            .map(|_| {
                let a = a.clone();
                tokio::spawn(async move { a.admit("acc_a", None).await.is_ok() })
            })
            .collect();
        while a.waiting() < MAX_WAITING_PER_ACCOUNT {
            tokio::task::yield_now().await;
        }
        let started = std::time::Instant::now();
        assert!(a.admit("acc_a", None).await.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused at once"
        );
        drop(_full);
        for w in waiters {
            assert!(w.await.unwrap());
        }
        assert!(a.0.held.lock().unwrap().waiting.is_empty());
    }

    #[tokio::test]
    async fn an_undeclared_body_grows_its_charge_while_it_fits() {
        let a = admission(1 << 20, 100 << 10, 0);
        let mut ticket = a.admit("acc_a", None).await.unwrap();
        ticket.cover(50 << 10).unwrap();
        assert_eq!(ticket.remaining_bytes(), 50 << 10);
        let _other = a.admit("acc_a", Some(40 << 10)).await.unwrap();
        assert!(matches!(
            ticket.cover(70 << 10),
            Err(AppError::RateLimited { .. })
        ));
        drop(ticket);
        drop(_other);
        assert!(a.0.held.lock().unwrap().accounts.is_empty());
    }
}
