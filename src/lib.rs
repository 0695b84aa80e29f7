//! E-PG: a payment gateway node for traditional and on-chain payments.
//!
//! `main.rs` only parses the command line; everything lives here so that
//! integration tests and tools reuse it. See ARCHITECTURE.md for the map.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod app;
pub mod audit;
pub mod backoff;
pub mod bank;
pub mod chain;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod dashboard;
pub mod db;
pub mod devnet;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod ledger;
pub mod merchants;
pub mod metadata;
pub mod methods;
pub mod money;
pub mod names;
pub mod page;
pub mod payments;
pub mod qr;
pub mod rotation;
pub mod server;
pub mod settlement;
pub mod telemetry;
pub mod transparency;
pub mod webhooks;
