//! The axum edge: routes, extractors, wire answers and problem+json errors.
//!
//! Owns: `AppState`, `router()` with its middleware stack (request ids, sensitive headers, tracing
//! without raw paths or bodies, body limit, request timeout), and one submodule per surface.
//! Handlers are thin: authenticate, parse into domain types, call one `sync` use case, answer.
//! May import: std, axum, tokio, tower, tower-http, tracing, crate::{auth, config, domain, ledger,
//! sync}.

pub mod admin;
pub mod backfill;
pub mod error;
pub mod health;
pub mod monday;
pub mod npd;
pub mod openapi;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

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

use crate::auth::monday_jwt::MondayJwtVerifier;
use crate::auth::standard_webhooks::Verifier;
use crate::config::Settings;
use crate::ledger::Store;
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
    pub admin_limiter: Arc<admin::AdminRateLimiter>,
    /// Wakes the workers when an admin action queued work.
    pub wake: Wake,
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
        AppState {
            settings,
            store,
            ingest,
            npd_verifier,
            monday_jwt,
            monday_path_token,
            pusher,
            admin_limiter: Arc::default(),
            wake,
            scans,
        }
    }
}

/// Every route of the gateway with its middleware.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.http.body_limit_bytes;
    let request_timeout = state.settings.http.request_timeout();
    let sensitive: Arc<[HeaderName]> = Arc::new([
        header::AUTHORIZATION,
        header::COOKIE,
        HeaderName::from_static("webhook-signature"),
    ]);
    Router::new()
        .merge(health::router())
        .merge(npd::router())
        .merge(monday::router())
        .merge(admin::router())
        .merge(backfill::router())
        .merge(openapi::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive))
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(make_request_span)
                        .on_response(DefaultOnResponse::new().level(Level::INFO))
                        // ApiError logs what needs logging; failures are not logged twice.
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
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

/// Answers 408 (problem+json) when a request, body included, takes longer than `timeout`.
async fn with_timeout(timeout: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
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
