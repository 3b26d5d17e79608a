//! npd-monday-gateway: a durable, bidirectional sync gateway between NPD and Monday.com boards.
//!
//! Layers, each importing only the ones listed before it (see the `//!` header of each module):
//! `domain` (pure rules) < `metrics` (in-process counters) < `auth` < `config` < `ledger` (all SQL) and `connectors` (outbound
//! HTTP) < `sync` (use cases) < `worker` (loops) < `http` (axum edge) < `startup` (wiring, the only
//! place that picks implementations). `sim` (the Monday and NPD simulators for tests and `demo`)
//! stands beside them and imports only `domain` and `auth`.

pub mod auth;
pub mod config;
pub mod connectors;
pub mod demo;
pub mod domain;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod sim;
pub mod startup;
pub mod sync;
pub mod worker;
