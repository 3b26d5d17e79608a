//! The admin API: forced pushes, sync status, dead letters, conflicts, the audit log.
//!
//! Owns: the admin routes and their handlers. Who may call them, the limits and the one audit row
//! per call are `auth`; the wire types are `dto`. Handlers only call `sync` use cases; they never
//! call Monday.
//!
//! How a route is documented (the OpenAPI document at `/openapi.json` is generated from this
//! code, and `.ci/run` fuzzes it with schemathesis, which fails on any undocumented status):
//! - annotate the handler with `#[utoipa::path(method, path = "...", tag = "admin", ...)]` and
//!   register it with `.routes(routes!(handler))` in `router()`, never with a bare `.route`;
//! - give path parameters their format (`("id" = uuid::Uuid, Path)`, `("id" = i64, Path)`) and
//!   queries an `IntoParams` struct in `dto` with their bounds (`#[param(minimum, maximum)]`),
//!   `deny_unknown_fields`, and the `ProblemQuery` extractor (its rejections are problems);
//! - answer typed `dto` structs deriving `Serialize` + `ToSchema` (never `json!`), request bodies
//!   likewise (`Deserialize` + `ToSchema`, read from `RawBody` so 413 and 400 are problems);
//! - list `responses((status = 200, body = ...), AdminProblems)` plus any other status the route
//!   can answer (409, 502, ...) as `(status = N, body = Problem, content_type =
//!   "application/problem+json")`, and `security(("adminToken" = []))`;
//! - take the `Admin` extractor and call `admin.acts("noun.verb", target)`: the audit row is
//!   written by the middleware whatever the outcome;
//! - lists page with `PageQuery` (`limit` 1..=500, default 100; `cursor` opaque) over a keyset
//!   ledger query (`… where id > $after order by id limit $n`) on an index, never a scan.
//!
//! Each action's work (`push_entity`, `replay`, `resolve_with`, the `*_page` lists,
//! `entity_status`) is one function shared with the console (`http::console`), so an action taken
//! from either does the same and writes the same audit row.
//! May import: std, axum, serde, serde_json, secrecy, utoipa, utoipa-axum,
//! crate::{auth, domain, http, ledger, sync}.

mod auth;
pub mod dto;

use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::{Json, middleware};
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{
    Admin, AdminLimits, AuditSlot, SignInRefused, WindowLimiter, audit_calls, client_address,
    sign_in,
};

use crate::domain::entity::{EntityKind, NpdId};
use crate::domain::state::{AuditOutcome, ConflictStatus};
use crate::http::AppState;
use crate::http::error::{AdminProblems, ApiError, Problem, RawBody};
use crate::sync::admin as admin_use;
use crate::sync::push::{PushError, PushOutcome, Requester};
use crate::sync::resolve::{ResolveError, Take, resolve_conflict};
use dto::{
    AuditResponse, AuditView, ConflictQuery, ConflictView, ConflictsResponse, DeadLetterView,
    DeadLettersResponse, PageQuery, PushQuery, PushResponse, RecordId, ReplayResponse,
    ResolveRequest, ResolveResponse, SyncStatusResponse, TakeSide,
};

/// The longest `?wait=true` waits (CONTRACT: 30 s).
const MAX_WAIT: Duration = Duration::from_secs(30);
/// What a waiting push keeps of the request timeout to answer in.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 500;

/// The admin routes with their audit middleware.
pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    audited(documented_routes(), state)
}

/// `routes` behind the admin middleware: one audit row per call, whatever its outcome.
pub(crate) fn audited(routes: OpenApiRouter<AppState>, state: AppState) -> OpenApiRouter<AppState> {
    routes.layer(middleware::from_fn_with_state(state, auth::audit_calls))
}

/// The admin routes and their documentation, without the middleware.
pub fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push_contact))
        .routes(routes!(push_organization))
        .routes(routes!(contact_status))
        .routes(routes!(organization_status))
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay_dead_letter))
        .routes(routes!(list_conflicts))
        .routes(routes!(resolve))
        .routes(routes!(list_audit))
}

