//! The admin API's wire types: every request and answer body and query, typed, so the OpenAPI
//! document is generated from the same types the handlers answer with.
//!
//! Owns: the `*Response` bodies, the views of ledger rows they hold (`JobView`, `ConflictView`,
//! ...), the queries (`PushQuery`, `PageQuery`, `ConflictQuery`) and `ResolveRequest`; and the
//! conversions from ledger rows. Times are RFC 3339 strings, ids of NPD and Monday strings.
//! May import: std, serde, serde_json, time, utoipa, crate::{domain, ledger, sync}.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::budget::Remaining;
use crate::domain::entity::EntityKind;
use crate::ledger::admin::AuditRow;
use crate::ledger::conflicts::ConflictRow;
use crate::ledger::history::HistoryRow;
use crate::ledger::jobs::{DeadLetterRow, JobRow};
use crate::ledger::left_out::LeftOutRow;
use crate::sync::admin::SyncStatus;

/// Unix milliseconds as RFC 3339.
pub fn rfc3339(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

/// Which record an answer is about: `contact_id` or `organization_id`, as the route's kind.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct RecordId {
    /// The contact's NPD id (on contact routes).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub contact_id: Option<String>,
    /// The organization's NPD id (on organization routes).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub organization_id: Option<String>,
}

impl RecordId {
    pub fn of(kind: EntityKind, id: String) -> Self {
        match kind {
            EntityKind::Contact => RecordId {
                contact_id: Some(id),
                ..RecordId::default()
            },
            EntityKind::Organization => RecordId {
                organization_id: Some(id),
                ..RecordId::default()
            },
        }
    }
}

/// `?wait=true`: wait (at most 30 s, and within the request timeout) for the push's outcome.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PushQuery {
    #[param(value_type = Option<bool>)]
    pub wait: Option<String>,
}

/// A forced push's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushResponse {
    #[serde(flatten)]
    pub id: RecordId,
    /// False when nothing was queued (`sync_enabled` is false in NPD).
    pub sync_triggered: bool,
    pub message: String,
    /// The Monday item, when linked (with `wait`: as it is when the wait ends).
    pub monday_id: Option<String>,
    /// With `wait`: `synced`, `failed` or `pending`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(synced|failed|pending)$")]
    pub outcome: Option<String>,
}

/// One outbox job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    /// `monday` or `npd`.
    pub target: String,
    pub operation: String,
    pub state: String,
    pub attempts: i64,
    /// The job's real limit (a replay raises it by a full set).
    pub max_attempts: i64,
    pub next_attempt_at: Option<String>,
    /// `admin`, `live`, `drift` or `backfill`: who goes first when the Monday budget is short.
    pub priority: String,
    pub last_error: Option<String>,
    pub created_at: Option<String>,
}

impl From<&JobRow> for JobView {
    fn from(j: &JobRow) -> Self {
        JobView {
            id: j.id,
            target: j.target.to_string(),
            operation: j.operation.to_string(),
            state: j.state.to_string(),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            next_attempt_at: rfc3339(j.next_attempt_at),
            priority: j.priority.as_str().to_owned(),
            last_error: j.last_error.clone(),
            created_at: rfc3339(j.created_at),
        }
    }
}

/// A dead letter: the dead job and the entity it belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    #[serde(flatten)]
    pub job: JobView,
    /// `contact` or `organization`.
    pub kind: String,
    #[schema(format = Uuid)]
    pub npd_id: Option<String>,
    pub monday_id: Option<String>,
}

impl From<&DeadLetterRow> for DeadLetterView {
    fn from(d: &DeadLetterRow) -> Self {
        DeadLetterView {
            job: JobView::from(&d.job),
            kind: d.kind.to_string(),
            npd_id: d.npd_id.map(|id| id.to_string()),
            monday_id: d.monday_item_id.map(|id| id.to_string()),
        }
    }
}

