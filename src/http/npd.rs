//! `POST /api/v1/npd/events`: NPD's signed change events.
//!
//! Owns: the route, Standard Webhooks verification over the raw bytes, and the 202 answer.
//! Order of checks: signature (401) before parsing (400), so an unauthenticated caller learns
//! nothing about the payload rules; a 202 is sent only after the inbox row is committed.
//! May import: axum, serde, utoipa, utoipa-axum, crate::{auth, domain, http, sync}.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::standard_webhooks::SignedHeaders;
use crate::domain::event::NpdEvent;
use crate::http::error::{ApiError, NpdProblems, RawBody};
use crate::http::{AppState, now_unix, request_id_of};
use crate::ledger::inbox::InsertOutcome;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_npd_event))
}

/// The 202 body.
#[derive(Debug, Serialize, ToSchema)]
pub struct NpdEventResponse {
    pub event_id: String,
    /// `accepted`, or `duplicate` when this `webhook-id` was already stored.
    #[schema(value_type = String, pattern = "^(accepted|duplicate)$")]
    pub status: &'static str,
}

/// An NPD change event (CONTRACT: `data` is the record's full snapshot).
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "the request body of the OpenAPI document, parsed by NpdEvent"
)]
struct NpdEventBody {
    /// `contact.created|updated|deleted`, `organization.created|updated|deleted`.
    #[schema(
        rename = "type",
        pattern = "^(contact|organization)[.](created|updated|deleted)$"
    )]
    event_type: String,
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    /// The record: `id` (UUID) and `version` are required, other fields optional.
    #[schema(value_type = Object)]
    data: (),
}

#[utoipa::path(
    post, path = "/api/v1/npd/events", tag = "ingress",
    summary = "Receive a signed NPD change event (Standard Webhooks v1)",
    params(
        ("webhook-id" = String, Header, description = "The event id and dedupe key"),
        ("webhook-timestamp" = i64, Header, description = "Unix seconds, within 300 s of now"),
        ("webhook-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256>`, space-separated"),
    ),
    request_body(content = NpdEventBody, content_type = "application/json"),
    responses((status = 202, body = NpdEventResponse, description = "Committed to the inbox"), NpdProblems)
)]
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
