//! What every request can reach.

use crate::{config::Settings, db::Db, idempotency::Idempotency};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub idempotency: Idempotency,
    pub settings: std::sync::Arc<Settings>,
}