/// One conflict.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictView {
    pub id: i64,
    pub entity_id: i64,
    pub field: String,
    pub base: Option<String>,
    pub npd: Option<String>,
    pub monday: Option<String>,
    pub policy: String,
    /// `open` or `resolved`.
    pub status: String,
    pub resolution: Option<String>,
    pub resolved_value: Option<String>,
    pub resolved_by: Option<String>,
    pub opened_at: Option<String>,
    pub resolved_at: Option<String>,
}

impl From<&ConflictRow> for ConflictView {
    fn from(c: &ConflictRow) -> Self {
        ConflictView {
            id: c.id,
            entity_id: c.entity_id,
            field: c.field.clone(),
            base: c.base_value.clone(),
            npd: c.npd_value.clone(),
            monday: c.monday_value.clone(),
            policy: c.policy.to_string(),
            status: c.status.to_string(),
            resolution: c.resolution.map(|r| r.to_string()),
            resolved_value: c.resolved_value.clone(),
            resolved_by: c.resolved_by.clone(),
            opened_at: rfc3339(c.opened_at),
            resolved_at: c.resolved_at.and_then(rfc3339),
        }
    }
}

/// One history entry: what happened and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    pub at: Option<String>,
    pub kind: String,
    pub reason: String,
    /// The decision per field, or what a call sent and got.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub inbox_event_id: Option<i64>,
    pub job_id: Option<i64>,
}

impl From<&HistoryRow> for HistoryView {
    fn from(h: &HistoryRow) -> Self {
        HistoryView {
            at: rfc3339(h.at),
            kind: h.kind.to_string(),
            reason: h.reason.clone(),
            detail: h
                .detail
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok()),
            inbox_event_id: h.inbox_event_id,
            job_id: h.job_id,
        }
    }
}

/// A value left out of a write because it cannot be written to that side (the other fields
/// still synced): the latest per field and direction, gone once the field writes fine.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeftOutView {
    pub field: String,
    /// The value as the gateway read it.
    pub value: String,
    /// Why it cannot be written, and what to do.
    pub reason: String,
    /// `national_phone`, `invalid_phone`, ...
    pub reason_code: String,
    /// `to_monday` or `to_npd`.
    pub direction: String,
    pub at: Option<String>,
}

impl From<&LeftOutRow> for LeftOutView {
    fn from(l: &LeftOutRow) -> Self {
        LeftOutView {
            field: l.field.clone(),
            value: l.value.clone(),
            reason: l.reason.explain().to_owned(),
            reason_code: l.reason.to_string(),
            direction: format!("to_{}", l.direction),
            at: rfc3339(l.at),
        }
    }
}

/// The entity's link to its Monday item.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    pub monday_id: Option<String>,
    pub board_id: Option<String>,
}

/// Writes of the gateway in flight to each side.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingView {
    pub npd: Option<String>,
    pub monday: Option<String>,
}

/// One field's merge state.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldView {
    /// The last value both sides agreed on.
    pub base: Option<String>,
    pub npd: Option<String>,
    pub monday: Option<String>,
    pub pending: PendingView,
}

/// `GET …/sync`: status, link, field states, jobs, conflicts and the last 50 history entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStatusResponse {
    #[serde(flatten)]
    pub id: RecordId,
    pub status: String,
    pub last_error: Option<String>,
    pub sync_enabled: bool,
    pub link: LinkView,
    pub npd_version: Option<i64>,
    /// What remains of the Monday budget: while it is spent, Monday jobs wait (events are still
    /// accepted).
    pub monday_budget: BudgetView,
    pub fields: BTreeMap<String, FieldView>,
    pub pending_jobs: Vec<JobView>,
    pub dead_jobs: Vec<JobView>,
    pub open_conflicts: Vec<ConflictView>,
    /// Newest first.
    pub history: Vec<HistoryView>,
    /// Values left out of the writes because they cannot be written (the other fields synced).
    pub left_out: Vec<LeftOutView>,
}

