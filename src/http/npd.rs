//! `POST /api/v1/npd/events`: NPD's signed change events.
//!
//! Owns: the route, Standard Webhooks verification over the raw bytes, and the 202 answer.
//! Order of checks: signature (401) before parsing (400), so an unauthenticated caller learns
//! nothing about the payload rules; a 202 is sent only after the inbox row is committed.
//! May import: axum, serde, crate::{auth, domain, http, sync}.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use crate::auth::standard_webhooks::SignedHeaders;
use crate::domain::event::NpdEvent;
use crate::http::error::{ApiError, RawBody};
use crate::http::{AppState, now_unix, request_id_of};
use crate::ledger::inbox::InsertOutcome;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/npd/events", post(receive_npd_event))
}

/// The 202 body.
#[derive(Debug, Serialize)]
pub struct NpdEventResponse {
    pub event_id: String,
    /// `accepted`, or `duplicate` when this `webhook-id` was already stored.
    pub status: &'static str,
}

async fn receive_npd_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<NpdEventResponse>), ApiError> {
    let verifier = state.npd_verifier.as_ref().ok_or_else(|| {
        ApiError::Unauthorized(
            "NPD events are refused: NPD_WEBHOOK_SECRET is not configured".into(),
        )
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = SignedHeaders {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    let webhook_id = signed.id.unwrap_or_default().to_owned();
    verifier
        .verify(signed, &body, now_unix())
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;

    let event = NpdEvent::parse(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let outcome = state
        .ingest
        .npd_event(&webhook_id, &event, &body, request_id_of(&headers))
        .await?;
    let status = match outcome {
        InsertOutcome::Accepted(_) => "accepted",
        InsertOutcome::Duplicate => "duplicate",
    };
    tracing::info!(
        npd.event_id = %webhook_id,
        npd.event_type = event.event_type.as_str(),
        npd.id = %event.npd_id(),
        npd.version = event.version(),
        ingest.status = status,
        "NPD event {status}"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(NpdEventResponse {
            event_id: webhook_id,
            status,
        }),
    ))
}
