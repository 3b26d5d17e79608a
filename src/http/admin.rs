//! The admin API: forced pushes, sync status, dead letters.
//!
//! Owns: the admin routes, the `Admin` extractor (a bearer token: the bootstrap
//! `GATEWAY_ADMIN_TOKEN` or one made with `admin-token create`, whose SHA-256 is looked up; both
//! compared in constant time; never accepted in a query string), the per-token rate limit, and an
//! audit row for every admin call. Handlers only call `sync` use cases; they never call Monday.
//! May import: std, axum, serde, serde_json, secrecy, crate::{auth, domain, http, ledger, sync}.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{admin_token, constant_time_eq};
use crate::domain::entity::{EntityKind, MondayItemId, NpdId, Side};
use crate::domain::state::{AuditOutcome, ConflictStatus};
use crate::http::error::ApiError;
use crate::http::{AppState, request_id_of};
use crate::ledger::admin::AuditEntry;
use crate::ledger::jobs::JobRow;
use crate::sync::admin as admin_use;
use crate::sync::push::{PushError, PushOutcome, PushQueued, Requester};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/contacts/{id}/sync-to-monday", post(push_contact))
        .route(
            "/api/v1/organizations/{id}/sync-to-monday",
            post(push_organization),
        )
        .route("/api/v1/contacts/{id}/sync", get(contact_status))
        .route("/api/v1/organizations/{id}/sync", get(organization_status))
        .route("/api/v1/dead-letters", get(list_dead_letters))
        .route("/api/v1/dead-letters/{id}/replay", post(replay_dead_letter))
        .route("/api/v1/conflicts", get(list_conflicts))
        .route("/api/v1/conflicts/{id}/resolve", post(resolve_conflict))
}

/// An authenticated admin: the token's name (`bootstrap` for `GATEWAY_ADMIN_TOKEN`).
#[derive(Debug, Clone)]
pub struct Admin {
    pub actor: String,
    pub request_id: Option<String>,
}

/// Per-token request budget: a fixed one-minute window per token.
#[derive(Debug, Default)]
pub struct AdminRateLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl AdminRateLimiter {
    /// `Ok` when `actor` may make another request, else the wait until its window resets.
    fn check(&self, actor: &str, per_minute: u32) -> Result<(), Duration> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let entry = windows.entry(actor.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        if entry.1 >= per_minute {
            return Err(Duration::from_secs(60).saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let request_id = request_id_of(&parts.headers);
        if query_carries_token(parts.uri.query()) {
            return Err(ApiError::Unauthorized(
                "admin tokens are never accepted in a query string".into(),
            )
            .into_response());
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(unauthorized(
                "missing `Authorization: Bearer <admin token>`",
            ));
        };
        let bootstrap = state
            .settings
            .admin
            .token
            .as_ref()
            .is_some_and(|b| constant_time_eq(b.expose_secret().as_bytes(), token.as_bytes()));
        let actor = if bootstrap {
            "bootstrap".to_owned()
        } else {
            match state
                .store
                .admin_token_name(&admin_token::hash(token))
                .await
            {
                Ok(Some(name)) => name,
                Ok(None) => {
                    let entry = AuditEntry {
                        actor: "unknown",
                        action: "authenticate",
                        target: None,
                        request_id: request_id.as_deref(),
                        outcome: AuditOutcome::Denied,
                        detail: Some("invalid admin token"),
                    };
                    admin_use::audit(&state.store, &entry).await;
                    return Err(unauthorized("invalid admin token"));
                }
                Err(e) => return Err(ApiError::from(e).into_response()),
            }
        };
        if let Err(wait) = state
            .admin_limiter
            .check(&actor, state.settings.sync.admin_requests_per_minute)
        {
            return Err(rate_limited(
                state.settings.sync.admin_requests_per_minute,
                wait,
            ));
        }
        Ok(Admin { actor, request_id })
    }
}

/// 429 with `Retry-After`: the token's requests of this minute are spent.
fn rate_limited(per_minute: u32, wait: Duration) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, crate::http::error::PROBLEM_JSON)],
        json!({
            "type": "urn:npd-monday-gateway:problem:rate-limited",
            "title": "Too Many Requests",
            "status": 429,
            "detail": format!("admin request limit of {per_minute} per minute reached"),
        })
        .to_string(),
    )
        .into_response();
    let secs = wait.as_secs().max(1).to_string();
    if let Ok(v) = HeaderValue::from_str(&secs) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn unauthorized(detail: &str) -> Response {
    let mut response = ApiError::Unauthorized(detail.to_owned()).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Whether a query string carries something that looks like a credential.
fn query_carries_token(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let key = pair
                .split('=')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            matches!(
                key.as_str(),
                "token" | "access_token" | "admin_token" | "api_key" | "authorization"
            )
        })
    })
}

