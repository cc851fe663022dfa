//! Liveness and readiness for load balancers and orchestrators.

use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use crate::{
    api::{
        ApiTags,
        error::{ErrorBody, unavailable_body},
    },
    domain,
    state::AppState,
};

/// Health status.
#[derive(Object, Debug)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The process is up.
    #[oai(status = 200)]
    Ok(Json<Health>),
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The database answers: send traffic.
    #[oai(status = 200)]
    Ok(Json<Health>),
    /// `SERVICE_UNAVAILABLE`: the database does not answer, or the order
    /// writer is restarting; take this instance out of rotation until it
    /// is ready again.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

pub struct HealthApi;

fn ok() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// The process is up and serving HTTP. Needs no API key.
    #[oai(path = "/healthz", method = "get", operation_id = "getHealth")]
    async fn healthz(&self) -> HealthResponse {
        HealthResponse::Ok(ok())
    }

    /// Readiness
    ///
    /// The database answers within a second and the order writer is
    /// running. Needs no API key.
    #[oai(path = "/readyz", method = "get", operation_id = "getReadiness")]
    async fn readyz(&self, state: poem::web::Data<&AppState>) -> ReadyResponse {
        match domain::ready(&state).await {
            Ok(()) => ReadyResponse::Ok(ok()),
            Err(e) => {
                tracing::warn!(error = %e, "not ready");
                ReadyResponse::Unavailable(Json(unavailable_body()))
            }
        }
    }
}