/// What remains of the account's Monday budget now.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetView {
    /// Requests left in the current minute window.
    pub minute: u64,
    /// Complexity points left in the current minute window.
    pub complexity: u64,
    /// Calls left today (UTC); null when there is no daily cap.
    pub daily: Option<u64>,
}

impl From<Remaining> for BudgetView {
    fn from(r: Remaining) -> Self {
        BudgetView {
            minute: r.minute,
            complexity: r.complexity,
            daily: r.daily,
        }
    }
}

impl SyncStatusResponse {
    pub fn new(id: RecordId, s: &SyncStatus, budget: Remaining) -> Self {
        let e = &s.entity;
        let fields = s.fields.iter().map(|(f, st)| {
            let view = FieldView {
                base: st.base.clone(),
                npd: st.npd.clone(),
                monday: st.monday.clone(),
                pending: PendingView {
                    npd: st.pending_npd.as_ref().and_then(|p| p.value.clone()),
                    monday: st.pending_monday.as_ref().and_then(|p| p.value.clone()),
                },
            };
            (f.clone(), view)
        });
        SyncStatusResponse {
            id,
            status: e.status.to_string(),
            last_error: e.last_error.clone(),
            sync_enabled: e.sync_enabled,
            link: LinkView {
                monday_id: e.monday_item_id.map(|i| i.to_string()),
                board_id: e.board_id.map(|b| b.to_string()),
            },
            npd_version: e.npd_version,
            monday_budget: BudgetView::from(budget),
            fields: fields.collect(),
            pending_jobs: s.open_jobs.iter().map(JobView::from).collect(),
            dead_jobs: s.dead_jobs.iter().map(JobView::from).collect(),
            open_conflicts: s.conflicts.iter().map(ConflictView::from).collect(),
            history: s.history.iter().map(HistoryView::from).collect(),
            left_out: s.left_out.iter().map(LeftOutView::from).collect(),
        }
    }
}

/// `limit` (1 to 500, default 100) and `cursor` (from the previous page's `next_cursor`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Opaque: the `next_cursor` of the page before.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
}

/// `GET /api/v1/conflicts`: the page query and the status.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConflictQuery {
    /// `open` (default) or `resolved`.
    #[param(pattern = "^(open|resolved)$")]
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Opaque: the `next_cursor` of the page before.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
}

/// A page of dead letters, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLettersResponse {
    pub dead_letters: Vec<DeadLetterView>,
    /// Null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of conflicts, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictsResponse {
    pub conflicts: Vec<ConflictView>,
    /// Null on the last page.
    pub next_cursor: Option<String>,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub at: Option<String>,
    /// The token's name, `bootstrap`, or `unknown` for a refused authentication.
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
}

impl From<&AuditRow> for AuditView {
    fn from(a: &AuditRow) -> Self {
        AuditView {
            at: rfc3339(a.at),
            actor: a.actor.clone(),
            action: a.action.clone(),
            target: a.target.clone(),
            outcome: a.outcome.to_string(),
            request_id: a.request_id.clone(),
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditResponse {
    pub entries: Vec<AuditView>,
    /// Null on the last page.
    pub next_cursor: Option<String>,
}

/// A replayed dead letter.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResponse {
    pub id: i64,
    pub replayed: bool,
}

/// The side whose value settles a conflict.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TakeSide {
    Npd,
    Monday,
}

/// `{"take": "npd" | "monday"}` or `{"value": "…" | null}` (null clears the field).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ResolveRequest {
    Take(TakeBody),
    Value(ValueBody),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakeBody {
    pub take: TakeSide,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueBody {
    /// Required; null clears the field on both sides.
    #[serde(deserialize_with = "present")]
    #[schema(required = true)]
    pub value: Option<String>,
}

/// A field that must be present, null or not.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// A settled conflict.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResolveResponse {
    pub conflict: ConflictView,
    /// The value chosen, canonical (null: cleared).
    pub value: Option<String>,
    /// The sides it is being written to (`npd`, `monday`).
    pub written_to: Vec<String>,
}
