//! Building and running the HTTP application.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use migration::MigratorTrait;
use poem::{
    Endpoint, EndpointExt, Request, Route, Server,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    middleware::CatchPanic,
};

use crate::{
    api::{
        self,
        error::{envelope, panic_response},
        validation::BodyLimit,
    },
    config::Settings,
    db::Db,
    idempotency::{self, Idempotency},
    state::AppState,
};

/// How often expired idempotency records are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// A bound, migrated, ready-to-serve application.
pub struct Application {
    port: u16,
    acceptor: TcpAcceptor,
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
        Ok(Self {
            port,
            acceptor,
            state: AppState {
                db,
                idempotency: Idempotency::new(Duration::from_secs(settings.serve.idempotency_ttl)),
                settings: Arc::new(settings),
            },
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the process is stopped.
    pub async fn run(self) -> std::io::Result<()> {
        tokio::spawn(idempotency::purge_expired_forever(
            self.state.db.clone(),
            PURGE_EVERY,
        ));
        let app = app(self.state);
        Server::new_with_acceptor(self.acceptor).run(app).await
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
    let service = api::service();
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let limit = state.settings.serve.body_limit;
    Route::new()
        .nest("/", service)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .data(BodyLimit(limit))
        .data(state)
        .before(move |req: Request| reject_declared_oversize(req, limit))
        .with(CatchPanic::new().with_handler(|_| panic_response()))
        .catch_all_error(envelope)
}

/// 413 before anything else when the declared length is over the limit;
/// chunked bodies are cut off at the limit while being read.
async fn reject_declared_oversize(req: Request, limit: usize) -> poem::Result<Request> {
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
