//! Bearer API keys. A process looks a key up in the database (one indexed
//! read) and then trusts it for `--key-cache-ms` (1 s by default), so a
//! revoked key stops working within that time on every instance.

use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};
use serde_json::Value;

use crate::{api::error::ApiError, domain, error::AppError, state::AppState};

/// `Authorization: Bearer <api-key>`; resolves to the key's account ID.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    key_name = "Authorization",
    checker = "check_api_key",
    bearer_format = "API key"
)]
pub struct ApiKeyAuth(pub String);

async fn check_api_key(req: &Request, bearer: Bearer) -> poem::Result<String> {
    let state = req
        .data::<AppState>()
        .expect("AppState is attached to every route");
    match domain::accounts::authenticate(&state.db, &state.keys, &bearer.token).await {
        Ok(Some(account)) => {
            tracing::Span::current().record("account_id", account.as_str());
            Ok(account)
        }
        Ok(None) => Err(ApiError::invalid_api_key().into()),
        Err(e) => Err(ApiError::from(e).into()),
    }
}

/// 403 when the body names an `accountId` (a string) other than the key's.
/// Runs before validation, as the contract orders the checks.
pub fn check_scope(account: &str, body: &Value) -> Result<(), AppError> {
    match body.get("accountId").and_then(Value::as_str) {
        Some(payload) if payload != account => Err(AppError::AccountScope {
            key_account: account.to_owned(),
            payload_account: payload.to_owned(),
        }),
        _ => Ok(()),
    }
}