/// A query string parsed into `T`; a query that does not parse is a 400 problem.
pub struct ProblemQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ProblemQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ProblemQuery(q))
            .map_err(|e| {
                ApiError::BadRequest(format!("the query string is not valid: {}", e.body_text()))
            })
    }
}

fn parse_uuid(kind: EntityKind, raw: &str) -> Result<NpdId, ApiError> {
    NpdId::parse(raw).map_err(|_| ApiError::BadRequest(format!("{kind} id must be a UUID")))
}

pub(crate) fn parse_number(what: &str, raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} id must be a number")))
}

/// An admin request body of the shape `shape` (said in the error) whose members are among
/// `fields`: a member not among them, or a body that does not parse, is a 400 naming it.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    shape: &str,
    fields: &[&str],
) -> Result<T, ApiError> {
    if let Ok(serde_json::Value::Object(members)) = serde_json::from_slice(body)
        && let Some(unknown) = members.keys().find(|k| !fields.contains(&k.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "unknown field `{unknown}`: {shape}"
        )));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("{shape} ({e})")))
}

/// `limit` and the id after which the page starts.
pub(crate) fn page(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<(i64, Option<i64>), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_PAGE}"
        )));
    }
    let after = match cursor {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| ApiError::BadRequest("`cursor` is not one this API gave".into()))?,
        ),
    };
    Ok((i64::from(limit), after))
}

/// Rows fetched one past the page: the page, and the cursor of the next one if there is one.
pub(crate) fn split_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> i64,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(|r| id(r).to_string());
    (rows, next)
}

#[utoipa::path(
    post, path = "/api/v1/contacts/{id}/sync-to-monday", tag = "admin",
    summary = "Force a push of one contact to Monday",
    params(("id" = uuid::Uuid, Path, description = "The contact's NPD id"), PushQuery),
    responses(
        (status = 200, body = PushResponse, description = "Queued (with `wait`: its outcome)"),
        AdminProblems,
        (status = 502, body = Problem, content_type = "application/problem+json", description = "NPD could not be asked about a record the gateway never saw"),
    ),
    security(("adminToken" = []))
)]
async fn push_contact(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ProblemQuery(query): ProblemQuery<PushQuery>,
) -> Result<Json<PushResponse>, ApiError> {
    push(state, admin, EntityKind::Contact, id, query).await
}

#[utoipa::path(
    post, path = "/api/v1/organizations/{id}/sync-to-monday", tag = "admin",
    summary = "Force a push of one organization to Monday",
    params(("id" = uuid::Uuid, Path, description = "The organization's NPD id"), PushQuery),
    responses(
        (status = 200, body = PushResponse, description = "Queued (with `wait`: its outcome)"),
        AdminProblems,
        (status = 502, body = Problem, content_type = "application/problem+json", description = "NPD could not be asked about a record the gateway never saw"),
    ),
    security(("adminToken" = []))
)]
async fn push_organization(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ProblemQuery(query): ProblemQuery<PushQuery>,
) -> Result<Json<PushResponse>, ApiError> {
    push(state, admin, EntityKind::Organization, id, query).await
}

async fn push(
    state: AppState,
    admin: Admin,
    kind: EntityKind,
    raw_id: String,
    query: PushQuery,
) -> Result<Json<PushResponse>, ApiError> {
    admin.acts(&format!("{kind}.sync-to-monday"), None);
    let wait = match query.wait.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => return Err(ApiError::BadRequest("`wait` must be true or false".into())),
    };
    let id = parse_uuid(kind, &raw_id)?;
    push_entity(&state, &admin, (kind, id), wait)
        .await
        .map(Json)
}

