//! Use cases of the gateway, each one function over the ledger, the domain and the connectors.
//!
//! Owns: `ingest` (a verified delivery into the inbox), `process/` (inbox events into decisions
//! and jobs: NPD, Monday, the merge), `outbox` (enqueueing), `dispatch/` (one job against Monday
//! or NPD: prepare, call, outcome), `retry` (the one retry policy), `history` (the one home of
//! history entries, and the `Cause` of a decision), `push` (an admin's forced push), `resolve`
//! (an admin settles a conflict), `relation` (a contact's organization in a board_relation column:
//! the ledger's organization links, and the relations written once an organization is linked), `admin` (status, dead letters, the audit log), `budget` (the
//! Monday budget of the account: shared through the ledger on PostgreSQL), `setup` (a board made
//! ready for the gateway: `monday setup`), `retention` (pruning what the ledger no longer needs),
//! and the scans of existing data: `scan` (both sides read page by page into the ledger's staging
//! area), `backfill` (matching, links, creates, the review queue) and `drift` (repairs of what
//! webhooks missed), producers that hand every change to the same merge and outbox.
//! May import: std, tokio, tracing, async-trait, rand, sha2 (page checksums), crate::{domain,
//! config, metrics, ledger, connectors}.

pub mod admin;
pub mod backfill;
pub mod budget;
pub mod dispatch;
pub mod drift;
pub mod history;
pub mod ingest;
pub mod outbox;
pub mod process;
pub mod push;
pub mod relation;
pub mod resolve;
pub mod retention;
pub mod retry;
pub mod scan;
pub mod setup;

#[cfg(test)]
mod testkit;
