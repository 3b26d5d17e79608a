//! `POST /webhooks/monday` and `POST /webhooks/monday/{token}`: Monday's webhook deliveries.
//!
//! Owns: the routes, the challenge echo, delivery authentication and the 200 answer.
//! Authentication, as CONTRACT.md puts it:
//! - `/webhooks/monday/{token}`: the path token must equal `MONDAY_WEBHOOK_TOKEN` (constant time),
//!   else 404, checked before anything else. When `MONDAY_SIGNING_SECRET` is also set and the
//!   delivery carries an `Authorization` header, that JWT must verify too.
//! - `/webhooks/monday`: needs `MONDAY_SIGNING_SECRET` and a valid HS256 JWT in `Authorization`
//!   (raw or `Bearer`), else 401.
//! - A challenge (`{"challenge": …}` without `event`) is echoed before the JWT is looked at: Monday
//!   does not document that the challenge carries one.
//!
//! A 200 `{}` is sent only after the inbox row is committed, also for duplicates and for events the
//! gateway ignores (recorded with their reason); Monday retries anything else for 30 minutes.
//! May import: axum, serde_json, secrecy, crate::{auth, domain, http, sync}.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::auth::constant_time_eq;
use crate::domain::event::MondayDelivery;
use crate::http::error::{ApiError, RawBody};
use crate::http::{AppState, now_unix, request_id_of};
use crate::ledger::inbox::InsertOutcome;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/monday", post(receive_signed_monday_webhook))
        .route(
            "/webhooks/monday/{token}",
            post(receive_tokened_monday_webhook),
        )
}

async fn receive_signed_monday_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    receive(state, headers, body, Route::Signed).await
}

async fn receive_tokened_monday_webhook(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let expected = state
        .monday_path_token
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("no such route".into()))?;
    if !constant_time_eq(token.as_bytes(), expected.expose_secret().as_bytes()) {
        return Err(ApiError::NotFound("no such route".into()));
    }
    receive(state, headers, body, Route::Tokened).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Signed,
    /// The path token already matched.
    Tokened,
}

async fn receive(
    state: AppState,
    headers: HeaderMap,
    body: axum::body::Bytes,
    route: Route,
) -> Result<Json<Value>, ApiError> {
    let event = match MondayDelivery::parse(&body) {
        Ok(MondayDelivery::Challenge(challenge)) => {
            return Ok(Json(json!({ "challenge": challenge })));
        }
        Ok(MondayDelivery::Event(event)) => {
            authenticate(&state, &headers, route)?;
            event
        }
        // Authenticate before describing what is wrong with the body.
        Err(e) => {
            authenticate(&state, &headers, route)?;
            return Err(ApiError::BadRequest(e.to_string()));
        }
    };
    let outcome = state
        .ingest
        .monday_event(&event, &body, request_id_of(&headers))
        .await?;
    let status = match outcome {
        InsertOutcome::Accepted(_) => "accepted",
        InsertOutcome::Duplicate => "duplicate",
    };
    tracing::info!(
        monday.trigger_uuid = %event.trigger_uuid,
        monday.event_type = %event.event_type,
        monday.board_id = event.board_id.map(|b| b.0),
        monday.item_id = event.item_id.map(|i| i.0),
        ingest.status = status,
        "Monday event {status}"
    );
    Ok(Json(json!({})))
}

fn authenticate(state: &AppState, headers: &HeaderMap, route: Route) -> Result<(), ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    match (route, &state.monday_jwt, authorization) {
        (Route::Tokened, None, _) | (Route::Tokened, Some(_), None) => Ok(()),
        (_, Some(verifier), Some(auth)) => verifier
            .verify(auth, now_unix())
            .map(|_claims| ())
            .map_err(|e| ApiError::Unauthorized(format!("Monday JWT rejected: {e}"))),
        (Route::Signed, Some(_), None) => Err(ApiError::Unauthorized(
            "missing `Authorization` header with Monday's JWT".into(),
        )),
        (Route::Signed, None, _) => Err(ApiError::Unauthorized(
            "Monday deliveries to /webhooks/monday are refused: MONDAY_SIGNING_SECRET is not configured \
             (unsigned webhooks use /webhooks/monday/{token} with MONDAY_WEBHOOK_TOKEN)"
                .into(),
        )),
    }
}
