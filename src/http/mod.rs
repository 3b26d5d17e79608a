//! The axum edge: routes, extractors, wire answers and problem+json errors.
//!
//! Owns: `AppState`, `router()` with its middleware stack (request ids, bounded when a client
//! sends one, sensitive headers, tracing without raw paths or bodies, body limit, request timeout
//! with the request's `RequestDeadline`, and load shedding past `max_concurrent_requests`: 503
//! with `Retry-After` at once, never a queue), and one submodule per surface. Every route is
//! registered through `utoipa_axum`'s `OpenApiRouter`, so `/openapi.json` is generated from the
//! handlers themselves (see `admin`'s header for how a route is documented), except the admin
//! console's HTML routes under `/admin` (`console`), which are left out of it.
//! Handlers are thin: authenticate, parse into domain types, call one `sync` use case, answer.
//! May import: std, axum, tokio, tower, tower-http, tracing, utoipa, utoipa-axum,
//! crate::{auth, config, domain, metrics, ledger, sync}.

pub mod admin;
pub mod backfill;
pub mod console;
pub mod error;
pub mod health;
pub mod monday;
pub mod npd;
pub mod openapi;
pub mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::monday_jwt::MondayJwtVerifier;
use crate::auth::standard_webhooks::Verifier;
use crate::config::Settings;
use crate::ledger::Store;
use crate::metrics::Metrics;
use crate::sync::budget::MondayBudget;
use crate::sync::ingest::Ingest;
use crate::sync::push::Pusher;
use crate::sync::scan::Scans;
use crate::worker::Wake;
use error::{ApiError, BodyLimit};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub ingest: Ingest,
    /// `None` when `NPD_WEBHOOK_SECRET` is unset: every NPD event is then refused with 401.
    pub npd_verifier: Option<Verifier>,
    /// `None` when `MONDAY_SIGNING_SECRET` is unset.
    pub monday_jwt: Option<MondayJwtVerifier>,
    /// `MONDAY_WEBHOOK_TOKEN`, for `/webhooks/monday/{token}`.
    pub monday_path_token: Option<SecretString>,
    /// Forced pushes requested by admins.
    pub pusher: Pusher,
    /// Failed authentications per address and requests per token.
    pub admin_limits: Arc<admin::AdminLimits>,
    /// Wakes the workers when an admin action queued work.
    pub wake: Wake,
    /// This process's metrics (every request is timed into them; `/metrics` renders them).
    pub metrics: Metrics,
    /// The Monday budget the dispatcher spends from (read for status and `/metrics`).
    pub budget: Arc<MondayBudget>,
    /// Backfills, the review queue and drift scans.
    pub scans: Scans,
}

impl AppState {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        ingest: Ingest,
        pusher: Pusher,
        wake: Wake,
        scans: Scans,
    ) -> Self {
        let npd_verifier = settings.npd.verifier();
        let monday_jwt = settings
            .monday
            .jwt_verifier(settings.http.monday_audience());
        let monday_path_token = settings.monday.webhook_token.clone();
        let budget = Arc::new(MondayBudget::new(&settings.monday, &store));
        AppState {
            budget,
            settings,
            store,
            ingest,
            npd_verifier,
            monday_jwt,
            monday_path_token,
            pusher,
            admin_limits: Arc::default(),
            wake,
            metrics: Metrics::default(),
            scans,
        }
    }

    /// Reports into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The state reading the dispatcher's own budget (on SQLite it lives in this process).
    pub fn with_budget(mut self, budget: Arc<MondayBudget>) -> Self {
        self.budget = budget;
        self
    }
}

