//! Outbound clients: Monday's GraphQL API (`monday`) and NPD's REST API (`npd`).
//!
//! Owns: the traits the use cases call the two systems through (`MondayApi`, `NpdApi`: typed
//! arguments and answers, so `sync` can be tested against in-memory fakes), and
//! `ConnectorError`, the one error both clients return, classified once for the retry policy:
//! retryable (with an optional server-given delay), permanent, or not found. Error messages never
//! contain a token or a request body.
//! May import: std, async-trait, reqwest, serde, serde_json, secrecy, tracing, crate::{config, domain}.

pub mod monday;
pub mod npd;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::entity::{BoardId, EntityKind, MondayItemId, NpdId, Side};
use crate::domain::mapping::{ColumnType, ColumnValues};
use crate::domain::record::{NpdRecord, NpdValue};
use monday::{BoardWebhook, ItemSnapshot, ItemsPage, RateLimitState};

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

impl FailureClass {
    /// The class as a metrics label: `retryable`, `permanent`, `not_found`.
    pub fn label(self) -> &'static str {
        match self {
            FailureClass::Retryable => "retryable",
            FailureClass::Permanent => "permanent",
            FailureClass::NotFound => "not_found",
        }
    }
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

    /// The remote refused the request for a rate, complexity or concurrency limit (HTTP 429, or
    /// such a code inside an HTTP 200): it was not processed, so its retry must not reuse the
    /// idempotency key (Monday would answer the cached refusal).
    pub fn is_rate_limited(&self) -> bool {
        let code = self
            .code
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let squeezed: String = code.chars().filter(char::is_ascii_alphanumeric).collect();
        self.status == Some(429)
            || ["ratelimit", "complexity", "maxconcurrency"]
                .iter()
                .any(|marker| squeezed.contains(marker))
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

/// Reads at most `limit` bytes of an answer, chunk by chunk (a huge answer is never buffered);
/// the flag says whether more was left unread.
pub(crate) async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// The fields of an NPD write (`PATCH`, `POST`): name to value, `Null` clearing a field.
pub type NpdFields = BTreeMap<String, NpdValue>;

/// One mutation of a batched request (each for a different item).
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    Create {
        board: BoardId,
        item_name: String,
        columns: ColumnValues,
    },
    /// `change_multiple_column_values` (a `name` entry renames the item).
    Update {
        board: BoardId,
        item: MondayItemId,
        columns: ColumnValues,
    },
    Archive {
        item: MondayItemId,
    },
}

impl Mutation {
    /// The GraphQL field it is (metrics, logs).
    pub fn operation(&self) -> &'static str {
        match self {
            Mutation::Create { .. } => "create_item",
            Mutation::Update { .. } => "change_multiple_column_values",
            Mutation::Archive { .. } => "archive_item",
        }
    }

    /// The complexity points Monday counts for it (its older guidance: create_item costs
    /// 10,000; other mutations 1,000).
    pub fn points(&self) -> u64 {
        match self {
            Mutation::Create { .. } => 10_000,
            _ => 1_000,
        }
    }
}

/// An item a lookup by column values found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundItem {
    pub id: MondayItemId,
    /// The looked-up column's text.
    pub text: Option<String>,
    /// Not archived or deleted.
    pub active: bool,
}

/// What a batched request achieved.
#[derive(Debug)]
pub struct Batched {
    /// Per mutation, in order: the item it created or changed, or its own error.
    pub results: Vec<Result<MondayItemId, ConnectorError>>,
    /// Monday's `complexity` answer: points left after the request, and seconds to the reset.
    pub complexity_left: Option<(u64, Duration)>,
}

/// A column `MondayApi::create_column` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewColumn<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub column_type: ColumnType,
}

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

    /// Up to `batch_max` mutations for different items in one request, as aliases; each
    /// alias's error belongs to it alone. `Err` when the whole request failed.
    async fn mutate(
        &self,
        mutations: &[Mutation],
        idempotency_key: &str,
    ) -> Result<Batched, ConnectorError>;

    /// The items of `board` whose column `column_id` holds one of `values` (one request per
    /// 500 items), each with that column's text.
    async fn find_items_by_column_values(
        &self,
        board: BoardId,
        column_id: &str,
        values: &[String],
    ) -> Result<Vec<FoundItem>, ConnectorError>;

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

    /// The webhooks of `board` (`monday setup`).
    async fn board_webhooks(&self, board: BoardId) -> Result<Vec<BoardWebhook>, ConnectorError>;

    /// Registers a webhook of `event` on `board` to `url` (Monday first sends the URL its
    /// challenge, which the running gateway answers); the webhook's id.
    async fn create_webhook(
        &self,
        board: BoardId,
        url: &str,
        event: &str,
        idempotency_key: &str,
    ) -> Result<String, ConnectorError>;

    /// Creates a column with the given id, title and type on `board`.
    async fn create_column(
        &self,
        board: BoardId,
        column: &NewColumn<'_>,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError>;

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
