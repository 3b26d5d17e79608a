//! The admin console at `/admin`: server-rendered HTML pages (maud, no script, no external asset)
//! over the same use cases, wire views and audit rows as the admin API.
//!
//! Owns: the console's router and its security headers (`secured`: a strict
//! Content-Security-Policy with no script at all, frames refused, no referrer, nothing cached),
//! sessions (`session`: a random 32-byte id in an HttpOnly, SameSite=Strict cookie scoped to
//! `/admin`, `Secure` behind an https `GATEWAY_PUBLIC_URL`, stored only as its SHA-256, with an
//! idle timeout and an absolute maximum), the posted forms and their CSRF check (`form`), the pages
//! (`pages`), the actions (`actions`) and the markup (`views`).
//! Every action calls the function the admin API's handler calls (`http::admin::push_entity`,
//! `replay`, `resolve_with`, `http::backfill::settle_review`, ...) under the same audit
//! middleware (`http::admin::audit_calls`), so it does the same and writes the same audit row.
//! The console is HTML, not part of `/openapi.json` (its routes are plain axum routes).
//! May import: std, axum, maud, serde, serde_json, serde_urlencoded,
//! crate::{auth, domain, http, ledger, sync}.

mod actions;
mod form;
mod pages;
mod session;
mod views;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::http::AppState;
use crate::http::admin::audit_calls;

pub use session::SESSION_COOKIE;

/// The console's Content-Security-Policy: nothing but same-origin stylesheets, images and form
/// posts; no script at all, no frames, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Every console route, behind the security headers and the admin audit middleware.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin", get(pages::overview))
        .route("/admin/console.css", get(pages::stylesheet))
        .route(
            "/admin/login",
            get(session::login_form).post(session::login),
        )
        .route("/admin/logout", post(session::logout))
        .route("/admin/entities", get(pages::search))
        .route("/admin/contacts/{id}", get(pages::contact))
        .route("/admin/organizations/{id}", get(pages::organization))
        .route("/admin/contacts/{id}/push", post(actions::push_contact))
        .route(
            "/admin/organizations/{id}/push",
            post(actions::push_organization),
        )
        .route("/admin/conflicts", get(pages::conflicts))
        .route(
            "/admin/conflicts/{id}/resolve",
            post(actions::resolve_conflict),
        )
        .route("/admin/dead-letters", get(pages::dead_letters))
        .route(
            "/admin/dead-letters/{id}/replay",
            post(actions::replay_dead_letter),
        )
        .route("/admin/backfills", get(pages::backfills))
        .route("/admin/matches/{id}/resolve", post(actions::resolve_match))
        .route("/admin/drift-scans", get(pages::drift_scans))
        .layer(middleware::from_fn_with_state(state, audit_calls))
        .layer(middleware::from_fn(secured))
}

/// Adds the console's security headers to every answer.
async fn secured(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
