//! The admin API of existing data: backfills, the review queue, drift scans.
//!
//! Owns: `POST/GET /api/v1/backfills[/{id}]`, `GET /api/v1/matches`,
//! `POST /api/v1/matches/{id}/resolve`, `POST/GET /api/v1/drift-scans[/{id}]`, and their wire
//! types (`*Response`). Handlers authenticate (`admin::Admin`), parse, call one `sync::scan`
//! use case, audit and answer; a started run is carried out in the background and polled.
//! May import: std, axum, serde, serde_json, tokio, crate::{domain, http, ledger, sync}.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;

use crate::domain::entity::{EntityKind, MondayItemId, NpdId};
use crate::domain::scan::{
    BackfillCounts, Candidate, DriftCounts, MatchStatus, Matched, Repaired, RunStatus, ScanKind,
    Scanned, Scope, Summary,
};
use crate::domain::state::AuditOutcome;
use crate::http::AppState;
use crate::http::admin::dto::rfc3339 as millis_to_rfc3339;
use crate::http::admin::{Admin, audited};
use crate::http::error::ApiError;
use crate::ledger::scans::{ReviewRow, RunRow};
use crate::sync::backfill::{ReviewChoice, ReviewError};
use crate::sync::push::Requester;
use crate::sync::scan::ScanError;

/// What the admin audit row of this call says (the middleware writes it).
async fn audit(
    _state: &AppState,
    admin: &Admin,
    action: &str,
    target: Option<&str>,
    outcome: AuditOutcome,
    detail: Option<&str>,
) {
    admin.acts(action, target);
    if outcome != AuditOutcome::Ok {
        admin.outcome(outcome, detail);
    }
}

pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    audited(OpenApiRouter::from(routes()), state)
}

fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/backfills",
            post(start_backfill).get(list_backfills),
        )
        .route("/api/v1/backfills/{id}", get(get_backfill))
        .route("/api/v1/matches", get(list_matches))
        .route("/api/v1/matches/{id}/resolve", post(resolve_match))
        .route(
            "/api/v1/drift-scans",
            post(start_drift_scan).get(list_drift_scans),
        )
        .route("/api/v1/drift-scans/{id}", get(get_drift_scan))
}

/// `POST /api/v1/backfills`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    #[serde(default = "all")]
    pub kind: String,
    #[serde(default)]
    pub dry_run: bool,
}

fn all() -> String {
    Scope::All.as_str().to_owned()
}

/// A run just started.
#[derive(Debug, Serialize)]
pub struct StartedResponse {
    pub id: i64,
    pub status: RunStatus,
}

/// `GET /api/v1/backfills/{id}`.
#[derive(Debug, Serialize)]
pub struct BackfillResponse {
    pub id: i64,
    pub kind: Scope,
    pub dry_run: bool,
    pub status: RunStatus,
    pub scanned: Scanned,
    pub matched: Matched,
    pub linked: u64,
    pub to_create_in_monday: u64,
    pub created_in_monday: u64,
    pub to_review: u64,
    pub unmatched_in_monday: u64,
    pub estimated_monday_calls: u64,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// `GET /api/v1/drift-scans/{id}`.
#[derive(Debug, Serialize)]
pub struct DriftScanResponse {
    pub id: i64,
    pub status: RunStatus,
    pub scanned: u64,
    pub in_sync: u64,
    pub repaired: Repaired,
    pub conflicts: u64,
    pub deleted: crate::domain::scan::Deleted,
    pub skipped: u64,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// A list of runs.
#[derive(Debug, Serialize)]
pub struct RunsResponse<T> {
    #[serde(flatten)]
    pub runs: T,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BackfillsList {
    pub backfills: Vec<BackfillResponse>,
}

#[derive(Debug, Serialize)]
pub struct DriftScansList {
    pub drift_scans: Vec<DriftScanResponse>,
}

/// One record of the review queue.
#[derive(Debug, Serialize)]
pub struct MatchResponse {
    pub id: i64,
    pub kind: EntityKind,
    pub npd_id: NpdId,
    pub status: MatchStatus,
    pub candidates: Vec<Candidate>,
    pub resolved_item: Option<MondayItemId>,
    pub resolved_by: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MatchesResponse {
    pub matches: Vec<MatchResponse>,
    pub next_cursor: Option<String>,
}

/// `?limit=N&cursor=C` (and `status` for matches).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

impl ListQuery {
    /// The limit (1..=500, default 100) and the cursor as the id it continues from.
    fn page(&self) -> Result<(i64, Option<i64>), ApiError> {
        let limit = match self.limit.as_deref() {
            None => 100,
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=500).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest("`limit` must be a number from 1 to 500".into())
                })?,
        };
        let cursor = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                ApiError::BadRequest("`cursor` is not a cursor this API gave".into())
            })?),
        };
        Ok((limit, cursor))
    }
}

