//! Batched calls: several mutations in one request (aliases), and many creates' npd_id lookups
//! in one `items_page_by_column_values`.
//!
//! Owns: `MondayClient::mutate` and `MondayClient::find_items_by_column_values`.
//! May import: std, serde_json, crate::{connectors, domain}.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::documents::{self, BatchKind};
use super::{MondayClient, errors, parse_id};
use crate::connectors::{Batched, ConnectorError, FoundItem, Mutation};
use crate::domain::entity::BoardId;

/// Most items one lookup page returns.
const PAGE_LIMIT: usize = 500;

impl MondayClient {
    /// Sends `mutations` as one request (aliases `m0`, `m1`, ...) under `idempotency_key`.
    #[tracing::instrument(skip_all, fields(monday.batch = mutations.len()))]
    pub async fn mutate(
        &self,
        mutations: &[Mutation],
        idempotency_key: &str,
    ) -> Result<Batched, ConnectorError> {
        let kinds: Vec<BatchKind> = mutations.iter().map(kind_of).collect();
        let mut variables = Map::new();
        for (i, mutation) in mutations.iter().enumerate() {
            bind(&mut variables, i, mutation);
        }
        let mut document = documents::batch(&kinds);
        for (i, mutation) in mutations.iter().enumerate() {
            if let Mutation::Create { columns, .. } | Mutation::Update { columns, .. } = mutation
                && columns.creates_labels()
            {
                document = documents::creating_labels(&document, &format!("c{i}"));
            }
        }
        let answer = self
            .post(&document, Value::Object(variables), Some(idempotency_key))
            .await
            .and_then(|a| errors::interpret_batch(a.status, &a.headers, &a.body, kinds.len()));
        self.count(&document, answer.as_ref().err());
        let (data, errors) = answer?;
        let results = errors
            .into_iter()
            .enumerate()
            .map(|(i, error)| match error {
                Some(e) => Err(e),
                None => parse_id(data.get(&format!("m{i}")).and_then(|m| m.get("id")), "m.id"),
            })
            .collect();
        let complexity_left = data.get("complexity").and_then(|c| {
            let after = c.get("after")?.as_u64()?;
            let reset = c.get("reset_in_x_seconds")?.as_u64()?;
            Some((after, Duration::from_secs(reset)))
        });
        Ok(Batched {
            results,
            complexity_left,
        })
    }

    /// The items whose column `column_id` holds one of `values`, with that column's text.
    #[tracing::instrument(skip_all, fields(monday.board_id = %board, monday.values = values.len()))]
    pub async fn find_items_by_column_values(
        &self,
        board: BoardId,
        column_id: &str,
        values: &[String],
    ) -> Result<Vec<FoundItem>, ConnectorError> {
        let mut found = Vec::new();
        let variables =
            json!({"board_id": board.to_string(), "column_id": column_id, "values": values});
        let mut page = self
            .execute(documents::ITEMS_BY_COLUMN_VALUES, variables, None)
            .await?;
        loop {
            let (items, cursor) = read_page(&page)?;
            found.extend(items);
            let Some(cursor) = cursor else {
                return Ok(found);
            };
            let variables =
                json!({"board_id": board.to_string(), "cursor": cursor, "column_id": column_id});
            page = self
                .execute(documents::ITEMS_BY_COLUMN_VALUES_NEXT, variables, None)
                .await?;
        }
    }
}

fn kind_of(mutation: &Mutation) -> BatchKind {
    match mutation {
        Mutation::Create { .. } => BatchKind::Create,
        Mutation::Update { .. } => BatchKind::Update,
        Mutation::Archive { .. } => BatchKind::Archive,
    }
}

/// The variables of mutation `i`, named as `documents::batch` declares them.
fn bind(variables: &mut Map<String, Value>, i: usize, mutation: &Mutation) {
    let mut set = |name: &str, value: Value| {
        variables.insert(format!("{name}{i}"), value);
    };
    match mutation {
        Mutation::Create {
            board,
            item_name,
            columns,
        } => {
            set("b", Value::String(board.to_string()));
            set("n", Value::String(item_name.clone()));
            set("c", Value::String(columns.to_json_string()));
        }
        Mutation::Update {
            board,
            item,
            columns,
        } => {
            set("b", Value::String(board.to_string()));
            set("i", Value::String(item.to_string()));
            set("c", Value::String(columns.to_json_string()));
        }
        Mutation::Archive { item } => set("i", Value::String(item.to_string())),
    }
}

/// The items of one `items_page_by_column_values` answer and its cursor.
type Page = (Vec<FoundItem>, Option<String>);

fn read_page(data: &Map<String, Value>) -> Result<Page, ConnectorError> {
    let page = data
        .get("items_page_by_column_values")
        .ok_or_else(|| errors::unexpected("items_page_by_column_values is missing"))?;
    let items = page
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| errors::unexpected("items_page_by_column_values without items"))?;
    let mut found = Vec::with_capacity(items.len().min(PAGE_LIMIT));
    for item in items {
        let active = item
            .get("state")
            .and_then(Value::as_str)
            .is_none_or(|s| s == "active");
        let id = parse_id(item.get("id"), "items[].id")?;
        let text = item
            .get("column_values")
            .and_then(Value::as_array)
            .and_then(|cvs| cvs.first())
            .and_then(|cv| cv.get("text"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        found.push(FoundItem { id, text, active });
    }
    let cursor = page
        .get("cursor")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((found, cursor))
}
