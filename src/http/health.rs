//! Operations: `GET /healthz` (the process is up), `GET /readyz` (the store answers and is
//! migrated) and `GET /metrics` (Prometheus text, counted from the ledger at scrape time).
//!
//! May import: axum, serde_json, crate::{http, ledger}.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::http::AppState;
use crate::http::error::ApiError;

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
