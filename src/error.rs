//! The domain's error type. HTTP-agnostic: `api::error` maps it to the
//! wire envelope in exactly one place.

/// One problem with a request, at a dotted path into its body
/// (`items.0.items.1.quantity`) or naming a header (`Idempotency-Key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
    /// zod-style code: `invalid_type`, `too_small`, `too_big`,
    /// `not_multiple_of`, `invalid_string`, `custom`.
    pub code: &'static str,
}

impl Issue {
    pub fn new(path: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            code,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("request validation failed")]
    Invalid(Vec<Issue>),
    #[error("payload accountId does not match API key scope")]
    AccountScope {
        key_account: String,
        payload_account: String,
    },
    #[error("{0} not found")]
    NotFound(Resource),
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still running")]
    IdempotencyKeyInUse,
    /// The account holds its whole share of the process: 429.
    #[error("the account is over its share of in-flight work")]
    RateLimited {
        share_bytes: u64,
        retry_after_seconds: u64,
    },
    /// The process holds its whole budget of in-flight work: 503.
    #[error("the process is saturated")]
    Overloaded { retry_after_seconds: u64 },
    /// The service cannot write for now (its writer is restarting): 503.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    #[error("unknown account {0}")]
    UnknownAccount(String),
    /// Any other database failure (an unreachable database is
    /// [`AppError::Unavailable`]).
    #[error(transparent)]
    Database(sea_orm::DbErr),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Order,
    Product,
    ApiKey,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Order => "order",
            Resource::Product => "product",
            Resource::ApiKey => "API key",
        })
    }
}

impl AppError {
    pub fn invalid(
        path: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        AppError::Invalid(vec![Issue::new(path, code, message)])
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        if crate::db::is_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            AppError::Unavailable("the database is unreachable")
        } else {
            AppError::Database(err)
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
