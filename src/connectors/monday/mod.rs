//! The gateway's client of monday's GraphQL API.
//!
//! Owns: `MondayClient` (one POST per call, `Authorization: <token>` raw, `API-Version`,
//! `Idempotency-Key` on mutations only, redirects never followed, a per-call timeout, at most
//! `MAX_ANSWER_BYTES` of an answer read), the
//! documents it sends (`documents`), the snapshots it reads back (`ItemSnapshot`,
//! `ColumnValueSnapshot`, `ItemsPage`: a board read page by page), and `RateLimitState` from the last `RateLimit` header. Errors are read
//! from the body even on HTTP 200 and classified once into `ConnectorError` (submodule `errors`).
//! May import: std, reqwest, serde_json, secrecy, tracing, crate::{config, connectors, domain, metrics}.

mod batch;
pub mod documents;
mod errors;

#[cfg(test)]
mod setup_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use crate::config::MondaySettings;
use crate::connectors::{
    Batched, ConnectorError, FoundItem, MondayApi, Mutation, NewColumn, read_bounded,
};
use crate::domain::entity::{BoardId, MondayItemId};
use crate::domain::mapping::{ColumnType, ColumnValues};
use crate::metrics::Metrics;

pub use errors::RateLimitState;

/// `User-Agent` of every call.
const USER_AGENT: &str = concat!("npd-monday-gateway/", env!("CARGO_PKG_VERSION"));
/// Most bytes read of any answer: the largest page the gateway asks for (25 items with their
/// column values) is a few hundred KiB; anything past this is refused unread.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// An item as monday answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSnapshot {
    pub id: MondayItemId,
    pub name: String,
    pub board_id: Option<BoardId>,
    /// "active" | "archived" | "deleted".
    pub state: String,
    /// Column id to value.
    pub column_values: BTreeMap<String, ColumnValueSnapshot>,
}

/// One page of a board's items, and the cursor of the next (`None` on the last page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemsPage {
    pub items: Vec<ItemSnapshot>,
    pub cursor: Option<String>,
}

/// One column value of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnValueSnapshot {
    /// GraphQL `ColumnType` name (text, long_text, email, ...).
    pub column_type: String,
    /// The API's `value`: a JSON-encoded string; None when the column is empty. A connect-boards
    /// column's `linked_item_ids` (`... on BoardRelationValue`) as `{"item_ids": [..]}`.
    pub value: Option<String>,
    /// The display text.
    pub text: Option<String>,
}

/// An answer as it arrived: status, headers, body.
struct RawAnswer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A board webhook as `webhooks(board_id:)` answers it (Monday does not say where it points).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardWebhook {
    pub id: String,
    /// The `WebhookEventType` it subscribes to (`create_item`, `change_column_value`, ...).
    pub event: String,
    /// Its config as Monday stores it (a JSON string), for the events that take one.
    pub config: Option<String>,
}

/// The name of a mapping column type in Monday's GraphQL `ColumnType` enum: what
/// `create_column` is asked for and what `boards { columns { type } }` answers. The mapping's
/// type names are Monday's own (a test sends every one of them in a `create_column` document
/// validated against the SDL).
pub fn graphql_column_type(column_type: ColumnType) -> &'static str {
    column_type.as_str()
}

/// The labels a status or dropdown column's `settings_str` lists: status
/// `{"labels": {"0": "Working on it", "1": "Done"}}`, dropdown
/// `{"labels": [{"id": 1, "name": "Customer"}]}`; `None` for other settings.
pub fn labels_of_settings(settings_str: &str) -> Option<Vec<String>> {
    let settings: Value = serde_json::from_str(settings_str).ok()?;
    let labels = match settings.get("labels")? {
        Value::Object(by_index) => by_index
            .values()
            .filter_map(|l| l.as_str().map(str::to_owned))
            .collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(|l| l.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect(),
        _ => return None,
    };
    Some(labels)
}

/// Calls monday's GraphQL API. Clones share the connection pool and the rate-limit state.
#[derive(Clone)]
pub struct MondayClient {
    http: reqwest::Client,
    api_url: String,
    api_version: String,
    token: SecretString,
    last_rate_limit: Arc<Mutex<Option<RateLimitState>>>,
    metrics: Metrics,
}

impl fmt::Debug for MondayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MondayClient")
            .field("api_url", &self.api_url)
            .field("api_version", &self.api_version)
            .field("token", &format_args!("[REDACTED]"))
            .finish()
    }
}

