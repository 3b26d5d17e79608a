//! Outbound clients: Monday's GraphQL API (`monday`) and NPD's REST API (`npd`).
//!
//! Owns: `ConnectorError`, the one error both clients return, classified once for the retry
//! policy: retryable (with an optional server-given delay), permanent, or not found.
//! Error messages never contain a token or a request body.
//! May import: std, reqwest, serde, serde_json, secrecy, tracing, crate::{config, domain}.

pub mod budget;
pub mod monday;
pub mod npd;

use std::fmt;
use std::time::Duration;

/// How a failed call should be treated by the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Try again later: timeouts, 408, 409 (idempotency conflict), 423, 425, 429, 5xx, rate-limit
    /// and complexity errors inside an HTTP 200.
    Retryable,
    /// Do not retry: other 4xx, `ColumnValueException`, `InvalidColumnIdException`, ...
    Permanent,
    /// The remote record does not exist (Monday `ResourceNotFoundException`, NPD 404).
    NotFound,
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureClass::Retryable => "retryable",
            FailureClass::Permanent => "permanent",
            FailureClass::NotFound => "not found",
        })
    }
}

/// A failed call to Monday or NPD.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{system} {class} error{}: {message}", .code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
pub struct ConnectorError {
    /// `monday` or `npd`.
    pub system: &'static str,
    pub class: FailureClass,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Monday's `extensions.code` (or legacy `error_code`), when given.
    pub code: Option<String>,
    /// What went wrong, from the remote's error text (never a token or our request body).
    pub message: String,
    /// The delay the remote asked for (`Retry-After`, `retry_in_seconds`).
    pub retry_after: Option<Duration>,
}

impl ConnectorError {
    pub fn is_retryable(&self) -> bool {
        self.class == FailureClass::Retryable
    }
}
