//! Prometheus metrics, served on their own listener (`--metrics-addr`).
//!
//! Recorded through the `metrics` facade: a call site names a metric and
//! its labels, and costs next to nothing until a recorder is installed
//! (without `--metrics-addr`, none is). The recorder is
//! `metrics-exporter-prometheus`: counters and gauges are atomics, and a
//! histogram sample goes to a lock-free bucket, so recording a request
//! takes no lock that every request contends for. Labels never carry
//! account IDs, keys or external IDs.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::{
    EndpointExt, Route, Server, get, handler,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    web::Data,
};

use crate::{db::Db, domain::writer::ItemCounts};

const HTTP_DURATION: &str = "http_server_request_duration_seconds";
const HTTP_ACTIVE: &str = "http_server_active_requests";
const ITEMS_SYNCED: &str = "entrygo_synced_items_total";
const IDEMPOTENCY: &str = "entrygo_idempotency_outcomes_total";
const REFUSED: &str = "entrygo_requests_refused_total";
const QUEUE_DEPTH: &str = "entrygo_writer_queue_depth";
const BATCH_SYNCS: &str = "entrygo_writer_batch_syncs";
const POOL: &str = "entrygo_db_pool_connections";

/// Seconds; OpenTelemetry's recommended boundaries for HTTP durations.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Syncs per writer transaction (at most `MAX_BATCH_JOBS`).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// The metrics listener, bound (so a bad address fails at start) and not
/// serving yet.
pub struct MetricsListener {
    acceptor: TcpAcceptor,
    handle: PrometheusHandle,
}

impl MetricsListener {
    /// Installs the process's recorder and binds `addr`.
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), DURATION_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(BATCH_SYNCS.into()), BATCH_BUCKETS)?
            .install_recorder()
            .context("cannot install the metrics recorder")?;
        describe();
        let acceptor = TcpListener::bind(addr)
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen for metrics on {addr}"))?;
        Ok(Self { acceptor, handle })
    }

    pub fn port(&self) -> Option<u16> {
        self.acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
    }

    /// Serves `GET /metrics` until the process ends; samples the process
    /// and the pool at each scrape.
    pub async fn serve(self, db: Db) -> std::io::Result<()> {
        let handle = self.handle.clone();
        // Drains histogram buckets so memory stays flat between scrapes;
        // ends with the listener.
        let upkeep = async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        };
        let app = Route::new()
            .at("/metrics", get(scrape))
            .data(self.handle)
            .data(db)
            .data(metrics_process::Collector::default());
        tokio::select! {
            served = Server::new_with_acceptor(self.acceptor).run(app) => served,
            never = upkeep => never,
        }
    }
}

#[handler]
fn scrape(
    handle: Data<&PrometheusHandle>,
    db: Data<&Db>,
    process: Data<&metrics_process::Collector>,
) -> poem::Response {
    process.collect();
    let (in_use, idle) = db.pool_connections();
    gauge!(POOL, "state" => "in_use").set(in_use as f64);
    gauge!(POOL, "state" => "idle").set(idle as f64);
    poem::Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

fn describe() {
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Duration of HTTP requests, by method, route template and status"
    );
    describe_gauge!(HTTP_ACTIVE, "HTTP requests being served");
    describe_counter!(
        ITEMS_SYNCED,
        "Items of committed syncs, by resource (order, product) and result: created, updated, unchanged (nothing written)"
    );
    describe_counter!(
        IDEMPOTENCY,
        "Keyed syncs answered from an earlier request (replayed) or refused: in_use (409), reused (422)"
    );
    describe_counter!(
        REFUSED,
        "Writes refused before they ran, by reason: overloaded (503), rate_limited (429)"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Syncs queued for a writer or in its current transaction, by resource"
    );
    describe_histogram!(
        BATCH_SYNCS,
        "Syncs written per writer transaction (group commit), by resource"
    );
    describe_gauge!(POOL, "Database pool connections, by state: in_use, idle");
    metrics_process::Collector::default().describe();
}

/// The items of a committed write of `resource` (`order`, `product`).
pub fn items_synced(resource: &'static str, counts: ItemCounts) {
    for (result, n) in [
        ("created", counts.created),
        ("updated", counts.updated),
        ("unchanged", counts.unchanged),
    ] {
        counter!(ITEMS_SYNCED, "resource" => resource, "result" => result).increment(n);
    }
}

/// `replayed`, `in_use` or `reused`.
pub fn idempotency_outcome(outcome: &'static str) {
    counter!(IDEMPOTENCY, "outcome" => outcome).increment(1);
}

/// `overloaded` or `rate_limited`.
pub fn refused(reason: &'static str) {
    counter!(REFUSED, "reason" => reason).increment(1);
}

pub fn batch_written(resource: &'static str, syncs: usize) {
    histogram!(BATCH_SYNCS, "resource" => resource).record(syncs as f64);
}

/// Counts a sync in its writer's queue from creation to drop.
#[derive(Debug)]
pub struct Queued(&'static str);

impl Queued {
    pub fn new(resource: &'static str) -> Self {
        gauge!(QUEUE_DEPTH, "resource" => resource).increment(1.0);
        Self(resource)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        gauge!(QUEUE_DEPTH, "resource" => self.0).decrement(1.0);
    }
}

/// Records one HTTP request: its duration under its route template (or a
/// fixed label), and the requests in progress meanwhile.
pub struct HttpRequest {
    started: std::time::Instant,
}

impl HttpRequest {
    pub fn start() -> Self {
        gauge!(HTTP_ACTIVE).increment(1.0);
        Self {
            started: std::time::Instant::now(),
        }
    }

    pub fn finish(self, method: &str, route: &'static str, status: u16) {
        histogram!(
            HTTP_DURATION,
            "http_request_method" => method_label(method),
            "http_route" => route,
            "http_response_status_code" => status.to_string(),
        )
        .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for HttpRequest {
    fn drop(&mut self) {
        gauge!(HTTP_ACTIVE).decrement(1.0);
    }
}

/// The method, or `_OTHER` for one outside HTTP's registry (OpenTelemetry's
/// rule), so a client cannot mint label values.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("_OTHER")
}
