//! Use cases of the gateway, each one function over the ledger, the domain and the connectors.
//!
//! Owns: `ingest` (a verified delivery into the inbox), `process` (inbox events into decisions and
//! jobs), `outbox` (operations and enqueueing), `dispatch` (one job against Monday or NPD),
//! `retry` (the one retry policy), `push` (an admin's forced push), `admin` (status, dead letters).
//! May import: std, tokio, tracing, crate::{domain, config, ledger, connectors}.

pub mod admin;
pub mod dispatch;
pub mod ingest;
pub mod outbox;
pub mod process;
pub mod push;
pub mod resolve;
pub mod retry;
