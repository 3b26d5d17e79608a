//! End-to-end tests: one binary, one module per surface. Each test spawns the real gateway on a
//! random port against a real store; most run on SQLite and on PostgreSQL (`store_tests!`).

mod helpers;

mod admin_safety;
mod backfill;
mod backpressure;
mod batching;
mod browser;
mod conflicts;
mod console;
mod deploy;
mod drift;
mod durability;
mod fault_proxy;
mod faults;
mod hardening;
mod http_limits;
mod idempotency_window;
mod job_table;
mod ledger;
mod mapping;
mod metrics;
mod monday_ingress;
mod npd_ingress;
mod operations;
mod replicas;
mod roundtrip;
mod rss;
mod setup;
