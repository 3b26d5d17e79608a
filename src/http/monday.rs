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
//! May import: axum, serde, secrecy, utoipa, utoipa-axum, crate::{auth, domain, http, sync}.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::constant_time_eq;
use crate::domain::event::MondayDelivery;
use crate::http::error::{ApiError, MondayProblems, RawBody};
use crate::http::{AppState, now_unix, request_id_of};
use crate::ledger::inbox::InsertOutcome;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive_signed_monday_webhook))
        .routes(routes!(receive_tokened_monday_webhook))
}

/// `{}`, or the challenge echoed: `{"challenge": "…"}`.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct MondayAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
}

/// A Monday delivery: `{"event": {…}}` as Monday sends it, or `{"challenge": "…"}`.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "the request body of the OpenAPI document, parsed by MondayDelivery"
)]
struct MondayDeliveryBody {
    challenge: Option<String>,
    #[schema(value_type = Option<Object>)]
    event: (),
}

#[utoipa::path(
    post, path = "/webhooks/monday", tag = "ingress",
    summary = "Receive a Monday webhook delivery signed with an HS256 JWT",
    params(("Authorization" = Option<String>, Header, description = "Monday's JWT, raw or `Bearer`")),
    request_body(content = MondayDeliveryBody, content_type = "application/json"),
    responses((status = 200, body = MondayAnswer, description = "Committed (or a duplicate, or recorded as ignored)"), MondayProblems)
)]
async fn receive_signed_monday_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<MondayAnswer>, ApiError> {
    receive(state, headers, body, Route::Signed).await
}

#[utoipa::path(
    post, path = "/webhooks/monday/{token}", tag = "ingress",
    summary = "Receive an unsigned Monday webhook delivery on a secret path",
    params(("token" = String, Path, description = "MONDAY_WEBHOOK_TOKEN")),
    request_body(content = MondayDeliveryBody, content_type = "application/json"),
    responses((status = 200, body = MondayAnswer, description = "Committed (or a duplicate, or recorded as ignored)"), MondayProblems)
)]
async fn receive_tokened_monday_webhook(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<MondayAnswer>, ApiError> {
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
) -> Result<Json<MondayAnswer>, ApiError> {
    let event = match MondayDelivery::parse(&body) {
        Ok(MondayDelivery::Challenge(challenge)) => {
            return Ok(Json(MondayAnswer {
                challenge: Some(challenge),
            }));
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
    Ok(Json(MondayAnswer::default()))
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
