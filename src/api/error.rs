//! The one JSON error envelope, for our own errors and the framework's.

use poem_openapi::{ApiResponse, Enum, Object, payload::Json};

pub use crate::api::envelope::{
    ErrorParts, Throttle, envelope, error_parts, not_found_body, panic_response, rate_limit_policy,
    rate_limit_state, unavailable_body,
};
use crate::error::{AppError, Issue};

/// Stable, machine-readable error codes. Clients branch on these, not on
/// `message`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The body is not valid JSON, or a query parameter is malformed.
    InvalidRequest,
    /// The JSON is valid but its content is not; see `details.issues`.
    ValidationError,
    /// Missing, malformed, unknown or revoked API key.
    InvalidApiKey,
    /// The body's `accountId` is not the API key's account.
    InvalidAccountScope,
    /// No route at this path.
    NotFound,
    /// No order with this ID in the caller's account.
    OrderNotFound,
    /// No product with this ID in the caller's account.
    ProductNotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// A request with this idempotency key is still running; retry later.
    IdempotencyKeyInUse,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The request body is not `application/json`.
    UnsupportedMediaType,
    /// This idempotency key was used for a different request.
    IdempotencyKeyReused,
    /// Something failed on our side; nothing was written.
    InternalError,
    /// The server cannot take this request now (saturated, restarting its
    /// writer, or its database unreachable); nothing was written. Retry
    /// after `Retry-After` seconds.
    ServiceUnavailable,
    /// This account has its whole share of in-flight work; retry after
    /// `Retry-After` seconds.
    RateLimited,
    /// The request took longer than the server allows. A sync that had
    /// started still completes: retry with the same idempotency key.
    RequestTimeout,
}

/// One validation problem.
#[derive(Object, Debug, Clone)]
pub struct ValidationIssue {
    /// Dotted path into the body with numeric indexes
    /// (`items.0.items.0.productId`), or a header name (`Idempotency-Key`).
    pub path: String,
    /// Human-readable description.
    pub message: String,
    /// zod-style code: `invalid_type`, `too_small`, `too_big`,
    /// `not_multiple_of`, `invalid_string` or `custom`.
    pub code: String,
}

/// Machine-readable context of an error; which members appear depends on
/// `errorCode`.
#[derive(Object, Debug, Clone, Default)]
#[oai(rename_all = "camelCase")]
pub struct ErrorDetails {
    /// `VALIDATION_ERROR`: every issue found, in document order (at most
    /// the first 1,000).
    #[oai(skip_serializing_if_is_none)]
    pub issues: Option<Vec<ValidationIssue>>,
    /// `INVALID_ACCOUNT_SCOPE`: the account the API key belongs to.
    #[oai(skip_serializing_if_is_none)]
    pub api_key_account_id: Option<String>,
    /// `INVALID_ACCOUNT_SCOPE`: the `accountId` the body named.
    #[oai(skip_serializing_if_is_none)]
    pub payload_account_id: Option<String>,
}

/// The error envelope of every non-2xx response.
#[derive(Object, Debug, Clone)]
#[oai(rename_all = "camelCase")]
pub struct ErrorBody {
    pub error_code: ErrorCode,
    /// Human-readable; may change. Branch on `errorCode`.
    pub message: String,
    /// `VALIDATION_ERROR`: the path of the first issue (`""` when it is the
    /// body itself, e.g. JSON that is not an object).
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub details: Option<ErrorDetails>,
}

impl ErrorBody {
    pub fn new(error_code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error_code,
            message: message.into(),
            field: None,
            details: None,
        }
    }
}

