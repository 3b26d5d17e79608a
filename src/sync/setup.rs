//! Board set-up (`monday setup`): make a board ready for the gateway, changing nothing twice.
//!
//! Owns: `plan` (pure: the board's columns and webhooks against the mapping: which mapped
//! columns to create with the mapping's ids and types, which exist, which exist with another type
//! and are only reported, never changed; which of the synced webhook events to register at the
//! gateway's URL), `read_plan` (reads the board through `MondayApi`), `apply` (creates what the
//! plan says, in order, one idempotency key per step), and `webhook_url` (the URL Monday is
//! given; its printable form never shows the path token). A second run finds everything present
//! and plans nothing. Monday does not say where a webhook points, so a webhook of the same event
//! already on the board counts as present (its id is shown so a person can check it).
//! May import: std, url, uuid, secrecy, crate::{config, connectors, domain}.

use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::connectors::monday::{BoardWebhook, graphql_column_type};
use crate::connectors::{ConnectorError, MondayApi, NewColumn};
use crate::domain::entity::{BoardId, EntityKind};
use crate::domain::mapping::{ColumnType, EntityMapping};

/// The webhook events the gateway syncs from: what `monday setup` registers on each board.
pub const WEBHOOK_EVENTS: [&str; 6] = [
    "create_item",
    "change_column_value",
    "change_name",
    "item_archived",
    "item_deleted",
    "item_restored",
];

/// Monday's limit on a webhook URL, in characters.
const MAX_URL_CHARS: usize = 255;

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A mapped column the board lacks: created with the mapping's id and type.
    CreateColumn {
        id: String,
        title: String,
        column_type: ColumnType,
    },
    /// A mapped column that exists with its type.
    ColumnPresent { id: String, column_type: ColumnType },
    /// A mapped column of another type: reported, never changed.
    ColumnMistyped {
        id: String,
        found: String,
        wanted: ColumnType,
    },
    /// A synced event with no webhook on the board: registered at the gateway's URL.
    CreateWebhook { event: &'static str },
    /// A synced event that already has a webhook on the board.
    WebhookPresent { event: &'static str, id: String },
}

impl Step {
    /// Whether applying the plan changes the board for this step.
    pub fn is_change(&self) -> bool {
        matches!(self, Step::CreateColumn { .. } | Step::CreateWebhook { .. })
    }

    /// The step as a line of the printed plan (`url` is the printable webhook URL).
    pub fn describe(&self, url: &str) -> String {
        match self {
            Step::CreateColumn {
                id, column_type, ..
            } => format!("column {id} ({column_type}): create"),
            Step::ColumnPresent { id, column_type } => {
                format!("column {id} ({column_type}): present")
            }
            Step::ColumnMistyped { id, found, wanted } => format!(
                "column {id}: PROBLEM: it is of type {found}, the mapping says {wanted}; not \
                 changed (fix the board or the mapping)"
            ),
            Step::CreateWebhook { event } => format!("webhook {event}: register at {url}"),
            Step::WebhookPresent { event, id } => {
                format!("webhook {event}: present (id {id}; Monday does not show where it points)")
            }
        }
    }
}

/// What `monday setup` will do (or did) to one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub kind: EntityKind,
    pub board: BoardId,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn changes(&self) -> usize {
        self.steps.iter().filter(|s| s.is_change()).count()
    }

    pub fn problems(&self) -> usize {
        let mistyped = |s: &&Step| matches!(s, Step::ColumnMistyped { .. });
        self.steps.iter().filter(mistyped).count()
    }
}

/// Why a board could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Something is missing from the configuration; the message says what.
    #[error("{0}")]
    NotConfigured(String),
    #[error("board {0} does not exist on Monday (or the token cannot see it)")]
    BoardNotFound(BoardId),
    #[error("cannot read the board from Monday: {0}")]
    Monday(#[from] ConnectorError),
}

/// The URL a webhook is registered at, and the same URL as it may be printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// Holds the path token: for Monday only.
    pub secret: String,
    /// The path token replaced by `{MONDAY_WEBHOOK_TOKEN}`.
    pub shown: String,
}