/// Parses an `ID` answered as a string (or a number).
fn parse_id<T: serde::de::DeserializeOwned>(
    value: Option<&Value>,
    what: &str,
) -> Result<T, ConnectorError> {
    value
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .ok_or_else(|| errors::unexpected(&format!("{what} is not a numeric id")))
}

/// The list `data[field]`: None when Monday answered null or nothing for it.
fn list_of<'a>(
    data: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a Vec<Value>>, ConnectorError> {
    match data.get(field) {
        Some(Value::Array(list)) => Ok(Some(list)),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err(errors::unexpected(&format!("{field} is not a list"))),
    }
}

fn str_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// An item of an answer (`id`, `name`, `state`, `board { id }`, `column_values`).
fn item_snapshot(found: &Value) -> Result<ItemSnapshot, ConnectorError> {
    let id: MondayItemId = parse_id(found.get("id"), "items[].id")?;
    let board_id = match found.get("board").and_then(|b| b.get("id")) {
        Some(id) => Some(parse_id::<BoardId>(Some(id), "items[].board.id")?),
        None => None,
    };
    let mut column_values = BTreeMap::new();
    for cv in found
        .get("column_values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(column) = cv.get("id").and_then(Value::as_str) else {
            return Err(errors::unexpected("a column value without id"));
        };
        // A connect-boards column's items are in `linked_item_ids` (its `value` may be null):
        // they are kept in the column's write format, which its type reads like `value`.
        let value = match cv.get("linked_item_ids") {
            Some(ids @ Value::Array(_)) => Some(serde_json::json!({ "item_ids": ids }).to_string()),
            _ => str_of(cv.get("value")),
        };
        column_values.insert(
            column.to_owned(),
            ColumnValueSnapshot {
                column_type: str_of(cv.get("type")).unwrap_or_default(),
                value,
                text: str_of(cv.get("text")),
            },
        );
    }
    Ok(ItemSnapshot {
        id,
        name: str_of(found.get("name")).unwrap_or_default(),
        board_id,
        state: str_of(found.get("state")).unwrap_or_else(|| "active".into()),
        column_values,
    })
}

/// A continued walk's failure that retrying cannot mend: the cursor is gone.
fn cursor_gone(e: ConnectorError) -> ConnectorError {
    if e.class == crate::connectors::FailureClass::Permanent {
        ConnectorError {
            class: crate::connectors::FailureClass::NotFound,
            ..e
        }
    } else {
        e
    }
}