/// Queues a forced push of one entity to Monday (with `wait`, waits for its outcome) and notes
/// it for the audit row: the one push of the API and the console.
pub(crate) async fn push_entity(
    state: &AppState,
    admin: &Admin,
    (kind, id): (EntityKind, NpdId),
    wait: bool,
) -> Result<PushResponse, ApiError> {
    admin.acts(&format!("{kind}.sync-to-monday"), Some(&id.to_string()));
    let by = Requester {
        actor: &admin.actor,
        request_id: admin.request_id.as_deref(),
    };
    let queued = state.pusher.push(kind, id, by).await.map_err(push_error)?;
    state.wake.dispatch.notify_one();
    let mut body = PushResponse {
        id: RecordId::of(kind, id.to_string()),
        sync_triggered: queued.job_id.is_some(),
        message: queued.message.clone(),
        monday_id: queued.monday_id.map(|m| m.to_string()),
        outcome: None,
    };
    if wait && let Some(job) = queued.job_id {
        let (outcome, link) = state
            .pusher
            .wait(kind, id, job, wait_budget(admin.deadline))
            .await
            .map_err(push_error)?;
        body.outcome = Some(outcome.as_str().to_owned());
        body.monday_id = link.map(|m| m.to_string());
    } else if wait {
        body.outcome = Some(PushOutcome::Pending.as_str().to_owned());
    }
    admin.outcome(AuditOutcome::Queued, Some(&queued.message));
    Ok(body)
}

/// How long a waiting push may wait: 30 s, less when the request timeout comes sooner, so the
/// answer (`pending` at worst) always goes out before the timeout would answer 408.
fn wait_budget(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(ANSWER_MARGIN)
        .min(MAX_WAIT)
}

/// The answer of a push that could not be queued or waited for.
fn push_error(e: PushError) -> ApiError {
    match e {
        PushError::NotConfigured(m) => ApiError::BadRequest(m),
        e @ (PushError::NotFound { .. } | PushError::Deleted { .. }) => {
            ApiError::NotFound(e.to_string())
        }
        PushError::Lookup(c) => ApiError::BadGateway(format!(
            "NPD could not be asked about the record: {}",
            c.class
        )),
        PushError::Ledger(l) => ApiError::from(l),
    }
}

#[utoipa::path(
    get, path = "/api/v1/contacts/{id}/sync", tag = "admin",
    summary = "Sync status, link, jobs, conflicts and history of a contact",
    params(("id" = uuid::Uuid, Path, description = "The contact's NPD id")),
    responses((status = 200, body = SyncStatusResponse, description = "The entity and why it synced or not"), AdminProblems),
    security(("adminToken" = []))
)]
async fn contact_status(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<SyncStatusResponse>, ApiError> {
    status(state, admin, EntityKind::Contact, id).await
}

#[utoipa::path(
    get, path = "/api/v1/organizations/{id}/sync", tag = "admin",
    summary = "Sync status, link, jobs, conflicts and history of an organization",
    params(("id" = uuid::Uuid, Path, description = "The organization's NPD id")),
    responses((status = 200, body = SyncStatusResponse, description = "The entity and why it synced or not"), AdminProblems),
    security(("adminToken" = []))
)]
async fn organization_status(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<SyncStatusResponse>, ApiError> {
    status(state, admin, EntityKind::Organization, id).await
}

async fn status(
    state: AppState,
    admin: Admin,
    kind: EntityKind,
    raw_id: String,
) -> Result<Json<SyncStatusResponse>, ApiError> {
    admin.acts(&format!("{kind}.sync-status"), None);
    let id = parse_uuid(kind, &raw_id)?;
    entity_status(&state, &admin, (kind, id)).await.map(Json)
}

/// An entity's status, link, fields, jobs, conflicts and last 50 history entries (newest
/// first), noted for the audit row; 404 when the gateway does not know it.
pub(crate) async fn entity_status(
    state: &AppState,
    admin: &Admin,
    (kind, id): (EntityKind, NpdId),
) -> Result<SyncStatusResponse, ApiError> {
    admin.acts(&format!("{kind}.sync-status"), Some(&id.to_string()));
    let Some(s) = admin_use::sync_status(&state.store, kind, id).await? else {
        return Err(ApiError::NotFound(format!(
            "{kind} {id} is unknown to the gateway"
        )));
    };
    let id = RecordId::of(kind, id.to_string());
    let budget = state.budget.remaining().await?;
    Ok(SyncStatusResponse::new(id, &s, budget))
}

#[utoipa::path(
    get, path = "/api/v1/dead-letters", tag = "admin",
    summary = "Jobs that went to the dead letters, oldest first, each naming its entity",
    params(PageQuery),
    responses((status = 200, body = DeadLettersResponse, description = "A page of dead letters"), AdminProblems),
    security(("adminToken" = []))
)]
async fn list_dead_letters(
    State(state): State<AppState>,
    admin: Admin,
    ProblemQuery(query): ProblemQuery<PageQuery>,
) -> Result<Json<DeadLettersResponse>, ApiError> {
    admin.acts("dead-letters.list", None);
    dead_letters_page(&state, &query).await.map(Json)
}

