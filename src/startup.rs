//! Building and running the HTTP application.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use migration::MigratorTrait;
use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route, Server,
    endpoint::make_sync,
    get,
    http::{HeaderValue, StatusCode},
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    middleware::CatchPanic,
    web::Html,
};
use poem_openapi::OperationId;
use tracing::Instrument;

use crate::{
    api::{
        self,
        body::BodyLimit,
        error::{envelope, panic_response},
    },
    config::Settings,
    db::Db,
    domain::idempotency::{self, Idempotency},
    domain::{
        accounts::KeyCache,
        admission::{Admission, Limits},
        orders::ReadCache,
        writer::Writer,
    },
    state::AppState,
    telemetry::metrics::{self, MetricsListener},
};

/// How often expired idempotency records are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// A bound, migrated, ready-to-serve application.
pub struct Application {
    port: u16,
    acceptor: TcpAcceptor,
    metrics: Option<MetricsListener>,
    state: AppState,
}

impl Application {
    /// Connects to the database, applies pending migrations and binds the
    /// listener (port 0 picks a free port, see [`Self::port`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = connect_and_migrate(&settings.database_url, settings.serve.db_pool_size).await?;
        let acceptor = TcpListener::bind(settings.serve.addr)
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen on {}", settings.serve.addr))?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .context("listener has no socket address")?;
        let metrics = match settings.serve.metrics_addr {
            Some(addr) => Some(MetricsListener::bind(addr).await?),
            None => None,
        };
        Ok(Self {
            port,
            acceptor,
            metrics,
            state: {
                let idempotency =
                    Idempotency::new(Duration::from_secs(settings.serve.idempotency_ttl));
                AppState {
                    order_writer: Writer::start(db.clone(), idempotency.clone()),
                    product_writer: Writer::start(db.clone(), idempotency.clone()),
                    known_products: Default::default(),
                    order_reads: ReadCache::new(settings.serve.order_cache_mb << 20),
                    keys: KeyCache::new(Duration::from_millis(settings.serve.key_cache_ms)),
                    admission: Admission::new(Limits {
                        process_bytes: settings.serve.max_inflight_bytes,
                        account_bytes: settings.serve.account_inflight_bytes,
                        wait: Duration::from_millis(settings.serve.admission_wait_ms),
                    }),
                    db,
                    idempotency,
                    settings: Arc::new(settings),
                }
            },
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, with `--metrics-addr`.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().and_then(MetricsListener::port)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal`; then stops accepting, lets in-flight requests
    /// finish (up to the shutdown timeout) and closes the pool.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        let db = self.state.db.clone();
        let grace = Duration::from_secs(self.state.settings.serve.shutdown_timeout);
        let purge = tokio::spawn(idempotency::purge_expired_forever(db.clone(), PURGE_EVERY));
        let metrics = self.metrics.map(|m| tokio::spawn(m.serve(db.clone())));
        let app = app(self.state);
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, signal, Some(grace))
            .await;
        purge.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        tracing::info!("stopped; closing the database pool");
        if let Err(e) = db.close().await {
            tracing::warn!(error = %e, "closing the pool failed");
        }
        served
    }
}

/// Connects and applies pending migrations: every command that touches the
/// database starts here.
pub async fn connect_and_migrate(url: &str, pool_size: u32) -> anyhow::Result<Db> {
    let db = Db::connect(url, pool_size)
        .await
        .with_context(|| format!("cannot connect to database {}", redact(url)))?;
    migration::Migrator::up(db.conn(), None)
        .await
        .context("cannot apply migrations")?;
    Ok(db)
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The whole HTTP application: API, spec, Swagger UI and the middleware
/// that gives every error the one JSON envelope.
pub fn app(state: AppState) -> impl Endpoint {
    let spec = api::spec_json();
    let docs = api::swagger_ui_html();
    let limit = state.settings.serve.body_limit;
    let timeout = Duration::from_secs(state.settings.serve.request_timeout);
    Route::new()
        .nest("/", api::service())
        .at(
            "/openapi.json",
            get(make_sync(move |_| {
                spec.clone().with_content_type("application/json")
            })),
        )
        .at("/docs", get(make_sync(move |_| Html(docs.clone()))))
        .data(BodyLimit(limit))
        .data(state)
        .before(move |req: Request| reject_declared_oversize(req, limit))
        .around(move |next, req| with_timeout(next, req, timeout))
        .with(CatchPanic::new().with_handler(|_| panic_response()))
        .catch_all_error(envelope)
        .around(advertise_allowed_methods)
        .around(observe)
}

/// Adds `Allow` to a 405 of a documented path.
async fn advertise_allowed_methods<E: Endpoint>(
    next: Arc<E>,
    req: Request,
) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let mut resp = next.get_response(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) =
            api::allowed_methods(&path).and_then(|m| HeaderValue::from_str(&m).ok())
    {
        resp.headers_mut().insert(poem::http::header::ALLOW, allow);
    }
    Ok(resp)
}

/// 503 when a request takes longer than `limit`. A sync's write runs in a
/// task of its own and still completes (see `domain::execute_sync`).
async fn with_timeout<E: Endpoint>(
    next: Arc<E>,
    req: Request,
    limit: Duration,
) -> poem::Result<Response> {
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(result) => result.map(IntoResponse::into_response),
        Err(_) => Err(poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE)),
    }
}

/// Request IDs and the one log line per request. An incoming `X-Request-Id`
/// of 1 to 128 visible ASCII characters is kept, otherwise a new one is
/// made; either way it is returned. Keys and bodies are never logged.
async fn observe<E: Endpoint>(next: Arc<E>, req: Request) -> poem::Result<Response> {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let span = tracing::info_span!("request", request_id = %request_id, account_id = tracing::field::Empty);
    let started = Instant::now();
    let recording = metrics::HttpRequest::start();
    // The rest of the chain's future is boxed here once, so this
    // middleware's own future stays small: the layers around it (poem's
    // boxed endpoints, hyper's service call) move it whole, and with the
    // chain inline those moves were the largest share of a GET's
    // instructions (README, "Performance").
    let mut resp = Box::pin(next.get_response(req))
        .instrument(span.clone())
        .await;
    let operation = resp.data::<OperationId>().map(|op| op.0);
    recording.finish(
        method.as_str(),
        api::route_label(operation, &path),
        resp.status().as_u16(),
    );
    span.in_scope(|| {
        tracing::info!(
            %method,
            path,
            operation,
            status = resp.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            "request"
        )
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(resp)
}

const REQUEST_ID: &str = "x-request-id";

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// 413 before anything else when an API request declares a body over the
/// limit; chunked bodies are cut off at the limit while being read.
async fn reject_declared_oversize(req: Request, limit: usize) -> poem::Result<Request> {
    if !req.uri().path().starts_with("/api/") {
        return Ok(req);
    }
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit as u64 => {
            Err(poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE))
        }
        _ => Ok(req),
    }
}
