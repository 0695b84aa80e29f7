//! E-PG's integration tests, in one binary: every area is a module, and
//! all of them share the support modules (a node on a fresh database, an
//! anvil devnet with the contracts, the PostgreSQL proxy, the OpenAPI
//! document's checks). One binary links alloy and sqlx once instead of
//! once per file, which is most of what building the tests costs.
//!
//! Run one area with `cargo nextest run -E 'test(/^payments_api::/)'`.

mod chain_support;
mod common;
mod dashboard_support;
mod openapi_support;
mod rpc_proxy;
mod tcp_proxy;
mod webhooks_support;

mod api_foundation;
mod api_guide;
mod audit_follow;
mod audit_verify;
mod bank_rails;
mod card_data_at_rest;
mod chain_guard;
mod chain_reconcile;
mod chain_restart;
mod chain_sends;
mod chain_two_chains;
mod chain_watcher;
mod checkout_browser;
mod checkout_link;
mod checkout_page;
mod cli;
mod contracts_deploy;
mod crypto_expiry;
mod crypto_payments;
mod crypto_reorgs;
mod dashboard;
mod dashboard_browser;
mod dashboard_pages;
mod db_failover;
mod db_pool;
mod deposits;
mod events_api;
mod events_stream;
mod exactly_once_payments;
mod faults;
mod go_live;
mod idempotency_scope;
mod idle_node;
mod jobs_on_two_nodes;
mod key_rotation;
mod kill_loop;
mod ledger_api;
mod ledger_concurrency;
mod ledger_invariants;
mod ledger_properties;
mod openapi_document;
mod openapi_responses;
mod openapi_routes;
mod payments_api;
mod payments_attacks;
mod schema_rules;
mod settlement_api;
mod transparency_anchor;
mod transparency_log;
mod transparency_merkle;
mod webhooks_delivery;
mod webhooks_endpoints;
