//! Who is calling an admin route, whether they may, and the one audit row each call writes.
//!
//! Owns: the `Admin` extractor (a bearer token: the bootstrap `GATEWAY_ADMIN_TOKEN` or one made
//! with `admin-token create` and not revoked, whose SHA-256 is looked up; compared in constant
//! time; never accepted in a query string), the two fixed-window limits (`WindowLimiter`): failed
//! authentication per client address, and requests per token, and `audit_calls`, the middleware
//! that writes one audit row for every admin call, refused ones included, from what the extractor
//! and the handler noted (`AuditSlot`). A refusal by a limit writes a row only for the first
//! refusal of its window, so nobody can make the audit log grow without bound.
//! The console signs in through `sign_in` (the same token check and failure limit) and admits a
//! session's actor through `Admin::admit` (the same request limit), under the same middleware.
//! May import: std, axum, secrecy, crate::{auth, domain, http, ledger, sync}.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use crate::auth::{admin_token, constant_time_eq};
use crate::domain::state::AuditOutcome;
use crate::http::error::{ApiError, ProblemDetail};
use crate::http::{AppState, RequestDeadline, request_id_of};
use crate::ledger::admin::AuditEntry;
use crate::sync::admin as admin_use;

/// The length of a limit's window.
const WINDOW: Duration = Duration::from_secs(60);
/// Most keys a limiter tracks; past it, expired windows are dropped, and if that is not enough
/// every new key shares one window (memory stays bounded whatever the number of addresses).
const MAX_TRACKED: usize = 10_000;
const OVERFLOW_KEY: &str = "*";

/// An authenticated admin: the token's name (`bootstrap` for `GATEWAY_ADMIN_TOKEN`).
#[derive(Debug, Clone)]
pub struct Admin {
    pub actor: String,
    pub request_id: Option<String>,
    /// When the request must be answered by (the request timeout, from its start).
    pub deadline: Instant,
    audit: AuditSlot,
}

impl Admin {
    /// Names what this call does and to what, for its audit row.
    pub fn acts(&self, action: &str, target: Option<&str>) {
        self.audit.with(|n| {
            n.action = Some(action.to_owned());
            n.target = target.map(str::to_owned);
        });
    }

    /// The audit outcome of a successful call, when it is not plain `ok`.
    pub fn outcome(&self, outcome: AuditOutcome, detail: Option<&str>) {
        self.audit.with(|n| {
            n.outcome = Some(outcome);
            n.detail = detail.map(str::to_owned);
        });
    }
}

/// What the extractor and the handler noted about one admin call.
#[derive(Debug, Default)]
struct Note {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    outcome: Option<AuditOutcome>,
    detail: Option<String>,
    /// A repeated refusal by a limit: no row.
    skip: bool,
}

/// The note of one call, shared by the middleware, the extractor and the handler.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Note>>);