/// A page of the dead letters, oldest first.
pub(crate) async fn dead_letters_page(
    state: &AppState,
    query: &PageQuery,
) -> Result<DeadLettersResponse, ApiError> {
    let (limit, after) = page(query.limit, query.cursor.as_deref())?;
    let rows = admin_use::dead_letters(&state.store, after.unwrap_or(0), limit + 1).await?;
    let (rows, next_cursor) = split_page(rows, limit, |d| d.job.id);
    Ok(DeadLettersResponse {
        dead_letters: rows.iter().map(DeadLetterView::from).collect(),
        next_cursor,
    })
}

#[utoipa::path(
    post, path = "/api/v1/dead-letters/{id}/replay", tag = "admin",
    summary = "Queue a dead job again, with a new idempotency key and a full set of attempts",
    params(("id" = i64, Path, description = "The dead job's id")),
    responses((status = 200, body = ReplayResponse, description = "Queued again"), AdminProblems),
    security(("adminToken" = []))
)]
async fn replay_dead_letter(
    State(state): State<AppState>,
    admin: Admin,
    Path(raw_id): Path<String>,
) -> Result<Json<ReplayResponse>, ApiError> {
    admin.acts("dead-letters.replay", None);
    let id = parse_number("dead letter", &raw_id)?;
    replay(&state, &admin, id).await.map(Json)
}

/// Queues dead job `id` again and notes it for the audit row: the one replay of the API and
/// the console.
pub(crate) async fn replay(
    state: &AppState,
    admin: &Admin,
    id: i64,
) -> Result<ReplayResponse, ApiError> {
    admin.acts("dead-letters.replay", Some(&id.to_string()));
    if !admin_use::replay_dead_letter(&state.store, id).await? {
        return Err(ApiError::NotFound(format!("no dead letter {id}")));
    }
    state.wake.dispatch.notify_one();
    admin.outcome(AuditOutcome::Queued, None);
    Ok(ReplayResponse { id, replayed: true })
}

#[utoipa::path(
    get, path = "/api/v1/conflicts", tag = "admin",
    summary = "Conflicts (open by default), oldest first",
    params(ConflictQuery),
    responses((status = 200, body = ConflictsResponse, description = "A page of conflicts"), AdminProblems),
    security(("adminToken" = []))
)]
async fn list_conflicts(
    State(state): State<AppState>,
    admin: Admin,
    ProblemQuery(query): ProblemQuery<ConflictQuery>,
) -> Result<Json<ConflictsResponse>, ApiError> {
    admin.acts("conflicts.list", None);
    conflicts_page(&state, &query).await.map(Json)
}

/// A page of conflicts (open unless `status` says otherwise), oldest first.
pub(crate) async fn conflicts_page(
    state: &AppState,
    query: &ConflictQuery,
) -> Result<ConflictsResponse, ApiError> {
    let status = match query.status.as_deref() {
        None => ConflictStatus::Open,
        Some(s) => s
            .parse::<ConflictStatus>()
            .map_err(|_| ApiError::BadRequest("`status` must be open or resolved".into()))?,
    };
    let (limit, after) = page(query.limit, query.cursor.as_deref())?;
    let rows = state
        .store
        .conflicts_page(status, after.unwrap_or(0), limit + 1)
        .await?;
    let (rows, next_cursor) = split_page(rows, limit, |c| c.id);
    Ok(ConflictsResponse {
        conflicts: rows.iter().map(ConflictView::from).collect(),
        next_cursor,
    })
}

