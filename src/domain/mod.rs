//! Pure types and rules of the gateway: no axum, sqlx or reqwest here.
//!
//! Owns: entities, their ids and the two sides (`entity`), an NPD record as one typed value
//! (`record`), the typed inbound events of both sides (`event`), the field-to-column mapping and
//! value conversion (`mapping`), the field-level three-way merge with its conflict policies
//! (`reconcile`), the states the ledger records (`state`, named through `names`), and what an
//! outbox job is (`job`), processing lanes and the entity keys a decision locks (`lane`), Monday's
//! call budget as pure state (`budget`), and the scans of existing data with their one-to-one
//! matching (`scan`), and the terms the console's entity search finds an entity by (`search`).
//! May import: std, serde, serde_json, serde_path_to_error, thiserror, time, uuid.

pub mod names;

pub mod budget;
pub mod entity;
pub mod event;
pub mod job;
pub mod lane;
pub mod mapping;
pub mod reconcile;
pub mod record;
pub mod scan;
pub mod search;
pub mod state;
