//! The admin API of existing data: backfills, the review queue, drift scans.
//!
//! Owns: `POST/GET /api/v1/backfills[/{id}]`, `GET /api/v1/matches`,
//! `POST /api/v1/matches/{id}/resolve`, `POST/GET /api/v1/drift-scans[/{id}]`, and their wire
//! types (`*Response`, documented for `/openapi.json` as `http::admin` documents its own). Handlers
//! authenticate (`admin::Admin`), parse, call one `sync::scan` use case, audit and answer; a
//! started run is carried out in the background and polled. The review queue's list and
//! resolution (`matches_page`, `settle_review`) and `list_runs` are shared with the console.
//! May import: std, axum, serde, serde_json, tokio, utoipa, utoipa-axum,
//! crate::{domain, http, ledger, sync}.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::entity::{EntityKind, MondayItemId, NpdId};
use crate::domain::scan::{
    BackfillCounts, Candidate, DriftCounts, MatchStatus, RunStatus, ScanKind, Scope, Summary,
};
use crate::domain::state::AuditOutcome;
use crate::http::AppState;
use crate::http::admin::dto::{PageQuery, rfc3339 as millis_to_rfc3339};
use crate::http::admin::{Admin, ProblemQuery, audited, json_body, page, parse_number, split_page};
use crate::http::error::{AdminProblems, ApiError, Problem, RawBody};
use crate::ledger::scans::{ReviewRow, RunRow};
use crate::sync::backfill::{ReviewChoice, ReviewError};
use crate::sync::push::Requester;
use crate::sync::scan::ScanError;

pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(start_backfill, list_backfills))
        .routes(routes!(get_backfill))
        .routes(routes!(list_matches))
        .routes(routes!(resolve_match))
        .routes(routes!(start_drift_scan, list_drift_scans))
        .routes(routes!(get_drift_scan));
    audited(routes, state)
}

/// `POST /api/v1/backfills`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// `contacts`, `organizations` or `all` (the default: every kind with a board).
    #[serde(default = "all")]
    #[schema(pattern = "^(contacts|organizations|all)$", default = "all")]
    pub kind: String,
    /// Read, match and count, but write and send nothing.
    #[serde(default)]
    pub dry_run: bool,
}

fn all() -> String {
    Scope::All.as_str().to_owned()
}

/// A run just started.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedResponse {
    pub id: i64,
    #[schema(value_type = String, pattern = "^running$")]
    pub status: RunStatus,
}

/// `GET /api/v1/backfills/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillResponse {
    pub id: i64,
    #[schema(value_type = String, pattern = "^(contacts|organizations|all)$")]
    pub kind: Scope,
    pub dry_run: bool,
    #[schema(value_type = String, pattern = "^(running|done|failed)$")]
    pub status: RunStatus,
    #[serde(flatten)]
    pub counts: BackfillCounts,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// `GET /api/v1/drift-scans/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftScanResponse {
    pub id: i64,
    #[schema(value_type = String, pattern = "^(running|done|failed)$")]
    pub status: RunStatus,
    #[serde(flatten)]
    pub counts: DriftCounts,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// A page of backfills, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillsResponse {
    pub backfills: Vec<BackfillResponse>,
    pub next_cursor: Option<String>,
}

/// A page of drift scans, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftScansResponse {
    pub drift_scans: Vec<DriftScanResponse>,
    pub next_cursor: Option<String>,
}

/// One record of the review queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct MatchResponse {
    pub id: i64,
    #[schema(value_type = String, pattern = "^(contact|organization)$")]
    pub kind: EntityKind,
    #[schema(value_type = uuid::Uuid)]
    pub npd_id: NpdId,
    #[schema(value_type = String, pattern = "^(review|linked|created|ignored)$")]
    pub status: MatchStatus,
    pub candidates: Vec<Candidate>,
    #[schema(value_type = Option<String>, pattern = "^[0-9]+$")]
    pub resolved_item: Option<MondayItemId>,
    pub resolved_by: Option<String>,
}

