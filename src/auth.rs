//! Bearer API keys. A process looks a key up in the database (one indexed
//! read) and then trusts it for `--key-cache-ms` (1 s by default), so a
//! revoked key stops working within that time on every instance.

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme, auth::Bearer,
    registry::Registry,
};

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
    let state = app_state(req);
    match domain::accounts::authenticate(&state.db, &state.keys, &bearer.token).await {
        Ok(Some(account)) => {
            tracing::Span::current().record("account_id", account.as_str());
            Ok(account)
        }
        Ok(None) => Err(ApiError::invalid_api_key().into()),
        Err(e) => Err(ApiError::from(e).into()),
    }
}

/// Who is calling, and what to serve them with: the API key's account and
/// the app state. One handler argument instead of two; in the spec it is
/// the `ApiKeyAuth` security scheme, exactly as `ApiKeyAuth` is.
pub struct Caller<'a> {
    pub account: String,
    pub state: &'a AppState,
}

impl<'a> ApiExtractor<'a> for Caller<'a> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        ApiKeyAuth::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        ApiKeyAuth::security_schemes()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let ApiKeyAuth(account) = ApiKeyAuth::from_request(request, body, param_opts).await?;
        Ok(Self {
            account,
            state: app_state(request),
        })
    }
}

fn app_state(request: &Request) -> &AppState {
    request
        .data::<AppState>()
        .expect("AppState is attached to every route")
}
