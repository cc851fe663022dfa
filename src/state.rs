//! What every request can reach.

use crate::{config::Settings, db::Db};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: std::sync::Arc<Settings>,
}
