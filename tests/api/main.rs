//! Black-box tests over HTTP against the real app, one binary. Every
//! behaviour runs on SQLite and, with `ENTRYGO_TEST_POSTGRES_URL`, on
//! PostgreSQL (see `both_backends!`).

mod db_probes;
mod helpers;

mod auth;
mod changes;
mod cli;
mod errors;
mod hostile;
mod idempotency;
mod idempotency_records;
mod metrics;
mod migrations;
mod openapi_spec;
mod operations;
mod orders_sync;
mod overload;
mod preview;
mod products;
mod query_plans;
mod reads;
mod sdk_rust;
mod server_process;
mod test_database;