impl From<&RunRow> for BackfillResponse {
    fn from(run: &RunRow) -> Self {
        let counts = match &run.summary {
            Summary::Backfill(c) => c.clone(),
            Summary::Drift(_) => BackfillCounts::default(),
        };
        BackfillResponse {
            id: run.id,
            kind: run.scope,
            dry_run: run.dry_run,
            status: run.status,
            scanned: counts.scanned,
            matched: counts.matched,
            linked: counts.linked,
            to_create_in_monday: counts.to_create_in_monday,
            created_in_monday: counts.created_in_monday,
            to_review: counts.to_review,
            unmatched_in_monday: counts.unmatched_in_monday,
            estimated_monday_calls: counts.estimated_monday_calls,
            error: run.error.clone(),
            started_at: millis_to_rfc3339(run.started_at),
            finished_at: run.finished_at.and_then(millis_to_rfc3339),
        }
    }
}

impl From<&RunRow> for DriftScanResponse {
    fn from(run: &RunRow) -> Self {
        let counts = match &run.summary {
            Summary::Drift(c) => c.clone(),
            Summary::Backfill(_) => DriftCounts::default(),
        };
        DriftScanResponse {
            id: run.id,
            status: run.status,
            scanned: counts.scanned,
            in_sync: counts.in_sync,
            repaired: counts.repaired,
            conflicts: counts.conflicts,
            deleted: counts.deleted,
            skipped: counts.skipped,
            error: run.error.clone(),
            started_at: millis_to_rfc3339(run.started_at),
            finished_at: run.finished_at.and_then(millis_to_rfc3339),
        }
    }
}

impl From<ReviewRow> for MatchResponse {
    fn from(r: ReviewRow) -> Self {
        MatchResponse {
            id: r.id,
            kind: r.entity_kind,
            npd_id: r.npd_id,
            status: r.status,
            candidates: r.candidates.0,
            resolved_item: r.resolved_item,
            resolved_by: r.resolved_by,
        }
    }
}

fn scan_error(e: ScanError) -> ApiError {
    match e {
        ScanError::NotConfigured(m) => ApiError::BadRequest(m),
        ScanError::Ledger(l) => ApiError::from(l),
        e @ ScanError::Remote { .. } => ApiError::BadGateway(e.to_string()),
    }
}

async fn start_backfill(
    State(state): State<AppState>,
    admin: Admin,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<StartedResponse>), ApiError> {
    let request: BackfillRequest = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadRequest(
            "body must be {\"kind\": \"contacts\"|\"organizations\"|\"all\", \"dry_run\": bool}"
                .into(),
        )
    })?;
    let scope: Scope = request.kind.parse().map_err(|_| {
        ApiError::BadRequest("`kind` must be contacts, organizations or all".into())
    })?;
    let id = state
        .scans
        .start_backfill(scope, request.dry_run)
        .await
        .map_err(scan_error)?;
    let scans = state.scans.clone();
    tokio::spawn(async move { scans.run_backfill(id).await });
    Ok(started(&state, &admin, "backfills.start", id).await)
}

/// Audits a started run and answers 202 `{"id", "status": "running"}`.
async fn started(
    state: &AppState,
    admin: &Admin,
    action: &str,
    id: i64,
) -> (StatusCode, Json<StartedResponse>) {
    let target = id.to_string();
    audit(
        state,
        admin,
        action,
        Some(&target),
        AuditOutcome::Queued,
        None,
    )
    .await;
    let status = RunStatus::Running;
    (StatusCode::ACCEPTED, Json(StartedResponse { id, status }))
}

/// Audits a look at one run; the run, or 404 naming `what`.
async fn found(
    state: &AppState,
    admin: &Admin,
    action: &str,
    (id, what): (i64, &str),
    run: Option<RunRow>,
) -> Result<RunRow, ApiError> {
    let outcome = if run.is_some() {
        AuditOutcome::Ok
    } else {
        AuditOutcome::NotFound
    };
    audit(state, admin, action, Some(&id.to_string()), outcome, None).await;
    run.ok_or_else(|| ApiError::NotFound(format!("no {what} {id}")))
}

async fn get_backfill(
    State(state): State<AppState>,
    admin: Admin,
    Path(raw_id): Path<String>,
) -> Result<Json<BackfillResponse>, ApiError> {
    let id = run_id(&raw_id, "backfill")?;
    let run = state.scans.backfill_status(id).await?;
    let run = found(&state, &admin, "backfills.get", (id, "backfill"), run).await?;
    Ok(Json(BackfillResponse::from(&run)))
}