#[derive(Debug, Deserialize)]
struct PushQuery {
    #[serde(default)]
    wait: Option<String>,
}

async fn push_contact(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(query): Query<PushQuery>,
) -> Result<Json<Value>, ApiError> {
    push(state, admin, EntityKind::Contact, id, query).await
}

async fn push_organization(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(query): Query<PushQuery>,
) -> Result<Json<Value>, ApiError> {
    push(state, admin, EntityKind::Organization, id, query).await
}

async fn push(
    state: AppState,
    admin: Admin,
    kind: EntityKind,
    raw_id: String,
    query: PushQuery,
) -> Result<Json<Value>, ApiError> {
    let wait = match query.wait.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => return Err(ApiError::BadRequest("`wait` must be true or false".into())),
    };
    let action = format!("{kind}.sync-to-monday");
    let Ok(id) = NpdId::parse(&raw_id) else {
        audit(
            &state,
            &admin,
            &action,
            None,
            AuditOutcome::Rejected,
            Some("malformed id"),
        )
        .await;
        return Err(ApiError::BadRequest(format!("{kind} id must be a UUID")));
    };
    let target = id.to_string();
    let by = Requester {
        actor: &admin.actor,
        request_id: admin.request_id.as_deref(),
    };
    let queued = match state.pusher.push(kind, id, by).await {
        Ok(q) => q,
        Err(e) => {
            let (outcome, error) = push_error(e);
            let detail = error.to_string();
            audit(
                &state,
                &admin,
                &action,
                Some(&target),
                outcome,
                Some(&detail),
            )
            .await;
            return Err(error);
        }
    };
    state.wake.dispatch.notify_one();
    let mut body = json!({
        format!("{kind}_id"): target,
        "sync_triggered": queued.job_id.is_some(),
        "message": queued.message,
        "monday_id": queued.monday_id,
    });
    if wait {
        let (outcome, link) = wait_for_push(&state, kind, id, &queued).await?;
        body["outcome"] = json!(outcome.as_str());
        body["monday_id"] = json!(link);
    }
    audit(
        &state,
        &admin,
        &action,
        Some(&target),
        AuditOutcome::Queued,
        Some(&queued.message),
    )
    .await;
    Ok(Json(body))
}

/// The answer and audit outcome of a push that could not be queued.
fn push_error(e: PushError) -> (AuditOutcome, ApiError) {
    match e {
        PushError::NotConfigured(m) => (AuditOutcome::Rejected, ApiError::BadRequest(m)),
        e @ (PushError::NotFound { .. } | PushError::Deleted { .. }) => {
            (AuditOutcome::NotFound, ApiError::NotFound(e.to_string()))
        }
        PushError::Lookup(c) => (
            AuditOutcome::Failed,
            ApiError::BadGateway(format!(
                "NPD could not be asked about the record: {}",
                c.class
            )),
        ),
        PushError::Ledger(l) => (AuditOutcome::Failed, ApiError::from(l)),
    }
}

/// `?wait=true`: the push's outcome within 30 s, and the entity's link then.
async fn wait_for_push(
    state: &AppState,
    kind: EntityKind,
    id: NpdId,
    queued: &PushQueued,
) -> Result<(PushOutcome, Option<MondayItemId>), ApiError> {
    let Some(job) = queued.job_id else {
        return Ok((PushOutcome::Pending, queued.monday_id));
    };
    state
        .pusher
        .wait(kind, id, job, Duration::from_secs(30))
        .await
        .map_err(|e| match e {
            PushError::Ledger(l) => ApiError::from(l),
            other => ApiError::Internal(anyhow::anyhow!(other.to_string())),
        })
}