impl AuditSlot {
    fn with(&self, f: impl FnOnce(&mut Note)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Writes no audit row for this call (a console page asked for without a session).
    pub fn skip_row(&self) {
        self.with(|n| n.skip = true);
    }

    /// Names what a call that has no `Admin` (a console sign-in) does, and who it turned out to be.
    pub fn note(&self, action: &str, actor: Option<&str>) {
        self.with(|n| {
            n.action = Some(action.to_owned());
            n.actor = actor.map(str::to_owned);
        });
    }

    fn take(&self) -> Note {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The audit outcome a status implies when the handler noted none (a console action that
/// worked answers 303 to the page it came from).
fn outcome_of(status: StatusCode) -> AuditOutcome {
    match status.as_u16() {
        200..=399 => AuditOutcome::Ok,
        401 | 403 | 429 => AuditOutcome::Denied,
        404 => AuditOutcome::NotFound,
        400..=499 => AuditOutcome::Rejected,
        _ => AuditOutcome::Failed,
    }
}

/// Middleware of the admin routes: one audit row per call, written once its answer is known.
pub async fn audit_calls(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(String::new, |p| p.as_str().to_owned());
    let fallback_action = format!("{} {route}", req.method());
    let request_id = request_id_of(req.headers());
    let response = next.run(req).await;
    let note = slot.take();
    if note.skip {
        return response;
    }
    let problem = response.extensions().get::<ProblemDetail>();
    let detail = note.detail.or_else(|| problem.map(|p| p.0.clone()));
    let action = note.action.unwrap_or(fallback_action);
    let entry = AuditEntry {
        actor: note.actor.as_deref().unwrap_or("unknown"),
        action: &action,
        target: note.target.as_deref(),
        request_id: request_id.as_deref(),
        outcome: note
            .outcome
            .unwrap_or_else(|| outcome_of(response.status())),
        detail: detail.as_deref(),
    };
    admin_use::audit(&state.store, &entry).await;
    response
}

/// A fixed one-minute window per key.
#[derive(Debug, Default)]
pub struct WindowLimiter {
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
    refused: u32,
}

/// A refusal by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Until the window resets.
    pub wait: Duration,
    /// The first refusal of this window (the only one audited).
    pub first: bool,
}

impl WindowLimiter {
    /// Runs `f` on `key`'s current window.
    fn on<T>(&self, key: &str, now: Instant, f: impl FnOnce(&mut Window) -> T) -> T {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_TRACKED && !windows.contains_key(key) {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
        }
        let key = if windows.len() >= MAX_TRACKED && !windows.contains_key(key) {
            OVERFLOW_KEY
        } else {
            key
        };
        let fresh = Window {
            started: now,
            count: 0,
            refused: 0,
        };
        let window = windows.entry(key.to_owned()).or_insert(fresh);
        if now.duration_since(window.started) >= WINDOW {
            *window = fresh;
        }
        f(window)
    }

    /// `Err` when `key` has used up `limit` in this window (counting the refusal), else `Ok`.
    fn check(window: &mut Window, now: Instant, limit: u32) -> Result<(), Refused> {
        if window.count < limit {
            return Ok(());
        }
        window.refused = window.refused.saturating_add(1);
        Err(Refused {
            wait: WINDOW.saturating_sub(now.duration_since(window.started)),
            first: window.refused == 1,
        })
    }

    /// Counts one request of `key` unless its `limit` for this window is used up.
    pub fn hit(&self, key: &str, limit: u32) -> Result<(), Refused> {
        let now = Instant::now();
        self.on(key, now, |w| {
            Self::check(w, now, limit)?;
            w.count += 1;
            Ok(())
        })
    }

    /// Whether `key` may try again (its failures of this window are below `limit`).
    pub fn allows(&self, key: &str, limit: u32) -> Result<(), Refused> {
        let now = Instant::now();
        self.on(key, now, |w| Self::check(w, now, limit))
    }

    /// Counts one failure of `key`.
    pub fn failed(&self, key: &str) {
        self.on(key, Instant::now(), |w| w.count = w.count.saturating_add(1));
    }
}

/// The two admin limits.
#[derive(Debug, Default)]
pub struct AdminLimits {
    /// Failed authentications per client address.
    pub failures: WindowLimiter,
    /// Requests per token.
    pub requests: WindowLimiter,
}

/// The token of `Authorization: Bearer <token>`, if the header has that form.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether a query string carries something that looks like a credential.
fn query_carries_token(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let key = pair
                .split('=')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            matches!(
                key.as_str(),
                "token" | "access_token" | "admin_token" | "api_key" | "authorization"
            )
        })
    })
}

/// 401 with `WWW-Authenticate: Bearer`.
fn unauthorized(detail: &str) -> Response {
    let mut response = ApiError::Unauthorized(detail.to_owned()).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// 429 with `Retry-After`, audited only for the first refusal of the window.
fn limited(slot: &AuditSlot, refused: Refused, detail: String) -> ApiError {
    slot.with(|n| n.skip = !refused.first);
    let secs = refused.wait.as_secs().max(1);
    ApiError::RateLimited {
        detail,
        retry_after_secs: secs,
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let slot = parts
            .extensions
            .get::<AuditSlot>()
            .cloned()
            .unwrap_or_default();
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_owned());
        slot.with(|n| {
            n.action = Some("authenticate".into());
            n.target = route;
        });
        let address = client_address(parts);
        let sync = &state.settings.sync;
        if let Err(refused) = state
            .admin_limits
            .failures
            .allows(&address, sync.admin_auth_failures_per_minute)
        {
            let detail = "too many failed admin authentications from this address".to_owned();
            return Err(limited(&slot, refused, detail).into_response());
        }
        let actor = match authenticate(parts, state).await {
            Ok(actor) => actor,
            Err(Failure::Denied(detail)) => {
                state.admin_limits.failures.failed(&address);
                return Err(unauthorized(detail));
            }
            Err(Failure::Store(e)) => return Err(ApiError::from(e).into_response()),
        };
        Admin::admit(parts, state, actor).map_err(|refused| refused.into_response())
    }
}

/// A call refused by the per-token request limit (audited only for the first of its window).
#[derive(Debug)]
pub struct OverLimit(pub ApiError);

