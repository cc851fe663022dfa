//! Schema of the EntryGo intake API. Applied migrations are never edited;
//! a change is a new file.
pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_accounts;
mod m20261127_000002_create_products;
mod m20261127_000003_create_orders;
mod m20261127_000004_create_idempotency_keys;
mod m20261128_000005_add_order_content_hash;
mod m20261130_000006_add_order_change_seq;
mod m20261130_000007_add_listing_indexes;
mod m20261201_000008_drop_order_item_foreign_keys;
mod m20261206_000009_add_order_lines_text;
mod m20261206_000010_key_orders_by_account_and_lines_by_order;
mod m20261206_000011_compress_stored_responses_with_lz4;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_accounts::Migration),
            Box::new(m20261127_000002_create_products::Migration),
            Box::new(m20261127_000003_create_orders::Migration),
            Box::new(m20261127_000004_create_idempotency_keys::Migration),
            Box::new(m20261128_000005_add_order_content_hash::Migration),
            Box::new(m20261130_000006_add_order_change_seq::Migration),
            Box::new(m20261130_000007_add_listing_indexes::Migration),
            Box::new(m20261201_000008_drop_order_item_foreign_keys::Migration),
            Box::new(m20261206_000009_add_order_lines_text::Migration),
            Box::new(m20261206_000010_key_orders_by_account_and_lines_by_order::Migration),
            Box::new(m20261206_000011_compress_stored_responses_with_lz4::Migration),
        ]
    }
}
