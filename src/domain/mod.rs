//! Pure types and rules of the gateway: no axum, sqlx or reqwest here.
//!
//! Owns: entities and their ids (`entity`), the typed inbound events of both sides (`event`), the
//! field-to-column mapping (`mapping`) and the conflict policies (`reconcile`).
//! May import: std, serde, serde_json, time, uuid.

pub mod entity;
pub mod event;
pub mod mapping;
pub mod reconcile;
