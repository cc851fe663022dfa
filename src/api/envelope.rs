//! From an error to the one JSON envelope: domain errors (`AppError`, with
//! their retry advice) and the framework's own (routing, auth header,
//! content type, body limit, panics).

use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::{error::ParseParamError, payload::Json};

use crate::{
    api::error::{
        ErrorBody, ErrorCode, ErrorDetails, internal_body, invalid_api_key_body,
        payload_too_large_body, validation_body,
    },
    error::{AppError, Issue, Resource},
};

/// What a refused request is told about retrying.
#[derive(Debug, Default)]
pub struct Throttle {
    pub retry_after: Option<u64>,
    pub policy: Option<String>,
    pub state: Option<String>,
}

/// A domain error on the wire.
pub struct ErrorParts {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub throttle: Option<Throttle>,
}

/// `RateLimit-Policy` of an account's share (IETF RateLimit header fields
/// draft: quota `q` in the unit `qu`).
pub fn rate_limit_policy(share_bytes: u64) -> String {
    format!("\"inflight\";q={share_bytes};qu=\"content-bytes\"")
}

/// `RateLimit`: what is left of the share (`r`), and when to expect more
/// (`t`, seconds) once it is used up.
pub fn rate_limit_state(remaining_bytes: u64, reset_seconds: Option<u64>) -> String {
    match reset_seconds {
        Some(t) => format!("\"inflight\";r={remaining_bytes};t={t}"),
        None => format!("\"inflight\";r={remaining_bytes}"),
    }
}

/// The status, envelope and retry advice of a domain error: the one
/// mapping.
pub fn error_parts(err: AppError) -> ErrorParts {
    let throttle = match &err {
        AppError::RateLimited {
            share_bytes,
            retry_after_seconds,
        } => Some(Throttle {
            retry_after: Some(*retry_after_seconds),
            policy: Some(rate_limit_policy(*share_bytes)),
            state: Some(rate_limit_state(0, Some(*retry_after_seconds))),
        }),
        AppError::Overloaded {
            retry_after_seconds,
        } => Some(Throttle {
            retry_after: Some(*retry_after_seconds),
            ..Default::default()
        }),
        AppError::Unavailable(_) => Some(Throttle {
            retry_after: Some(crate::domain::admission::RETRY_AFTER_SECONDS),
            ..Default::default()
        }),
        _ => None,
    };
    let (status, body) = status_and_body(err);
    ErrorParts {
        status,
        body,
        throttle,
    }
}

fn status_and_body(err: AppError) -> (StatusCode, ErrorBody) {
    match err {
        AppError::Invalid(issues) => (StatusCode::BAD_REQUEST, validation_body(issues)),
        AppError::RateLimited { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            ErrorBody::new(
                ErrorCode::RateLimited,
                "This account has too much work in flight. Retry after the Retry-After delay.",
            ),
        ),
        AppError::Overloaded { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorBody::new(
                ErrorCode::ServiceUnavailable,
                "The server is saturated. Retry after the Retry-After delay.",
            ),
        ),
        AppError::Unavailable(why) => {
            tracing::warn!(why, "unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, unavailable_body())
        }
        AppError::AccountScope {
            key_account,
            payload_account,
        } => (
            StatusCode::FORBIDDEN,
            ErrorBody {
                error_code: ErrorCode::InvalidAccountScope,
                message: "Payload accountId does not match API key scope.".to_owned(),
                field: None,
                details: Some(ErrorDetails {
                    api_key_account_id: Some(key_account),
                    payload_account_id: Some(payload_account),
                    ..Default::default()
                }),
            },
        ),
        AppError::NotFound(resource) => (StatusCode::NOT_FOUND, not_found_body(resource)),
        AppError::IdempotencyKeyInUse => (
            StatusCode::CONFLICT,
            ErrorBody::new(
                ErrorCode::IdempotencyKeyInUse,
                "A request with this idempotency key is still in progress. Retry later.",
            ),
        ),
        AppError::IdempotencyKeyReused => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorBody::new(
                ErrorCode::IdempotencyKeyReused,
                "This idempotency key was already used with a different request.",
            ),
        ),
        other => {
            tracing::error!(error = ?other, "request failed");
            (StatusCode::INTERNAL_SERVER_ERROR, internal_body())
        }
    }
}

pub fn unavailable_body() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::ServiceUnavailable,
        "The service cannot take this request now. Retry later.",
    )
}

/// The not-found body of a resource.
pub fn not_found_body(resource: Resource) -> ErrorBody {
    match resource {
        Resource::Order => ErrorBody::new(ErrorCode::OrderNotFound, "Order not found."),
        Resource::Product => ErrorBody::new(ErrorCode::ProductNotFound, "Product not found."),
        Resource::ApiKey => ErrorBody::new(ErrorCode::NotFound, "API key not found."),
    }
}

/// Outermost error handler: every error that is not already one of our
/// envelopes (routing, auth header, content type, body limit, panics)
/// becomes one. Errors built from our `ApiResponse`s pass through untouched.
pub async fn envelope(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    if let Some(param) = err.downcast_ref::<ParseParamError>() {
        let issue = Issue::new(param.name, "invalid_type", param.reason.clone());
        return Json(validation_body(vec![issue]))
            .with_status(StatusCode::BAD_REQUEST)
            .into_response();
    }
    let status = err.status();
    let body = match status {
        StatusCode::UNAUTHORIZED => invalid_api_key_body(),
        StatusCode::NOT_FOUND => ErrorBody::new(ErrorCode::NotFound, "No such route."),
        StatusCode::METHOD_NOT_ALLOWED => ErrorBody::new(
            ErrorCode::MethodNotAllowed,
            "Method not allowed on this route.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => payload_too_large_body(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorBody::new(
            ErrorCode::UnsupportedMediaType,
            "Send the body as application/json.",
        ),
        StatusCode::SERVICE_UNAVAILABLE => ErrorBody::new(
            ErrorCode::RequestTimeout,
            "The request took too long. Retry with the same idempotency key.",
        ),
        s if s.is_client_error() => ErrorBody::new(ErrorCode::InvalidRequest, err.to_string()),
        _ => {
            tracing::error!(error = %err, "unhandled error");
            internal_body()
        }
    };
    let mut resp = Json(body).with_status(status).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            poem::http::header::RETRY_AFTER,
            crate::domain::admission::RETRY_AFTER_SECONDS.into(),
        );
    }
    resp
}

/// Response of a handler panic: logged by `CatchPanic`, answered as a 500.
pub fn panic_response() -> Response {
    Json(internal_body())
        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}