/// `{GATEWAY_PUBLIC_URL}/webhooks/monday/{token}` when `MONDAY_WEBHOOK_TOKEN` is set (webhooks
/// made with a personal API token are unsigned), else `{GATEWAY_PUBLIC_URL}/webhooks/monday`
/// (signed deliveries, `MONDAY_SIGNING_SECRET`).
pub fn webhook_url(settings: &Settings) -> Result<WebhookUrl, SetupError> {
    let missing = |m: &str| SetupError::NotConfigured(m.to_owned());
    let public = settings.http.public_url.as_deref().ok_or_else(|| {
        missing("GATEWAY_PUBLIC_URL is not set: Monday needs the gateway's external URL")
    })?;
    let mut url = url::Url::parse(public)
        .map_err(|e| missing(&format!("GATEWAY_PUBLIC_URL is not a URL: {e}")))?;
    let token = settings.monday.webhook_token.as_ref();
    if token.is_none() && settings.monday.signing_secret.is_none() {
        return Err(missing(
            "neither MONDAY_WEBHOOK_TOKEN nor MONDAY_SIGNING_SECRET is set: the gateway would \
             refuse every delivery",
        ));
    }
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/webhooks/monday"));
    let shown = match token {
        Some(_) => format!("{url}/{{MONDAY_WEBHOOK_TOKEN}}"),
        None => url.to_string(),
    };
    if let Some(token) = token
        && let Ok(mut segments) = url.path_segments_mut()
    {
        segments.push(token.expose_secret());
    }
    let secret = url.to_string();
    if secret.chars().count() > MAX_URL_CHARS {
        return Err(missing(&format!(
            "the webhook URL is longer than Monday's {MAX_URL_CHARS} characters"
        )));
    }
    Ok(WebhookUrl { secret, shown })
}

/// The columns `mapping` needs on its board: the npd id column (text), then every field's.
pub fn wanted_columns(mapping: &EntityMapping) -> Vec<(String, String, ColumnType)> {
    let id = &mapping.npd_id_column;
    let mut wanted = vec![(id.clone(), "NPD id".to_owned(), ColumnType::Text)];
    wanted.extend(
        mapping
            .fields
            .iter()
            .map(|(field, column)| (column.column.clone(), title_of(field), column.column_type)),
    );
    wanted
}

/// A column title from an NPD field name: `role_title` is "Role title".
fn title_of(field: &str) -> String {
    let words = field.replace('_', " ");
    let mut chars = words.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The plan for a board with `columns` (id, GraphQL type) and `webhooks`.
pub fn plan(
    kind: EntityKind,
    board: BoardId,
    mapping: &EntityMapping,
    columns: &[(String, String)],
    webhooks: &[BoardWebhook],
) -> Plan {
    let mut steps = Vec::new();
    for (id, title, wanted) in wanted_columns(mapping) {
        steps.push(match columns.iter().find(|(c, _)| *c == id) {
            None => Step::CreateColumn {
                id,
                title,
                column_type: wanted,
            },
            Some((_, found)) if found == graphql_column_type(wanted) => Step::ColumnPresent {
                id,
                column_type: wanted,
            },
            Some((_, found)) => Step::ColumnMistyped {
                id,
                found: found.clone(),
                wanted,
            },
        });
    }
    for event in WEBHOOK_EVENTS {
        let present = webhooks
            .iter()
            .find(|w| w.event == event && w.config.as_deref().is_none_or(str::is_empty));
        steps.push(match present {
            Some(w) => Step::WebhookPresent {
                event,
                id: w.id.clone(),
            },
            None => Step::CreateWebhook { event },
        });
    }
    Plan { kind, board, steps }
}

/// Reads the board and plans its set-up.
pub async fn read_plan(
    api: &dyn MondayApi,
    kind: EntityKind,
    board: BoardId,
    mapping: &EntityMapping,
) -> Result<Plan, SetupError> {
    let columns = api
        .board_columns(board)
        .await?
        .ok_or(SetupError::BoardNotFound(board))?;
    let webhooks = api.board_webhooks(board).await?;
    Ok(plan(kind, board, mapping, &columns, &webhooks))
}

/// Applies every change of `plan`, in order, each with an idempotency key of its own; the
/// changes with their outcome. A failed step does not stop the others.
pub async fn apply(
    api: &dyn MondayApi,
    plan: &Plan,
    url: &WebhookUrl,
) -> Vec<(Step, Result<(), ConnectorError>)> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let key = |what: &str| format!("npd-monday-gateway:setup:{run}:{}:{what}", plan.board);
    let mut done = Vec::new();
    for step in plan.steps.iter().filter(|s| s.is_change()) {
        let result = match step {
            Step::CreateColumn {
                id,
                title,
                column_type,
            } => {
                let column = NewColumn {
                    id,
                    title,
                    column_type: *column_type,
                };
                let key = key(&format!("column:{id}"));
                api.create_column(plan.board, &column, &key).await
            }
            Step::CreateWebhook { event } => {
                let key = key(&format!("webhook:{event}"));
                let created = api.create_webhook(plan.board, &url.secret, event, &key);
                created.await.map(drop)
            }
            _ => Ok(()),
        };
        done.push((step.clone(), result));
    }
    done
}

#[cfg(test)]
mod tests;
