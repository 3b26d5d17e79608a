//! Outbound clients: Monday's GraphQL API (`monday`) and NPD's REST API (`npd`).
//!
//! Owns: the traits the use cases call the two systems through (`MondayApi`, `NpdApi`: typed
//! arguments and answers, so `sync` can be tested against in-memory fakes), and
//! `ConnectorError`, the one error both clients return, classified once for the retry policy:
//! retryable (with an optional server-given delay), permanent, or not found. Error messages never
//! contain a token or a request body.
//! May import: std, async-trait, reqwest, serde, serde_json, secrecy, tracing, crate::{config, domain}.

pub mod budget;
pub mod monday;
pub mod npd;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::entity::{BoardId, EntityKind, MondayItemId, NpdId, Side};
use crate::domain::mapping::ColumnValues;
use crate::domain::record::{NpdRecord, NpdValue};
use monday::{ItemSnapshot, ItemsPage, RateLimitState};

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
    /// The system that failed (or that the call was for).
    pub system: Side,
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

impl ConnectorError {
    /// A failure found before any call was made (nothing configured, no id to call with): it
    /// cannot get better by retrying.
    pub fn local(system: Side, message: impl Into<String>) -> Self {
        ConnectorError {
            system,
            class: FailureClass::Permanent,
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The fields of an NPD write (`PATCH`, `POST`): name to value, `Null` clearing a field.
pub type NpdFields = BTreeMap<String, NpdValue>;

/// What the gateway asks of Monday's GraphQL API.
#[async_trait]
pub trait MondayApi: Send + Sync + fmt::Debug {
    /// `create_item` with every column value; the new item's id.
    async fn create_item(
        &self,
        board: BoardId,
        item_name: &str,
        columns: &ColumnValues,
        idempotency_key: &str,
    ) -> Result<MondayItemId, ConnectorError>;

    /// One `change_multiple_column_values` (a `name` entry renames the item).
    async fn change_multiple_column_values(
        &self,
        board: BoardId,
        item: MondayItemId,
        columns: &ColumnValues,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError>;

    async fn archive_item(
        &self,
        item: MondayItemId,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError>;

    /// The items of `board` whose column `column_id` holds `value`.
    async fn find_items_by_column(
        &self,
        board: BoardId,
        column_id: &str,
        value: &str,
    ) -> Result<Vec<MondayItemId>, ConnectorError>;

    async fn get_item(&self, item: MondayItemId) -> Result<Option<ItemSnapshot>, ConnectorError>;

    /// The board's columns as (id, type); `None` when the board does not exist.
    async fn board_columns(
        &self,
        board: BoardId,
    ) -> Result<Option<Vec<(String, String)>>, ConnectorError>;

    /// One page of the board's active items (up to `limit`, at most 500), with only the
    /// columns named: the first page without a cursor, the next ones with the cursor the last
    /// page gave. A cursor Monday no longer knows (60 minutes after the walk began) fails with
    /// `FailureClass::NotFound`.
    async fn items_page(
        &self,
        board: BoardId,
        columns: &[String],
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ItemsPage, ConnectorError>;

    /// The id of the user the API token acts as.
    async fn me(&self) -> Result<i64, ConnectorError>;

    /// What the last answer's `RateLimit` header said, if any answer carried one.
    fn last_rate_limit(&self) -> Option<RateLimitState>;
}

/// One page of NPD's list API: the records, and the cursor of the next page (`None` on the last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NpdPage {
    pub records: Vec<NpdRecord>,
    pub next_cursor: Option<String>,
}

/// What the gateway asks of NPD's REST API.
#[async_trait]
pub trait NpdApi: Send + Sync + fmt::Debug {
    /// Up to `limit` (1..=500) records of `kind` from `cursor` on (`None`: from the first).
    async fn list(
        &self,
        kind: EntityKind,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<NpdPage, ConnectorError>;

    /// The record, `None` when NPD does not have it.
    async fn get(&self, kind: EntityKind, id: NpdId) -> Result<Option<NpdRecord>, ConnectorError>;

    /// Writes only `fields`; the version NPD's record has after the write, when NPD says.
    async fn patch(
        &self,
        kind: EntityKind,
        id: NpdId,
        fields: &NpdFields,
        idempotency_key: &str,
    ) -> Result<Option<i64>, ConnectorError>;

    /// Creates a contact; its new id.
    async fn create_contact(
        &self,
        fields: &NpdFields,
        idempotency_key: &str,
    ) -> Result<NpdId, ConnectorError>;
}
