//! What every request can reach.

use crate::{
    config::Settings,
    db::Db,
    domain::idempotency::Idempotency,
    domain::{
        accounts::KeyCache, admission::Admission, order_writer::OrderWriter,
        products::KnownProducts,
    },
};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub idempotency: Idempotency,
    pub order_writer: OrderWriter,
    pub known_products: KnownProducts,
    pub keys: KeyCache,
    pub admission: Admission,
    pub settings: std::sync::Arc<Settings>,
}