async fn contact_status(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    status(state, admin, EntityKind::Contact, id).await
}

async fn organization_status(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    status(state, admin, EntityKind::Organization, id).await
}

async fn status(
    state: AppState,
    admin: Admin,
    kind: EntityKind,
    raw_id: String,
) -> Result<Json<Value>, ApiError> {
    let id = NpdId::parse(&raw_id)
        .map_err(|_| ApiError::BadRequest(format!("{kind} id must be a UUID")))?;
    let Some(s) = admin_use::sync_status(&state.store, kind, id).await? else {
        audit(
            &state,
            &admin,
            &format!("{kind}.sync-status"),
            Some(&id.to_string()),
            AuditOutcome::NotFound,
            None,
        )
        .await;
        return Err(ApiError::NotFound(format!(
            "{kind} {id} is unknown to the gateway"
        )));
    };
    let e = &s.entity;
    let body = json!({
        format!("{kind}_id"): id.to_string(),
        "status": e.status,
        "last_error": e.last_error,
        "sync_enabled": e.sync_enabled,
        "link": {"monday_id": e.monday_item_id, "board_id": e.board_id},
        "npd_version": e.npd_version,
        "fields": s.fields.iter().map(|(f, st)| (f.clone(), json!({
            "base": st.base, "npd": st.npd, "monday": st.monday,
            "pending": {
                "npd": st.pending_npd.as_ref().map(|p| &p.value),
                "monday": st.pending_monday.as_ref().map(|p| &p.value),
            },
        }))).collect::<serde_json::Map<String, Value>>(),
        "pending_jobs": s.open_jobs.iter().map(job_json).collect::<Vec<_>>(),
        "dead_jobs": s.dead_jobs.iter().map(job_json).collect::<Vec<_>>(),
        "open_conflicts": s.conflicts.iter().map(conflict_json).collect::<Vec<_>>(),
        "history": s.history.iter().map(|h| json!({
            "at": millis_to_rfc3339(h.at), "kind": h.kind, "reason": h.reason,
            "detail": h.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
            "inbox_event_id": h.inbox_event_id, "job_id": h.job_id,
        })).collect::<Vec<_>>(),
    });
    audit(
        &state,
        &admin,
        &format!("{kind}.sync-status"),
        Some(&id.to_string()),
        AuditOutcome::Ok,
        None,
    )
    .await;
    Ok(Json(body))
}

async fn list_dead_letters(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let jobs = admin_use::dead_letters(&state.store, 500).await?;
    audit(
        &state,
        &admin,
        "dead-letters.list",
        None,
        AuditOutcome::Ok,
        None,
    )
    .await;
    Ok(Json(
        json!({ "dead_letters": jobs.iter().map(job_json).collect::<Vec<_>>() }),
    ))
}

