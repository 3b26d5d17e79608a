//! Simulators of Monday (`monday`) and NPD (`npd`), used by the tests and by `demo`.
//!
//! Each is an in-process axum server on a loopback port that behaves like the real system where
//! the gateway can tell: same wire shapes, same errors, signed webhooks/events back to the gateway,
//! a call log to assert on, and fault switches.
//! May import: std, axum, tokio, reqwest, serde, serde_json, time, uuid, rand, apollo-compiler,
//! crate::{auth, domain}.

pub mod monday;
pub mod npd;
