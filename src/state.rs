//! What every request can reach.

use crate::{
    config::Settings,
    db::Db,
    domain::{
        accounts::KeyCache,
        admission::Admission,
        idempotency::Idempotency,
        orders::{Orders, ReadCache},
        products::{KnownProducts, Products},
        writer::Writer,
    },
};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub idempotency: Idempotency,
    pub order_writer: Writer<Orders>,
    pub product_writer: Writer<Products>,
    pub known_products: KnownProducts,
    pub order_reads: ReadCache,
    pub keys: KeyCache,
    pub admission: Admission,
    pub settings: std::sync::Arc<Settings>,
}