async fn replay_dead_letter(
    State(state): State<AppState>,
    admin: Admin,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = raw_id
        .parse()
        .map_err(|_| ApiError::BadRequest("dead letter id must be a number".into()))?;
    let replayed = admin_use::replay_dead_letter(&state.store, id).await?;
    let target = id.to_string();
    if !replayed {
        audit(
            &state,
            &admin,
            "dead-letters.replay",
            Some(&target),
            AuditOutcome::NotFound,
            None,
        )
        .await;
        return Err(ApiError::NotFound(format!("no dead letter {id}")));
    }
    state.wake.dispatch.notify_one();
    audit(
        &state,
        &admin,
        "dead-letters.replay",
        Some(&target),
        AuditOutcome::Queued,
        None,
    )
    .await;
    Ok(Json(json!({"id": id, "replayed": true})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConflictQuery {
    #[serde(default)]
    status: Option<String>,
}

async fn list_conflicts(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<ConflictQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match query.status.as_deref() {
        None => ConflictStatus::Open,
        Some(s) => s
            .parse::<ConflictStatus>()
            .map_err(|_| ApiError::BadRequest("`status` must be open or resolved".into()))?,
    };
    let rows = state.store.conflicts(status, 1_000).await?;
    audit(
        &state,
        &admin,
        "conflicts.list",
        None,
        AuditOutcome::Ok,
        None,
    )
    .await;
    Ok(Json(
        json!({ "conflicts": rows.iter().map(conflict_json).collect::<Vec<_>>() }),
    ))
}

/// `{"take": "npd" | "monday"}` or `{"value": "…" | null}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    #[serde(default)]
    take: Option<String>,
    #[serde(default, deserialize_with = "some_value")]
    value: Option<Option<String>>,
}

/// Distinguishes `"value": null` (clear the field) from no `value` at all.
fn some_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

async fn resolve_conflict(
    State(state): State<AppState>,
    admin: Admin,
    Path(raw_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    use crate::sync::resolve::{ResolveError, Take, resolve_conflict as resolve};
    let id: i64 = raw_id
        .parse()
        .map_err(|_| ApiError::BadRequest("conflict id must be a number".into()))?;
    let request: ResolveRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be {{\"take\": \"npd\"|\"monday\"}} or {{\"value\": …}} ({})",
            e.to_string()
                .split(" at line")
                .next()
                .unwrap_or("invalid JSON")
        ))
    })?;
    let take = match (request.take.as_deref(), request.value) {
        (Some(side), None) => match side.parse::<Side>() {
            Ok(Side::Npd) => Take::Npd,
            Ok(Side::Monday) => Take::Monday,
            Err(_) => return Err(ApiError::BadRequest("`take` must be npd or monday".into())),
        },
        (None, Some(value)) => Take::Value(value),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of `take` and `value`".into(),
            ));
        }
    };
    let target = id.to_string();
    let by = Requester {
        actor: &admin.actor,
        request_id: admin.request_id.as_deref(),
    };
    let resolved = match resolve(&state.store, &state.settings, id, take, by).await {
        Ok(r) => r,
        Err(e) => {
            let error = match e {
                ResolveError::NotFound(_) => ApiError::NotFound(e.to_string()),
                ResolveError::AlreadyResolved(_) => ApiError::Conflict(e.to_string()),
                ResolveError::Ledger(l) => ApiError::from(l),
            };
            audit(
                &state,
                &admin,
                "conflicts.resolve",
                Some(&target),
                AuditOutcome::Rejected,
                Some(&error.to_string()),
            )
            .await;
            return Err(error);
        }
    };
    state.wake.dispatch.notify_one();
    audit(
        &state,
        &admin,
        "conflicts.resolve",
        Some(&target),
        AuditOutcome::Resolved,
        None,
    )
    .await;
    Ok(Json(json!({
        "conflict": conflict_json(&resolved.conflict),
        "value": resolved.value,
        "written_to": resolved.pushed_to.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    })))
}

fn conflict_json(c: &crate::ledger::conflicts::ConflictRow) -> Value {
    json!({
        "id": c.id,
        "entity_id": c.entity_id,
        "field": c.field,
        "base": c.base_value,
        "npd": c.npd_value,
        "monday": c.monday_value,
        "policy": c.policy,
        "status": c.status,
        "resolution": c.resolution,
        "resolved_value": c.resolved_value,
        "resolved_by": c.resolved_by,
        "opened_at": millis_to_rfc3339(c.opened_at),
        "resolved_at": c.resolved_at.and_then(millis_to_rfc3339),
    })
}

fn job_json(j: &JobRow) -> Value {
    json!({
        "id": j.id,
        "target": j.target,
        "operation": j.operation,
        "state": j.state,
        "attempts": j.attempts,
        "max_attempts": j.max_attempts,
        "next_attempt_at": millis_to_rfc3339(j.next_attempt_at),
        "last_error": j.last_error,
        "created_at": millis_to_rfc3339(j.created_at),
    })
}

pub(crate) fn millis_to_rfc3339(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

pub(crate) async fn audit(
    state: &AppState,
    admin: &Admin,
    action: &str,
    target: Option<&str>,
    outcome: AuditOutcome,
    detail: Option<&str>,
) {
    let entry = AuditEntry {
        actor: &admin.actor,
        action,
        target,
        request_id: admin.request_id.as_deref(),
        outcome,
        detail,
    };
    admin_use::audit(&state.store, &entry).await;
}
