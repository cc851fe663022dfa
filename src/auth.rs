//! Bearer API keys. A process looks a key up in the database (one indexed
//! read) and then trusts it for `--key-cache-ms` (1 s by default), so a
//! revoked key stops working within that time on every instance.

use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};

use crate::{api::error::ApiError, domain, state::AppState};

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
