//! Pure types and rules of the gateway: no axum, sqlx or reqwest here.
//!
//! Owns: entities and their ids (`entity`), the typed inbound events of both sides (`event`), the
//! field-to-column mapping and value conversion (`mapping`), and the field-level three-way merge
//! with its conflict policies (`reconcile`).
//! May import: std, serde, serde_json, serde_path_to_error, thiserror, time, uuid.

pub mod entity;
pub mod event;
pub mod mapping;
pub mod reconcile;
