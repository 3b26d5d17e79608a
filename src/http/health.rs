//! Operations: `GET /healthz` (the process is up), `GET /readyz` (the store answers and is
//! migrated) and `GET /metrics` (Prometheus text: this process's counters and histograms, plus
//! the queue depths read from the ledger with a few indexed statements and the Monday budget,
//! both read at scrape time).
//!
//! May import: axum, serde_json, crate::{domain, http, ledger, metrics, sync}.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::domain::budget::Remaining;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::metrics::{LedgerGauge, Metrics};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.store.ready().await {
        Ok(true) => Ok(Json(json!({"status": "ready"}))),
        Ok(false) => Err(ApiError::NotReady("migrations are not all applied".into())),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::NotReady("the store is unreachable".into()))
        }
    }
}

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