#[utoipa::path(
    post, path = "/api/v1/conflicts/{id}/resolve", tag = "admin",
    summary = "Settle a conflict: take one side's value, or give one",
    params(("id" = i64, Path, description = "The conflict's id")),
    request_body(content = ResolveRequest, content_type = "application/json"),
    responses(
        (status = 200, body = ResolveResponse, description = "Settled; the value is on its way to the side(s) lacking it"),
        AdminProblems,
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The conflict is already resolved"),
    ),
    security(("adminToken" = []))
)]
async fn resolve(
    State(state): State<AppState>,
    admin: Admin,
    Path(raw_id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<ResolveResponse>, ApiError> {
    admin.acts("conflicts.resolve", None);
    let id = parse_number("conflict", &raw_id)?;
    admin.acts("conflicts.resolve", Some(&id.to_string()));
    let shape =
        "body must be exactly one of {\"take\": \"npd\"|\"monday\"} and {\"value\": \"…\"|null}";
    let request: ResolveRequest = json_body(&body, shape, &["take", "value"])?;
    let take = match request {
        ResolveRequest::Take(t) => match t.take {
            TakeSide::Npd => Take::Npd,
            TakeSide::Monday => Take::Monday,
        },
        ResolveRequest::Value(v) => Take::Value(v.value),
    };
    resolve_with(&state, &admin, id, take).await.map(Json)
}

/// Settles conflict `id` with `take` and notes it for the audit row: the one resolution of the
/// API and the console.
pub(crate) async fn resolve_with(
    state: &AppState,
    admin: &Admin,
    id: i64,
    take: Take,
) -> Result<ResolveResponse, ApiError> {
    admin.acts("conflicts.resolve", Some(&id.to_string()));
    let by = Requester {
        actor: &admin.actor,
        request_id: admin.request_id.as_deref(),
    };
    let resolved = resolve_conflict(&state.store, &state.settings, &state.metrics, id, take, by)
        .await
        .map_err(|e| match e {
            ResolveError::NotFound(_) => ApiError::NotFound(e.to_string()),
            ResolveError::AlreadyResolved(_) => ApiError::Conflict(e.to_string()),
            ResolveError::Ledger(l) => ApiError::from(l),
        })?;
    state.wake.dispatch.notify_one();
    admin.outcome(AuditOutcome::Resolved, None);
    Ok(ResolveResponse {
        conflict: ConflictView::from(&resolved.conflict),
        value: resolved.value,
        written_to: resolved.pushed_to.iter().map(|s| s.to_string()).collect(),
    })
}

#[utoipa::path(
    get, path = "/api/v1/audit", tag = "admin",
    summary = "The audit log, newest first: every admin call, refused ones included",
    params(PageQuery),
    responses((status = 200, body = AuditResponse, description = "A page of the audit log"), AdminProblems),
    security(("adminToken" = []))
)]
async fn list_audit(
    State(state): State<AppState>,
    admin: Admin,
    ProblemQuery(query): ProblemQuery<PageQuery>,
) -> Result<Json<AuditResponse>, ApiError> {
    admin.acts("audit.list", None);
    let (limit, before) = page(query.limit, query.cursor.as_deref())?;
    let rows = state.store.audit_page(before, limit + 1).await?;
    let (rows, next_cursor) = split_page(rows, limit, |a| a.id);
    Ok(Json(AuditResponse {
        entries: rows.iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_take_a_bounded_limit_and_only_cursors_the_api_gave() {
        assert_eq!(page(None, None).ok(), Some((100, None)));
        assert_eq!(page(Some(500), Some("42")).ok(), Some((500, Some(42))));
        for (limit, cursor) in [
            (Some(0), None),
            (Some(501), None),
            (None, Some("x")),
            (None, Some("-3")),
        ] {
            assert!(page(limit, cursor).is_err(), "{limit:?} {cursor:?}");
        }
        let (rows, next) = split_page(vec![1, 2, 3], 2, |r| *r);
        assert_eq!((rows, next.as_deref()), (vec![1, 2], Some("2")));
        let (rows, next) = split_page(vec![1, 2], 2, |r| *r);
        assert_eq!((rows, next), (vec![1, 2], None));
    }

    #[test]
    fn a_waiting_push_always_answers_before_the_request_timeout() {
        let soon = Instant::now() + Duration::from_secs(3);
        assert!(wait_budget(soon) <= Duration::from_secs(2));
        let late = Instant::now() + Duration::from_secs(120);
        assert_eq!(wait_budget(late), MAX_WAIT);
        assert_eq!(wait_budget(Instant::now()), Duration::ZERO);
    }
}