impl IntoResponse for OverLimit {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl Admin {
    /// The admin `actor`, authenticated by a bearer token or a console session, once the
    /// per-token request limit lets the call through; its audit row names the actor.
    pub fn admit(parts: &Parts, state: &AppState, actor: String) -> Result<Admin, OverLimit> {
        let slot = parts
            .extensions
            .get::<AuditSlot>()
            .cloned()
            .unwrap_or_default();
        slot.with(|n| n.actor = Some(actor.clone()));
        let per_minute = state.settings.sync.admin_requests_per_minute;
        if let Err(refused) = state.admin_limits.requests.hit(&actor, per_minute) {
            let detail = format!("admin request limit of {per_minute} per minute reached");
            return Err(OverLimit(limited(&slot, refused, detail)));
        }
        slot.with(|n| n.action = None);
        let deadline = parts.extensions.get::<RequestDeadline>().map_or_else(
            || Instant::now() + state.settings.http.request_timeout(),
            |d| d.0,
        );
        Ok(Admin {
            actor,
            request_id: request_id_of(&parts.headers),
            deadline,
            audit: slot,
        })
    }
}

/// Why a console sign-in was refused.
#[derive(Debug)]
pub enum SignInRefused {
    /// This address failed too often this minute (429 with `Retry-After`).
    Limited(ApiError),
    /// A wrong or revoked token (401).
    Denied(&'static str),
    Store(crate::ledger::LedgerError),
}

/// Checks an admin token given to the console's sign-in form exactly as the `Admin` extractor
/// checks a bearer token: the same failed-authentication limit per client address, the
/// bootstrap token in constant time, then the hashes of `admin-token create`. The actor, or why not.
pub async fn sign_in(
    state: &AppState,
    slot: &AuditSlot,
    address: &str,
    token: &str,
) -> Result<String, SignInRefused> {
    let failures = state.settings.sync.admin_auth_failures_per_minute;
    if let Err(refused) = state.admin_limits.failures.allows(address, failures) {
        let detail = "too many failed admin authentications from this address".to_owned();
        return Err(SignInRefused::Limited(limited(slot, refused, detail)));
    }
    match token_actor(state, token.trim()).await {
        Ok(actor) => Ok(actor),
        Err(Failure::Denied(detail)) => {
            state.admin_limits.failures.failed(address);
            Err(SignInRefused::Denied(detail))
        }
        Err(Failure::Store(e)) => Err(SignInRefused::Store(e)),
    }
}

/// The client address of a request, as the failed-authentication limit keys it.
pub fn client_address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

enum Failure {
    Denied(&'static str),
    Store(crate::ledger::LedgerError),
}

/// The actor a request authenticates as.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<String, Failure> {
    if query_carries_token(parts.uri.query()) {
        return Err(Failure::Denied(
            "admin tokens are never accepted in a query string",
        ));
    }
    let Some(token) = bearer(parts) else {
        return Err(Failure::Denied(
            "missing `Authorization: Bearer <admin token>`",
        ));
    };
    token_actor(state, token).await
}

/// The actor an admin token names: `bootstrap`, or the name of a live token made with
/// `admin-token create`.
async fn token_actor(state: &AppState, token: &str) -> Result<String, Failure> {
    if token.is_empty() {
        return Err(Failure::Denied("invalid admin token"));
    }
    let bootstrap = state
        .settings
        .admin
        .token
        .as_ref()
        .is_some_and(|b| constant_time_eq(b.expose_secret().as_bytes(), token.as_bytes()));
    if bootstrap {
        return Ok("bootstrap".to_owned());
    }
    match state
        .store
        .admin_token_name(&admin_token::hash(token))
        .await
    {
        Ok(Some(name)) => Ok(name),
        Ok(None) => Err(Failure::Denied("invalid admin token")),
        Err(e) => Err(Failure::Store(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refuses_past_its_limit_and_only_the_first_refusal_is_audited() {
        let limiter = WindowLimiter::default();
        for _ in 0..3 {
            assert_eq!(limiter.hit("a", 3), Ok(()));
        }
        let first = limiter.hit("a", 3).expect_err("over the limit");
        assert!(first.first && first.wait <= WINDOW && !first.wait.is_zero());
        let again = limiter.hit("a", 3).expect_err("still over");
        assert!(!again.first, "a repeated refusal is not audited again");
        assert_eq!(
            limiter.hit("b", 3),
            Ok(()),
            "another key has its own window"
        );
    }

    #[test]
    fn failures_count_only_when_noted_and_memory_stays_bounded() {
        let limiter = WindowLimiter::default();
        assert_eq!(limiter.allows("10.0.0.1", 2), Ok(()));
        limiter.failed("10.0.0.1");
        limiter.failed("10.0.0.1");
        assert!(limiter.allows("10.0.0.1", 2).is_err());
        for i in 0..(MAX_TRACKED + 50) {
            limiter.failed(&format!("addr-{i}"));
        }
        let tracked = limiter.windows.lock().map(|w| w.len()).unwrap_or(0);
        assert!(tracked <= MAX_TRACKED + 1, "{tracked} windows");
    }
}
