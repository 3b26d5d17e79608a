//! npd-monday-gateway: a durable, bidirectional sync gateway between NPD and Monday.com boards.
//!
//! Layers, each importing only the ones listed before it (see the `//!` header of each module):
//! `domain` (pure rules) < `auth` < `config` < `ledger` (all SQL) < `sync` (use cases) < `http`
//! (axum edge) < `startup` (wiring, the only place that picks implementations).

pub mod auth;
pub mod config;
pub mod domain;
pub mod http;
pub mod ledger;
pub mod startup;
pub mod sync;
