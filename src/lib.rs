//! EntryGo intake API: warehouse systems, shops and automation agents sync
//! orders and products into EntryGo for export planning.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod startup;
pub mod state;
pub mod telemetry;