/// Declares an error response type listing exactly the statuses its
/// operations can answer; each converts from `AppError` through
/// [`error_parts`]. `retriable` statuses (429, 503) also carry
/// `Retry-After` and, for an account over its share, the rate-limit
/// fields.
macro_rules! error_responses {
    ($(#[$meta:meta])* $name:ident {
        $($(#[$vmeta:meta])* $status:literal => $variant:ident,)*
        retriable {
            $($(#[$rmeta:meta])* $rstatus:literal => $rvariant:ident,)*
        }
    }) => {
        $(#[$meta])*
        #[derive(ApiResponse, Debug)]
        pub enum $name {
            $($(#[$vmeta])* #[oai(status = $status)] $variant(Json<ErrorBody>),)*
            $($(#[$rmeta])* #[oai(status = $rstatus)] $rvariant(
                Json<ErrorBody>,
                /// Seconds to wait before retrying (with the same idempotency key).
                #[oai(header = "Retry-After")]
                Option<u64>,
                /// The account's share of in-flight work (429 only):
                /// `"inflight";q=<bytes>;qu="content-bytes"` (IETF RateLimit
                /// header fields draft).
                #[oai(header = "RateLimit-Policy")]
                Option<String>,
                /// What is left of it (429 only): `"inflight";r=0;t=<seconds>`.
                #[oai(header = "RateLimit")]
                Option<String>,
            ),)*
        }

        impl From<AppError> for $name {
            fn from(err: AppError) -> Self {
                let ErrorParts { status, body, throttle } = error_parts(err);
                match status.as_u16() {
                    $($status => $name::$variant(Json(body)),)*
                    $($rstatus => {
                        let t = throttle.unwrap_or_default();
                        $name::$rvariant(Json(body), t.retry_after, t.policy, t.state)
                    })*
                    _ => {
                        tracing::error!(%status, "status not documented for this operation");
                        $name::Internal(Json(internal_body()))
                    }
                }
            }
        }
    };
}

error_responses! {
    /// Errors of the sync operations.
    ApiError {
        /// `INVALID_REQUEST`: the body is not JSON. `VALIDATION_ERROR`: its
        /// content (or the `Idempotency-Key` header) is invalid; every issue is
        /// listed in `details.issues`. Nothing was written.
        400 => BadRequest,
        /// `INVALID_API_KEY`: missing, malformed, unknown or revoked API key.
        401 => Unauthorized,
        /// `INVALID_ACCOUNT_SCOPE`: the body's `accountId` is not the key's account.
        403 => Forbidden,
        /// `IDEMPOTENCY_KEY_IN_USE`: a request with this idempotency key is still
        /// running. Retry later with the same key. Example:
        /// `{"errorCode": "IDEMPOTENCY_KEY_IN_USE", "message": "A request with this
        /// idempotency key is still in progress. Retry later."}`
        409 => Conflict,
        /// `PAYLOAD_TOO_LARGE`: the body exceeds the server's limit.
        413 => PayloadTooLarge,
        /// `UNSUPPORTED_MEDIA_TYPE`: the body is not sent as `application/json`.
        415 => UnsupportedMediaType,
        /// `IDEMPOTENCY_KEY_REUSED`: this key was already used for a different
        /// request body; nothing was written. Use a new key for a new logical
        /// write. Example: `{"errorCode": "IDEMPOTENCY_KEY_REUSED", "message":
        /// "This idempotency key was already used with a different request."}`
        422 => Unprocessable,
        /// `INTERNAL_ERROR`: nothing was written; retry with the same key.
        500 => Internal,
        retriable {
            /// `RATE_LIMITED`: this account already has its whole share of
            /// in-flight work in this process; nothing was read or written.
            /// Retry after `Retry-After` seconds with the same idempotency key.
            429 => TooManyRequests,
            /// `SERVICE_UNAVAILABLE`: the process is saturated, its writer is
            /// restarting, or the database is unreachable; nothing was written.
            /// `REQUEST_TIMEOUT`: the request took too long; a sync that had
            /// started still completes. Retry after `Retry-After` seconds with
            /// the same idempotency key.
            503 => Unavailable,
        }
    }
}

error_responses! {
    /// Errors of reading one resource.
    GetError {
        /// `VALIDATION_ERROR`: a parameter is malformed.
        400 => BadRequest,
        /// `INVALID_API_KEY`: missing, malformed, unknown or revoked API key.
        401 => Unauthorized,
        /// `ORDER_NOT_FOUND` / `PRODUCT_NOT_FOUND`: no such ID in the caller's
        /// account (another account's IDs answer the same).
        404 => NotFound,
        /// `PAYLOAD_TOO_LARGE`: the request declares a body over the limit.
        413 => PayloadTooLarge,
        /// `INTERNAL_ERROR`.
        500 => Internal,
        retriable {
            /// `SERVICE_UNAVAILABLE` or `REQUEST_TIMEOUT`: retry after
            /// `Retry-After` seconds.
            503 => Unavailable,
        }
    }
}

error_responses! {
    /// Errors of listing resources.
    ListError {
        /// `VALIDATION_ERROR`: `limit` out of 1–200, a `cursor` that is not
        /// ours, or a malformed filter; the issue names the parameter.
        400 => BadRequest,
        /// `INVALID_API_KEY`: missing, malformed, unknown or revoked API key.
        401 => Unauthorized,
        /// `PAYLOAD_TOO_LARGE`: the request declares a body over the limit.
        413 => PayloadTooLarge,
        /// `INTERNAL_ERROR`.
        500 => Internal,
        retriable {
            /// `SERVICE_UNAVAILABLE` or `REQUEST_TIMEOUT`: retry after
            /// `Retry-After` seconds.
            503 => Unavailable,
        }
    }
}

impl ApiError {
    pub fn not_json() -> Self {
        ApiError::BadRequest(Json(ErrorBody::new(
            ErrorCode::InvalidRequest,
            "Request body is not valid JSON.",
        )))
    }

    pub fn payload_too_large() -> Self {
        ApiError::PayloadTooLarge(Json(payload_too_large_body()))
    }

    pub fn invalid_api_key() -> Self {
        ApiError::Unauthorized(Json(invalid_api_key_body()))
    }
}

pub(crate) fn invalid_api_key_body() -> ErrorBody {
    ErrorBody::new(ErrorCode::InvalidApiKey, "Missing or invalid API key.")
}

pub(crate) fn payload_too_large_body() -> ErrorBody {
    ErrorBody::new(ErrorCode::PayloadTooLarge, "Request body is too large.")
}

pub(crate) fn internal_body() -> ErrorBody {
    ErrorBody::new(ErrorCode::InternalError, "Internal error.")
}

/// The envelope of a `VALIDATION_ERROR`.
pub fn validation_body(issues: Vec<Issue>) -> ErrorBody {
    // `""` names the body itself (JSON that is not an object).
    let field = issues.first().map(|i| i.path.clone());
    let issues = issues
        .into_iter()
        .map(|i| ValidationIssue {
            path: i.path,
            message: i.message,
            code: i.code.to_owned(),
        })
        .collect();
    ErrorBody {
        error_code: ErrorCode::ValidationError,
        message: "Request validation failed.".to_owned(),
        field,
        details: Some(ErrorDetails {
            issues: Some(issues),
            ..Default::default()
        }),
    }
}
