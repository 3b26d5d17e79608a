//! Operations: `GET /healthz` (the process is up), `GET /readyz` (the store answers and is
//! migrated) and `GET /metrics` (Prometheus text, counted from the ledger at scrape time).
//!
//! May import: axum, serde, utoipa, utoipa-axum, crate::{http, ledger}.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::error::{ApiError, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: String,
}

#[utoipa::path(
    get, path = "/healthz", tag = "operations", summary = "The process is up",
    responses((status = 200, body = HealthResponse, description = "Up"))
)]
async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
    })
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations", summary = "The store is reachable and migrated",
    responses(
        (status = 200, body = HealthResponse, description = "Ready"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The store is unreachable or not migrated"),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<HealthResponse>, ApiError> {
    match state.store.ready().await {
        Ok(true) => Ok(Json(HealthResponse {
            status: "ready".into(),
        })),
        Ok(false) => Err(ApiError::NotReady("migrations are not all applied".into())),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::NotReady("the store is unreachable".into()))
        }
    }
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations", summary = "Prometheus text",
    responses(
        (status = 200, body = String, content_type = "text/plain", description = "Prometheus text exposition format"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The store cannot be read"),
    )
)]
async fn metrics(
    State(state): State<AppState>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    use std::fmt::Write;
    let stats = state.store.stats().await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP gateway_inbox_events Accepted deliveries by source and processing outcome."
    );
    let _ = writeln!(out, "# TYPE gateway_inbox_events gauge");
    for (source, outcome, n) in &stats.inbox {
        let _ = writeln!(
            out,
            "gateway_inbox_events{{source=\"{source}\",outcome=\"{outcome}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP gateway_outbox_jobs Outbox jobs by target, operation and state (dead = dead letters)."
    );
    let _ = writeln!(out, "# TYPE gateway_outbox_jobs gauge");
    for (target, operation, job_state, n) in &stats.jobs {
        let _ = writeln!(
            out,
            "gateway_outbox_jobs{{target=\"{target}\",operation=\"{operation}\",state=\"{job_state}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP gateway_conflicts_open Conflicts waiting for an admin."
    );
    let _ = writeln!(out, "# TYPE gateway_conflicts_open gauge");
    let _ = writeln!(out, "gateway_conflicts_open {}", stats.open_conflicts);
    let _ = writeln!(
        out,
        "# HELP gateway_entities Synced entities by kind and status."
    );
    let _ = writeln!(out, "# TYPE gateway_entities gauge");
    for (kind, status, n) in &stats.entities {
        let _ = writeln!(
            out,
            "gateway_entities{{kind=\"{kind}\",status=\"{status}\"}} {n}"
        );
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    ))
}