/// A page of the review queue, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MatchesResponse {
    pub matches: Vec<MatchResponse>,
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/matches`: the status and the page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MatchQuery {
    /// `review` (default), `linked`, `created` or `ignored`.
    #[param(pattern = "^(review|linked|created|ignored)$")]
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Opaque: the `next_cursor` of the page before.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
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
            counts,
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
            counts,
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

#[utoipa::path(
    post, path = "/api/v1/backfills", tag = "admin",
    summary = "Start a backfill: read both sides, match, link, create (or, dry, only count)",
    request_body(content = BackfillRequest, content_type = "application/json"),
    responses(
        (status = 202, body = StartedResponse, description = "Started; poll `GET /api/v1/backfills/{id}`"),
        AdminProblems,
        (status = 502, body = Problem, content_type = "application/problem+json", description = "A side could not be read to start the run"),
    ),
    security(("adminToken" = []))
)]
async fn start_backfill(
    State(state): State<AppState>,
    admin: Admin,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<StartedResponse>), ApiError> {
    admin.acts("backfills.start", None);
    let shape =
        "body must be {\"kind\": \"contacts\"|\"organizations\"|\"all\", \"dry_run\": bool}";
    let request: BackfillRequest = json_body(&body, shape, &["kind", "dry_run"])?;
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
    Ok(started(&admin, "backfills.start", id))
}

/// Audits a started run and answers 202 `{"id", "status": "running"}`.
fn started(admin: &Admin, action: &str, id: i64) -> (StatusCode, Json<StartedResponse>) {
    admin.acts(action, Some(&id.to_string()));
    admin.outcome(AuditOutcome::Queued, None);
    let status = RunStatus::Running;
    (StatusCode::ACCEPTED, Json(StartedResponse { id, status }))
}

/// Audits a look at one run; the run, or 404 naming `what`.
fn found(
    admin: &Admin,
    action: &str,
    (id, what): (i64, &str),
    run: Option<RunRow>,
) -> Result<RunRow, ApiError> {
    admin.acts(action, Some(&id.to_string()));
    run.ok_or_else(|| ApiError::NotFound(format!("no {what} {id}")))
}

#[utoipa::path(
    get, path = "/api/v1/backfills/{id}", tag = "admin",
    summary = "A backfill's progress and counts",
    params(("id" = i64, Path, description = "The backfill's id")),
    responses((status = 200, body = BackfillResponse, description = "The run"), AdminProblems),
    security(("adminToken" = []))
)]
async fn get_backfill(
    State(state): State<AppState>,
    admin: Admin,
    Path(raw_id): Path<String>,
) -> Result<Json<BackfillResponse>, ApiError> {
    admin.acts("backfills.get", None);
    let id = parse_number("backfill", &raw_id)?;
    let run = state.scans.backfill_status(id).await?;
    let run = found(&admin, "backfills.get", (id, "backfill"), run)?;
    Ok(Json(BackfillResponse::from(&run)))
}

#[utoipa::path(
    get, path = "/api/v1/backfills", tag = "admin",
    summary = "Backfills, newest first",
    params(PageQuery),
    responses((status = 200, body = BackfillsResponse, description = "A page of backfills"), AdminProblems),
    security(("adminToken" = []))
)]
async fn list_backfills(
    State(state): State<AppState>,
    admin: Admin,
    ProblemQuery(query): ProblemQuery<PageQuery>,
) -> Result<Json<BackfillsResponse>, ApiError> {
    admin.acts("backfills.list", None);
    let (runs, next_cursor) = list_runs(&state, ScanKind::Backfill, &query).await?;
    let backfills = runs.iter().map(BackfillResponse::from).collect();
    Ok(Json(BackfillsResponse {
        backfills,
        next_cursor,
    }))
}

#[utoipa::path(
    post, path = "/api/v1/drift-scans", tag = "admin",
    summary = "Start a drift scan of every configured board",
    responses(
        (status = 202, body = StartedResponse, description = "Started; poll `GET /api/v1/drift-scans/{id}`"),
        AdminProblems,
        (status = 502, body = Problem, content_type = "application/problem+json", description = "A side could not be read to start the run"),
    ),
    security(("adminToken" = []))
)]
async fn start_drift_scan(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<(StatusCode, Json<StartedResponse>), ApiError> {
    admin.acts("drift-scans.start", None);
    let scope = state
        .scans
        .drift_scope()
        .ok_or_else(|| ApiError::BadRequest("no Monday board is configured".into()))?;
    let id = state.scans.start_drift(scope).await.map_err(scan_error)?;
    let scans = state.scans.clone();
    tokio::spawn(async move { scans.run_drift(id).await });
    Ok(started(&admin, "drift-scans.start", id))
}

#[utoipa::path(
    get, path = "/api/v1/drift-scans/{id}", tag = "admin",
    summary = "A drift scan's progress and counts",
    params(("id" = i64, Path, description = "The drift scan's id")),
    responses((status = 200, body = DriftScanResponse, description = "The run"), AdminProblems),
    security(("adminToken" = []))
)]
async fn get_drift_scan(
    State(state): State<AppState>,
    admin: Admin,
    Path(raw_id): Path<String>,
) -> Result<Json<DriftScanResponse>, ApiError> {
    admin.acts("drift-scans.get", None);
    let id = parse_number("drift scan", &raw_id)?;
    let run = state.scans.drift_status(id).await?;
    let run = found(&admin, "drift-scans.get", (id, "drift scan"), run)?;
    Ok(Json(DriftScanResponse::from(&run)))
}

#[utoipa::path(
    get, path = "/api/v1/drift-scans", tag = "admin",
    summary = "Drift scans, newest first",
    params(PageQuery),
    responses((status = 200, body = DriftScansResponse, description = "A page of drift scans"), AdminProblems),
    security(("adminToken" = []))
)]
async fn list_drift_scans(
    State(state): State<AppState>,
    admin: Admin,
    ProblemQuery(query): ProblemQuery<PageQuery>,
) -> Result<Json<DriftScansResponse>, ApiError> {
    admin.acts("drift-scans.list", None);
    let (runs, next_cursor) = list_runs(&state, ScanKind::Drift, &query).await?;
    let drift_scans = runs.iter().map(DriftScanResponse::from).collect();
    Ok(Json(DriftScansResponse {
        drift_scans,
        next_cursor,
    }))
}

/// One page of runs, newest first; the cursor is the last id given.
pub(crate) async fn list_runs(
    state: &AppState,
    scan: ScanKind,
    query: &PageQuery,
) -> Result<(Vec<RunRow>, Option<String>), ApiError> {
    let (limit, before) = page(query.limit, query.cursor.as_deref())?;
    let runs = state
        .store
        .runs(scan, before.unwrap_or(i64::MAX), limit + 1)
        .await?;
    let (mut runs, next) = split_page(runs, limit, |r| r.id);
    if scan == ScanKind::Backfill {
        for run in &mut runs {
            if let Some(fresh) = state.scans.backfill_status(run.id).await? {
                *run = fresh;
            }
        }
    }
    Ok((runs, next))
}

#[utoipa::path(
    get, path = "/api/v1/matches", tag = "admin",
    summary = "The review queue: records with more than one candidate item, oldest first",
    params(MatchQuery),
    responses((status = 200, body = MatchesResponse, description = "A page of the review queue"), AdminProblems),
    security(("adminToken" = []))
)]
async fn list_matches(
    State(state): State<AppState>,
    admin: Admin,
    ProblemQuery(query): ProblemQuery<MatchQuery>,
) -> Result<Json<MatchesResponse>, ApiError> {
    admin.acts("matches.list", None);
    matches_page(&state, &query).await.map(Json)
}

/// A page of the review queue (records still to review unless `status` says otherwise).
pub(crate) async fn matches_page(
    state: &AppState,
    query: &MatchQuery,
) -> Result<MatchesResponse, ApiError> {
    let status = match query.status.as_deref() {
        None => MatchStatus::Review,
        Some(s) => s.parse::<MatchStatus>().map_err(|_| {
            ApiError::BadRequest("`status` must be review, linked, created or ignored".into())
        })?,
    };
    let (limit, after) = page(query.limit, query.cursor.as_deref())?;
    let rows = state
        .scans
        .reviews(status, after.unwrap_or(0), limit + 1)
        .await?;
    let (rows, next_cursor) = split_page(rows, limit, |r| r.id);
    let matches = rows.into_iter().map(MatchResponse::from).collect();
    Ok(MatchesResponse {
        matches,
        next_cursor,
    })
}

/// `{"link": "<item id>"}` | `{"create": true}` | `{"ignore": true}`: exactly one. Its schema
/// (written out below) says just that, so that a body the handler refuses is never schema-valid.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveMatchRequest {
    /// Link the record to this candidate item.
    #[serde(default)]
    pub link: Option<MondayItemId>,
    /// Create a new item for the record.
    #[serde(default)]
    pub create: Option<bool>,
    /// Leave the record alone.
    #[serde(default)]
    pub ignore: Option<bool>,
}

impl utoipa::ToSchema for ResolveMatchRequest {}

impl utoipa::PartialSchema for ResolveMatchRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let only = |name: &str, value: ObjectBuilder, description: &str| {
            ObjectBuilder::new()
                .property(name, value)
                .required(name)
                .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::<
                    utoipa::openapi::schema::Schema,
                >::FreeForm(false)))
                .description(Some(description))
        };
        let yes = || {
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .enum_values(Some([true]))
        };
        // A Monday item id: digits, short enough for a 64-bit id.
        let item = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[1-9][0-9]{0,17}$"));
        OneOfBuilder::new()
            .item(only("link", item, "Link the record to this candidate item"))
            .item(only("create", yes(), "Create a new item for the record"))
            .item(only("ignore", yes(), "Leave the record alone"))
            .description(Some(
                "Exactly one of: {\"link\": \"<item id>\"}, {\"create\": true}, {\"ignore\": true}",
            ))
            .into()
    }
}

#[utoipa::path(
    post, path = "/api/v1/matches/{id}/resolve", tag = "admin",
    summary = "Settle a record of the review queue: link it to a candidate, create an item, or ignore it",
    params(("id" = i64, Path, description = "The review record's id")),
    request_body(content = ResolveMatchRequest, content_type = "application/json"),
    responses(
        (status = 200, body = MatchResponse, description = "Settled"),
        AdminProblems,
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Already resolved, or the item is gone"),
        (status = 502, body = Problem, content_type = "application/problem+json", description = "A side could not be read or written"),
    ),
    security(("adminToken" = []))
)]
async fn resolve_match(
    State(state): State<AppState>,
    admin: Admin,
    Path(raw_id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<MatchResponse>, ApiError> {
    admin.acts("matches.resolve", None);
    let id = parse_number("match", &raw_id)?;
    admin.acts("matches.resolve", Some(&id.to_string()));
    let choice = review_choice(&body)?;
    settle_review(&state, &admin, id, choice).await.map(Json)
}

/// Settles review record `id` with the admin's `choice` and notes it for the audit row: the one
/// resolution of the API and the console.
pub(crate) async fn settle_review(
    state: &AppState,
    admin: &Admin,
    id: i64,
    choice: ReviewChoice,
) -> Result<MatchResponse, ApiError> {
    admin.acts("matches.resolve", Some(&id.to_string()));
    let by = Requester {
        actor: &admin.actor,
        request_id: admin.request_id.as_deref(),
    };
    let review = state
        .scans
        .resolve_review(id, choice, by)
        .await
        .map_err(|e| match e {
            ReviewError::NotFound(_) => ApiError::NotFound(e.to_string()),
            ReviewError::AlreadyResolved(_) => ApiError::Conflict(e.to_string()),
            ReviewError::NotACandidate(_) => ApiError::BadRequest(e.to_string()),
            ReviewError::Gone(_) => ApiError::Conflict(e.to_string()),
            ReviewError::Scan(s) => scan_error(s),
            ReviewError::Ledger(l) => ApiError::from(l),
        })?;
    state.wake.dispatch.notify_one();
    admin.outcome(AuditOutcome::Resolved, None);
    Ok(MatchResponse::from(review))
}

/// The admin's choice, from a body holding exactly one of `link`, `create: true`, `ignore: true`.
fn review_choice(body: &[u8]) -> Result<ReviewChoice, ApiError> {
    let shape = "body must be {\"link\": \"<item id>\"}, {\"create\": true} or {\"ignore\": true}";
    let request: ResolveMatchRequest = json_body(body, shape, &["link", "create", "ignore"])?;
    match (request.link, request.create, request.ignore) {
        (Some(item), None, None) => Ok(ReviewChoice::Link(item)),
        (None, Some(true), None) => Ok(ReviewChoice::Create),
        (None, None, Some(true)) => Ok(ReviewChoice::Ignore),
        _ => Err(ApiError::BadRequest(shape.into())),
    }
}