async fn list_backfills(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<RunsResponse<BackfillsList>>, ApiError> {
    let (runs, next_cursor) = list_runs(&state, &admin, ScanKind::Backfill, &query).await?;
    let backfills = runs.iter().map(BackfillResponse::from).collect();
    let runs = BackfillsList { backfills };
    Ok(Json(RunsResponse { runs, next_cursor }))
}

async fn start_drift_scan(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<(StatusCode, Json<StartedResponse>), ApiError> {
    let scope = state
        .scans
        .drift_scope()
        .ok_or_else(|| ApiError::BadRequest("no Monday board is configured".into()))?;
    let id = state.scans.start_drift(scope).await.map_err(scan_error)?;
    let scans = state.scans.clone();
    tokio::spawn(async move { scans.run_drift(id).await });
    Ok(started(&state, &admin, "drift-scans.start", id).await)
}

async fn get_drift_scan(
    State(state): State<AppState>,
    admin: Admin,
    Path(raw_id): Path<String>,
) -> Result<Json<DriftScanResponse>, ApiError> {
    let id = run_id(&raw_id, "drift scan")?;
    let run = state.scans.drift_status(id).await?;
    let run = found(&state, &admin, "drift-scans.get", (id, "drift scan"), run).await?;
    Ok(Json(DriftScanResponse::from(&run)))
}

async fn list_drift_scans(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<RunsResponse<DriftScansList>>, ApiError> {
    let (runs, next_cursor) = list_runs(&state, &admin, ScanKind::Drift, &query).await?;
    let drift_scans = runs.iter().map(DriftScanResponse::from).collect();
    let runs = DriftScansList { drift_scans };
    Ok(Json(RunsResponse { runs, next_cursor }))
}

/// One page of runs, newest first (audited); the cursor is the last id given.
async fn list_runs(
    state: &AppState,
    admin: &Admin,
    scan: ScanKind,
    query: &ListQuery,
) -> Result<(Vec<RunRow>, Option<String>), ApiError> {
    let action = format!(
        "{}.list",
        if scan == ScanKind::Backfill {
            "backfills"
        } else {
            "drift-scans"
        }
    );
    audit(state, admin, &action, None, AuditOutcome::Ok, None).await;
    let (limit, cursor) = query.page()?;
    let mut runs = state
        .store
        .runs(scan, cursor.unwrap_or(i64::MAX), limit + 1)
        .await?;
    let more = runs.len() as i64 > limit;
    runs.truncate(usize::try_from(limit).unwrap_or(0));
    if scan == ScanKind::Backfill {
        for run in &mut runs {
            if let Some(fresh) = state.scans.backfill_status(run.id).await? {
                *run = fresh;
            }
        }
    }
    let next = more
        .then(|| runs.last().map(|r| r.id.to_string()))
        .flatten();
    Ok((runs, next))
}

async fn list_matches(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<MatchesResponse>, ApiError> {
    let status = match query.status.as_deref() {
        None => MatchStatus::Review,
        Some(s) => s.parse::<MatchStatus>().map_err(|_| {
            ApiError::BadRequest("`status` must be review, linked, created or ignored".into())
        })?,
    };
    let (limit, cursor) = query.page()?;
    let mut rows = state
        .scans
        .reviews(status, cursor.unwrap_or(0), limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    audit(&state, &admin, "matches.list", None, AuditOutcome::Ok, None).await;
    let matches = rows.into_iter().map(MatchResponse::from).collect();
    Ok(Json(MatchesResponse {
        matches,
        next_cursor,
    }))
}

/// `{"link": "<item id>"}` | `{"create": true}` | `{"ignore": true}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveMatchRequest {
    #[serde(default)]
    pub link: Option<MondayItemId>,
    #[serde(default)]
    pub create: Option<bool>,
    #[serde(default)]
    pub ignore: Option<bool>,
}

async fn resolve_match(
    State(state): State<AppState>,
    admin: Admin,
    Path(raw_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<MatchResponse>, ApiError> {
    let id = run_id(&raw_id, "match")?;
    let shape = "body must be {\"link\": \"<item id>\"}, {\"create\": true} or {\"ignore\": true}";
    let request: ResolveMatchRequest =
        serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest(shape.into()))?;
    let choice = match (request.link, request.create, request.ignore) {
        (Some(item), None, None) => ReviewChoice::Link(item),
        (None, Some(true), None) => ReviewChoice::Create,
        (None, None, Some(true)) => ReviewChoice::Ignore,
        _ => return Err(ApiError::BadRequest(shape.into())),
    };
    let by = Requester {
        actor: &admin.actor,
        request_id: admin.request_id.as_deref(),
    };
    let resolved = state.scans.resolve_review(id, choice, by).await;
    let outcome = if resolved.is_ok() {
        AuditOutcome::Resolved
    } else {
        AuditOutcome::Rejected
    };
    audit(
        &state,
        &admin,
        "matches.resolve",
        Some(&raw_id),
        outcome,
        None,
    )
    .await;
    let review = resolved.map_err(|e| match e {
        ReviewError::NotFound(_) => ApiError::NotFound(e.to_string()),
        ReviewError::AlreadyResolved(_) => ApiError::Conflict(e.to_string()),
        ReviewError::NotACandidate(_) => ApiError::BadRequest(e.to_string()),
        ReviewError::Gone(_) => ApiError::Conflict(e.to_string()),
        ReviewError::Scan(s) => scan_error(s),
        ReviewError::Ledger(l) => ApiError::from(l),
    })?;
    state.wake.dispatch.notify_one();
    Ok(Json(MatchResponse::from(review)))
}

fn run_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} id must be a number")))
}