impl MondayClient {
    /// None when `settings.api_token` is None. Redirects are never followed; `timeout` bounds
    /// each call (monday's own limit is 60 s).
    pub fn new(settings: &MondaySettings, timeout: Duration) -> Option<MondayClient> {
        let token = settings.api_token.clone()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .build();
        let http = match http {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the HTTP client for monday");
                return None;
            }
        };
        Some(MondayClient {
            http,
            api_url: settings.api_url.clone(),
            api_version: settings.api_version.clone(),
            token,
            last_rate_limit: Arc::new(Mutex::new(None)),
            metrics: Metrics::default(),
        })
    }

    /// Counts every request (by root field and outcome) in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// What the last answer's `RateLimit` header said, if any answer carried one.
    pub fn last_rate_limit(&self) -> Option<RateLimitState> {
        *self
            .last_rate_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// POSTs one document, counted in the metrics whatever its outcome; the `data` object of a
    /// successful answer.
    async fn execute(
        &self,
        document: &str,
        variables: Value,
        idempotency_key: Option<&str>,
    ) -> Result<Map<String, Value>, ConnectorError> {
        let answer = self.post(document, variables, idempotency_key).await;
        let result = answer.and_then(|a| errors::interpret(a.status, &a.headers, &a.body));
        if let Err(e) = &result {
            tracing::debug!(class = %e.class, code = e.code.as_deref(), "monday call failed");
        }
        self.count(document, result.as_ref().err());
        result
    }

    /// POSTs one document and reads the whole answer (noting its `RateLimit` header), whatever
    /// its status: what it means is for `errors` to say.
    async fn post(
        &self,
        document: &str,
        variables: Value,
        idempotency_key: Option<&str>,
    ) -> Result<RawAnswer, ConnectorError> {
        let mut headers = HeaderMap::new();
        let mut token =
            HeaderValue::from_str(self.token.expose_secret()).map_err(|_| ConnectorError {
                system: crate::domain::entity::Side::Monday,
                class: crate::connectors::FailureClass::Permanent,
                status: None,
                code: None,
                message: "the API token is not a valid header value".into(),
                retry_after: None,
            })?;
        token.set_sensitive(true);
        headers.insert(AUTHORIZATION, token);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(version) = HeaderValue::from_str(&self.api_version) {
            headers.insert("api-version", version);
        }
        if let Some(key) = idempotency_key
            && let Ok(key) = HeaderValue::from_str(key)
        {
            headers.insert("idempotency-key", key);
        }
        let body = json!({ "query": document, "variables": variables });
        let response = self
            .http
            .post(&self.api_url)
            .headers(headers)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| errors::transport_error(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if let Some(state) = headers
            .get("ratelimit")
            .and_then(|v| v.to_str().ok())
            .and_then(RateLimitState::parse)
        {
            *self
                .last_rate_limit
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(state);
        }
        let (body, truncated) = read_bounded(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| errors::transport_error(&e))?;
        if truncated {
            return Err(errors::too_large(status, MAX_ANSWER_BYTES));
        }
        Ok(RawAnswer {
            status,
            headers,
            body,
        })
    }

    /// Counts one request in `gateway_monday_requests_total`.
    fn count(&self, document: &str, error: Option<&ConnectorError>) {
        let outcome = error.map_or("ok", |e| e.class.label());
        self.metrics
            .monday_request(documents::root_field(document), outcome);
    }

    /// Creates an item with `column_values` (API write format, column id to value).
    #[tracing::instrument(skip_all, fields(monday.board_id = %board, monday.item_id = tracing::field::Empty))]
    pub async fn create_item(
        &self,
        board: BoardId,
        item_name: &str,
        column_values: &Map<String, Value>,
        idempotency_key: &str,
    ) -> Result<MondayItemId, ConnectorError> {
        let variables = json!({
            "board_id": board.to_string(),
            "item_name": item_name,
            "column_values": Value::Object(column_values.clone()).to_string(),
        });
        let data = self
            .execute(documents::CREATE_ITEM, variables, Some(idempotency_key))
            .await?;
        let item = data
            .get("create_item")
            .filter(|v| !v.is_null())
            .ok_or_else(|| errors::unexpected("create_item answered null"))?;
        let id: MondayItemId = parse_id(item.get("id"), "create_item.id")?;
        tracing::Span::current().record("monday.item_id", tracing::field::display(id));
        Ok(id)
    }

    /// Writes several columns at once. `column_values` may include "name" to rename the item
    /// (monday accepts it in change_multiple_column_values).
    #[tracing::instrument(skip_all, fields(monday.board_id = %board, monday.item_id = %item))]
    pub async fn change_multiple_column_values(
        &self,
        board: BoardId,
        item: MondayItemId,
        column_values: &Map<String, Value>,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError> {
        let variables = json!({
            "board_id": board.to_string(),
            "item_id": item.to_string(),
            "column_values": Value::Object(column_values.clone()).to_string(),
        });
        let data = self
            .execute(
                documents::CHANGE_MULTIPLE_COLUMN_VALUES,
                variables,
                Some(idempotency_key),
            )
            .await?;
        match data.get("change_multiple_column_values") {
            Some(v) if !v.is_null() => Ok(()),
            _ => Err(errors::unexpected(
                "change_multiple_column_values answered null",
            )),
        }
    }

    /// Archives an item.
    #[tracing::instrument(skip_all, fields(monday.board_id = tracing::field::Empty, monday.item_id = %item))]
    pub async fn archive_item(
        &self,
        item: MondayItemId,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError> {
        let variables = json!({ "item_id": item.to_string() });
        let data = self
            .execute(documents::ARCHIVE_ITEM, variables, Some(idempotency_key))
            .await?;
        match data.get("archive_item") {
            Some(v) if !v.is_null() => Ok(()),
            _ => Err(errors::unexpected("archive_item answered null")),
        }
    }

    /// items_page_by_column_values (limit 25) on one column and one value: the ids of the
    /// matching items, active ones first.
    #[tracing::instrument(skip_all, fields(monday.board_id = %board, monday.item_id = tracing::field::Empty))]
    pub async fn find_items_by_column(
        &self,
        board: BoardId,
        column_id: &str,
        value: &str,
    ) -> Result<Vec<MondayItemId>, ConnectorError> {
        let variables = json!({
            "board_id": board.to_string(),
            "column_id": column_id,
            "value": value,
        });
        let data = self
            .execute(documents::ITEMS_BY_COLUMN_VALUE, variables, None)
            .await?;
        let items = data
            .get("items_page_by_column_values")
            .and_then(|page| page.get("items"))
            .and_then(Value::as_array)
            .ok_or_else(|| errors::unexpected("items_page_by_column_values without items"))?;
        let mut found: Vec<(bool, MondayItemId)> = Vec::with_capacity(items.len());
        for item in items {
            let id = parse_id(item.get("id"), "items[].id")?;
            let active = item
                .get("state")
                .and_then(Value::as_str)
                .is_none_or(|s| s == "active");
            found.push((!active, id));
        }
        // Stable: active ones first, otherwise in monday's order.
        found.sort_by_key(|(inactive, _)| *inactive);
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }

    /// One item with all its column values; None when monday does not return it.
    #[tracing::instrument(skip_all, fields(monday.board_id = tracing::field::Empty, monday.item_id = %item))]
    pub async fn get_item(
        &self,
        item: MondayItemId,
    ) -> Result<Option<ItemSnapshot>, ConnectorError> {
        let variables = json!({ "item_id": item.to_string() });
        let data = self.execute(documents::GET_ITEM, variables, None).await?;
        let Some(items) = list_of(&data, "items")? else {
            return Ok(None);
        };
        let Some(found) = items.iter().find(|i| {
            parse_id::<MondayItemId>(i.get("id"), "items[].id").is_ok_and(|id| id == item)
        }) else {
            return Ok(None);
        };
        let snapshot = item_snapshot(found)?;
        if let Some(board) = snapshot.board_id {
            tracing::Span::current().record("monday.board_id", tracing::field::display(board));
        }
        Ok(Some(snapshot))
    }

    /// One page of a board's active items with only `columns`: the first from
    /// `boards { items_page }` (no cursor), the next ones from `next_items_page`. An error on a
    /// continued walk that retrying cannot mend means Monday no longer knows the cursor (it
    /// expires 60 minutes after the walk began): it is answered as `FailureClass::NotFound`.
    #[tracing::instrument(skip_all, fields(monday.board_id = %board, monday.item_id = tracing::field::Empty))]
    pub async fn items_page(
        &self,
        board: BoardId,
        columns: &[String],
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ItemsPage, ConnectorError> {
        let page = match cursor {
            None => {
                let variables =
                    json!({ "board_id": board.to_string(), "limit": limit, "columns": columns });
                let data = self
                    .execute(documents::BOARD_ITEMS_PAGE, variables, None)
                    .await?;
                let boards = data.get("boards").and_then(Value::as_array);
                let found = boards.into_iter().flatten().find(|b| {
                    parse_id::<BoardId>(b.get("id"), "boards[].id").is_ok_and(|id| id == board)
                });
                let Some(found) = found else {
                    return Err(errors::unexpected(&format!("board {board} does not exist")));
                };
                found.get("items_page").cloned()
            }
            Some(cursor) => {
                let variables = json!({ "cursor": cursor, "limit": limit, "columns": columns });
                let data = self
                    .execute(documents::NEXT_ITEMS_PAGE, variables, None)
                    .await
                    .map_err(cursor_gone)?;
                data.get("next_items_page").cloned()
            }
        };
        let page = page
            .filter(|p| !p.is_null())
            .ok_or_else(|| errors::unexpected("the items page answered null"))?;
        let items = page
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| errors::unexpected("an items page without items"))?
            .iter()
            .map(item_snapshot)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ItemsPage {
            items,
            cursor: str_of(page.get("cursor")).filter(|c| !c.is_empty()),
        })
    }

    /// The labels of each status and dropdown column of `board` (from `settings_str`), by column
    /// id; `None` when the board does not exist.
    pub async fn board_column_labels(
        &self,
        board: BoardId,
    ) -> Result<Option<BTreeMap<String, Vec<String>>>, ConnectorError> {
        let Some(columns) = self
            .columns_of(documents::BOARD_COLUMN_SETTINGS, board)
            .await?
        else {
            return Ok(None);
        };
        let labels = columns
            .iter()
            .filter_map(|c| {
                let id = str_of(c.get("id"))?;
                let settings = str_of(c.get("settings_str"))?;
                Some((id, labels_of_settings(&settings)?))
            })
            .collect();
        Ok(Some(labels))
    }

    /// The board's columns (id, type), None when the board does not exist.
    #[tracing::instrument(skip_all, fields(monday.board_id = %board, monday.item_id = tracing::field::Empty))]
    pub async fn board_columns(
        &self,
        board: BoardId,
    ) -> Result<Option<Vec<(String, String)>>, ConnectorError> {
        let Some(columns) = self.columns_of(documents::BOARD_COLUMNS, board).await? else {
            return Ok(None);
        };
        let columns = columns
            .iter()
            .map(|c| {
                (
                    str_of(c.get("id")).unwrap_or_default(),
                    str_of(c.get("type")).unwrap_or_default(),
                )
            })
            .collect();
        Ok(Some(columns))
    }

    /// The non-null `columns` of `board` as `document` (a `boards(ids:) { id columns {…} }` query)
    /// reads them; None when the board does not exist.
    async fn columns_of(
        &self,
        document: &str,
        board: BoardId,
    ) -> Result<Option<Vec<Value>>, ConnectorError> {
        let variables = json!({ "board_id": board.to_string() });
        let data = self.execute(document, variables, None).await?;
        let Some(boards) = list_of(&data, "boards")? else {
            return Ok(None);
        };
        let found = boards
            .iter()
            .find(|b| parse_id::<BoardId>(b.get("id"), "boards[].id").is_ok_and(|id| id == board));
        Ok(found.map(|b| {
            let columns = b.get("columns").and_then(Value::as_array);
            columns
                .into_iter()
                .flatten()
                .filter(|c| !c.is_null())
                .cloned()
                .collect()
        }))
    }

    /// The webhooks of `board` (`webhooks(board_id:)`).
    pub async fn board_webhooks(
        &self,
        board: BoardId,
    ) -> Result<Vec<BoardWebhook>, ConnectorError> {
        let variables = json!({ "board_id": board.to_string() });
        let data = self
            .execute(documents::BOARD_WEBHOOKS, variables, None)
            .await?;
        let list = list_of(&data, "webhooks")?;
        Ok(list
            .into_iter()
            .flatten()
            .filter(|w| !w.is_null())
            .map(|w| BoardWebhook {
                id: str_of(w.get("id")).unwrap_or_default(),
                event: str_of(w.get("event")).unwrap_or_default(),
                config: str_of(w.get("config")),
            })
            .collect())
    }

    /// Registers a webhook of `event` on `board` to `url` (Monday first sends `url` a
    /// challenge); the new webhook's id.
    pub async fn create_webhook(
        &self,
        board: BoardId,
        url: &str,
        event: &str,
        idempotency_key: &str,
    ) -> Result<String, ConnectorError> {
        let variables = json!({ "board_id": board.to_string(), "url": url, "event": event });
        let data = self
            .execute(documents::CREATE_WEBHOOK, variables, Some(idempotency_key))
            .await?;
        data.get("create_webhook")
            .and_then(|w| str_of(w.get("id")))
            .ok_or_else(|| errors::unexpected("create_webhook answered no id"))
    }

    /// Creates column `id` of `column_type` titled `title` on `board`.
    pub async fn create_column(
        &self,
        board: BoardId,
        id: &str,
        title: &str,
        column_type: ColumnType,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError> {
        let variables = json!({
            "board_id": board.to_string(),
            "id": id,
            "title": title,
            "column_type": graphql_column_type(column_type),
        });
        let data = self
            .execute(documents::CREATE_COLUMN, variables, Some(idempotency_key))
            .await?;
        match data.get("create_column") {
            Some(v) if !v.is_null() => Ok(()),
            _ => Err(errors::unexpected("create_column answered null")),
        }
    }

    /// The id of the user the API token acts as (`me { id }`).
    pub async fn me(&self) -> Result<i64, ConnectorError> {
        let data = self.execute(documents::ME, json!({}), None).await?;
        str_of(data.get("me").and_then(|m| m.get("id")))
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| errors::unexpected("me.id is missing"))
    }
}

#[async_trait::async_trait]
impl MondayApi for MondayClient {
    async fn create_item(
        &self,
        board: BoardId,
        item_name: &str,
        columns: &ColumnValues,
        idempotency_key: &str,
    ) -> Result<MondayItemId, ConnectorError> {
        if !columns.creates_labels() {
            return MondayClient::create_item(self, board, item_name, &columns.0, idempotency_key)
                .await;
        }
        let document = documents::creating_labels(documents::CREATE_ITEM, "column_values");
        let variables = json!({
            "board_id": board.to_string(),
            "item_name": item_name,
            "column_values": columns.to_json_string(),
        });
        let data = self
            .execute(&document, variables, Some(idempotency_key))
            .await?;
        let item = data
            .get("create_item")
            .filter(|v| !v.is_null())
            .ok_or_else(|| errors::unexpected("create_item answered null"))?;
        parse_id(item.get("id"), "create_item.id")
    }

    async fn change_multiple_column_values(
        &self,
        board: BoardId,
        item: MondayItemId,
        columns: &ColumnValues,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError> {
        if !columns.creates_labels() {
            return MondayClient::change_multiple_column_values(
                self,
                board,
                item,
                &columns.0,
                idempotency_key,
            )
            .await;
        }
        let document =
            documents::creating_labels(documents::CHANGE_MULTIPLE_COLUMN_VALUES, "column_values");
        let variables = json!({
            "board_id": board.to_string(),
            "item_id": item.to_string(),
            "column_values": columns.to_json_string(),
        });
        let data = self
            .execute(&document, variables, Some(idempotency_key))
            .await?;
        match data.get("change_multiple_column_values") {
            Some(v) if !v.is_null() => Ok(()),
            _ => Err(errors::unexpected(
                "change_multiple_column_values answered null",
            )),
        }
    }

    async fn archive_item(
        &self,
        item: MondayItemId,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError> {
        MondayClient::archive_item(self, item, idempotency_key).await
    }

    async fn find_items_by_column(
        &self,
        board: BoardId,
        column_id: &str,
        value: &str,
    ) -> Result<Vec<MondayItemId>, ConnectorError> {
        MondayClient::find_items_by_column(self, board, column_id, value).await
    }

    async fn get_item(&self, item: MondayItemId) -> Result<Option<ItemSnapshot>, ConnectorError> {
        MondayClient::get_item(self, item).await
    }

    async fn board_columns(
        &self,
        board: BoardId,
    ) -> Result<Option<Vec<(String, String)>>, ConnectorError> {
        MondayClient::board_columns(self, board).await
    }

    async fn items_page(
        &self,
        board: BoardId,
        columns: &[String],
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ItemsPage, ConnectorError> {
        MondayClient::items_page(self, board, columns, cursor, limit).await
    }

    async fn me(&self) -> Result<i64, ConnectorError> {
        MondayClient::me(self).await
    }

    async fn mutate(
        &self,
        mutations: &[Mutation],
        idempotency_key: &str,
    ) -> Result<Batched, ConnectorError> {
        MondayClient::mutate(self, mutations, idempotency_key).await
    }

    async fn find_items_by_column_values(
        &self,
        board: BoardId,
        column_id: &str,
        values: &[String],
    ) -> Result<Vec<FoundItem>, ConnectorError> {
        MondayClient::find_items_by_column_values(self, board, column_id, values).await
    }

    async fn board_webhooks(&self, board: BoardId) -> Result<Vec<BoardWebhook>, ConnectorError> {
        MondayClient::board_webhooks(self, board).await
    }

    async fn create_webhook(
        &self,
        board: BoardId,
        url: &str,
        event: &str,
        idempotency_key: &str,
    ) -> Result<String, ConnectorError> {
        MondayClient::create_webhook(self, board, url, event, idempotency_key).await
    }

    async fn create_column(
        &self,
        board: BoardId,
        column: &NewColumn<'_>,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError> {
        MondayClient::create_column(
            self,
            board,
            column.id,
            column.title,
            column.column_type,
            idempotency_key,
        )
        .await
    }

    fn last_rate_limit(&self) -> Option<RateLimitState> {
        MondayClient::last_rate_limit(self)
    }
}
