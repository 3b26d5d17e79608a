//! Operations: `GET /healthz` (the process is up), `GET /readyz` (the store answers and is
//! migrated) and `GET /metrics` (Prometheus text: this process's counters and histograms, plus
//! the queue depths read from the ledger with a few indexed statements and the Monday budget,
//! both read at scrape time).
//!
//! May import: axum, serde, serde_json, utoipa, utoipa-axum, crate::{domain, http, ledger, metrics, sync}.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::budget::Remaining;
use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::metrics::{LedgerGauge, Metrics};

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
    let now = crate::ledger::now_ms();
    let g = state.store.gauges(now).await?;
    let m = &state.metrics;
    let age = |at: Option<i64>| at.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
    m.set_ledger(LedgerGauge::InboxUnprocessed, g.inbox_unprocessed as f64);
    m.set_ledger(
        LedgerGauge::InboxOldestUnprocessedSeconds,
        age(g.inbox_oldest_unprocessed_at),
    );
    for (job_state, n) in &g.jobs {
        m.set_ledger(LedgerGauge::OutboxJobs(*job_state), *n as f64);
    }
    m.set_ledger(LedgerGauge::OutboxOldestDueSeconds, age(g.oldest_due_at));
    m.set_ledger(LedgerGauge::ConflictsOpen, g.open_conflicts as f64);
    report_budget(m, state.budget.remaining().await?);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        m.render(),
    ))
}

/// The one place the budget meets the metrics: what is left of each limit (`+Inf` for a limit
/// that is not set).
fn report_budget(metrics: &Metrics, left: Remaining) {
    metrics.set_budget_remaining(
        left.minute as f64,
        left.complexity as f64,
        left.daily.map_or(f64::INFINITY, |d| d as f64),
    );
}
