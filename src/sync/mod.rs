//! Use cases of the gateway, each one function over the ledger and the domain.
//!
//! Owns: `ingest` (turning a verified, parsed delivery into an inbox row).
//! May import: std, tracing, crate::domain, crate::config, crate::ledger.

pub mod ingest;