/// Every route of the gateway with its middleware.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.http.body_limit_bytes;
    let request_timeout = state.settings.http.request_timeout();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(
        state.settings.http.max_concurrent_requests,
    ));
    let metrics = state.metrics.clone();
    let shed_metrics = state.metrics.clone();
    let sensitive: Arc<[HeaderName]> = Arc::new([
        header::AUTHORIZATION,
        header::COOKIE,
        HeaderName::from_static("webhook-signature"),
    ]);
    let (routes, document) = OpenApiRouter::with_openapi(openapi::document())
        .merge(health::router())
        .merge(npd::router())
        .merge(monday::router())
        .merge(admin::router(state.clone()))
        .merge(backfill::router(state.clone()))
        .split_for_parts();
    routes
        .merge(openapi::router(&document))
        // HTML for people, not part of the API document.
        .merge(console::router(state.clone()))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive))
                .layer(middleware::from_fn(bound_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(make_request_span)
                        .on_response(DefaultOnResponse::new().level(Level::INFO))
                        // ApiError logs what needs logging; failures are not logged twice.
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                .layer(middleware::from_fn(move |req: Request, next: Next| {
                    timed(metrics.clone(), req, next)
                }))
                .layer(middleware::from_fn(move |req: Request, next: Next| {
                    shed_load(Arc::clone(&in_flight), shed_metrics.clone(), req, next)
                }))
                .layer(DefaultBodyLimit::max(body_limit))
                .layer(middleware::from_fn(
                    move |mut req: Request, next: Next| async move {
                        req.extensions_mut().insert(BodyLimit(body_limit));
                        with_timeout(request_timeout, req, next).await
                    },
                )),
        )
}

/// The request span: method, route template (never the raw path: `/webhooks/monday/{token}`
/// carries a secret) and request id.
fn make_request_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", |p| p.as_str());
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", http.method = %req.method(), http.route = route, request_id)
}

/// Times a request into `gateway_http_request_duration_seconds` by route template and status.
async fn timed(metrics: Metrics, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    metrics.http_request(&route, response.status().as_u16(), started.elapsed());
    response
}

/// Routes that are never shed: probes and metrics must answer while the gateway is busiest.
const NEVER_SHED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Serves a request while a slot of `max_concurrent_requests` is free; without one, answers 503
/// with `Retry-After` at once (nothing was read, nothing accepted), so a surge never queues.
async fn shed_load(
    slots: Arc<tokio::sync::Semaphore>,
    metrics: Metrics,
    req: Request,
    next: Next,
) -> Response {
    if NEVER_SHED.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    match slots.try_acquire_owned() {
        Ok(_slot) => {
            let _counted = metrics.request_started();
            next.run(req).await
        }
        Err(_) => {
            metrics.request_shed();
            ApiError::Overloaded.into_response()
        }
    }
}

/// When a request must be answered by: its start plus the request timeout. A handler that waits
/// (a push with `?wait=true`) answers before it, never letting the timeout answer 408.
#[derive(Debug, Clone, Copy)]
pub struct RequestDeadline(pub Instant);

/// Answers 408 (problem+json) when a request, body included, takes longer than `timeout`.
async fn with_timeout(timeout: Duration, mut req: Request, next: Next) -> Response {
    req.extensions_mut()
        .insert(RequestDeadline(Instant::now() + timeout));
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}

/// The longest client-sent `x-request-id` kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client-sent request id may be kept: 1 to 128 characters of letters, digits and
/// `-_.:@/+=`. Anything else is dropped and a fresh UUID is set instead, so what reaches the logs
/// and the ledger is bounded and printable.
pub fn acceptable_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/+=".contains(b))
}

/// Drops a client's `x-request-id` that is too long or carries other characters.
async fn bound_request_id(mut req: Request, next: Next) -> Response {
    let refused = req
        .headers()
        .get_all(REQUEST_ID_HEADER)
        .iter()
        .any(|v| !acceptable_request_id(v.as_bytes()));
    if refused || req.headers().get_all(REQUEST_ID_HEADER).iter().count() > 1 {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    next.run(req).await
}

/// The request id set by the middleware, for storing with what the request caused.
pub fn request_id_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Unix seconds now, for signature windows.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_request_ids_are_kept() {
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        let cases: [(&[u8], bool); 6] = [
            (b"3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10", true),
            (b"req_01:trace/span=a+b@c", true),
            (b"", false),
            (long.as_bytes(), false),
            (b"has space", false),
            (b"line\nbreak\x00", false),
        ];
        for (id, kept) in cases {
            assert_eq!(
                acceptable_request_id(id),
                kept,
                "{:?}",
                String::from_utf8_lossy(id)
            );
        }
    }
}
