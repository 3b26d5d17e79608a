//! Console sessions: signing in with an admin token, the `Session` extractor every page and
//! action takes, and signing out.
//!
//! A session id is 32 random bytes in the `gw_console` cookie (HttpOnly, SameSite=Strict,
//! Path=/admin, Secure behind an https `GATEWAY_PUBLIC_URL`, Max-Age the absolute maximum); the
//! ledger keeps only its SHA-256. The sign-in form carries a CSRF token of its own before any
//! session exists: a random token in the `gw_console_login` cookie and the same in the form's
//! `csrf_token` field (double submit; a cross-site page can neither read the cookie nor set it,
//! SameSite=Strict keeps it off cross-site posts).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::form::{Nothing, Posted, parse_form};
use super::views;
use crate::auth::console_session::{csrf_token, new_secret, same, stored_form};
use crate::http::AppState;
use crate::http::admin::{Admin, AuditSlot, SignInRefused, client_address, sign_in};
use crate::http::error::{ApiError, RawBody};
use crate::ledger::console::{Liveness, NewSession};

/// The session cookie.
pub const SESSION_COOKIE: &str = "gw_console";
/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "gw_console_login";
/// How long a sign-in form stays usable.
const LOGIN_FORM_SECS: u64 = 3_600;

/// A signed-in admin: the `Admin` the admin API's functions take, and this session's CSRF token.
pub struct Session {
    pub admin: Admin,
    pub csrf: String,
    stored: String,
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value scoped to the console.
fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = state
        .settings
        .http
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict{secure}; Max-Age={max_age_secs}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// 303 to `location`, with these cookies set.
pub fn see_other(location: &str, cookies: &[HeaderValue]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    for c in cookies {
        headers.append(header::SET_COOKIE, c.clone());
    }
    response
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    /// The live session of the request's cookie, or 303 to the sign-in page (not audited:
    /// nobody has authenticated).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let slot = parts.extensions.get::<AuditSlot>().cloned();
        let to_login = |clear: bool| {
            if let Some(slot) = &slot {
                slot.skip_row();
            }
            let cleared = [set_cookie(state, SESSION_COOKIE, "", 0)];
            see_other("/admin/login", if clear { &cleared[..] } else { &[] })
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(false));
        };
        let stored = stored_form(&id);
        let live = Liveness {
            idle_ms: millis(state.settings.console.session_idle),
            bootstrap: state.settings.admin.token.is_some(),
        };
        let actor = match state.store.touch_console_session(&stored, live).await {
            Ok(Some(actor)) => actor,
            Ok(None) => return Err(to_login(true)),
            Err(e) => return Err(views::error_page(ApiError::from(e))),
        };
        let admin = Admin::admit(parts, state, actor).map_err(|over| views::error_page(over.0))?;
        Ok(Session {
            admin,
            csrf: csrf_token(&id),
            stored,
        })
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `GET /admin/login`: the sign-in form, with a fresh form token (not audited).
pub async fn login_form(
    State(state): State<AppState>,
    axum::Extension(slot): axum::Extension<AuditSlot>,
) -> Response {
    slot.skip_row();
    login_page(&state, StatusCode::OK, None)
}

/// The sign-in form answered with `status`, a new form token in its cookie and its field.
fn login_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let token = new_secret();
    let mut response = (status, views::login(&token, error)).into_response();
    let cookie = set_cookie(state, LOGIN_COOKIE, &token, LOGIN_FORM_SECS);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// The sign-in form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    token: Option<String>,
    csrf_token: Option<String>,
}

/// `POST /admin/login`: checks the token as the admin API does (same failure limit per
/// address), then starts a session and sends the browser to the overview.
pub async fn login(
    State(state): State<AppState>,
    axum::Extension(slot): axum::Extension<AuditSlot>,
    parts: Parts,
    RawBody(body): RawBody,
) -> Response {
    let form: LoginForm = parse_form(&body).unwrap_or_default();
    let expected = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    if !same(&expected, form.csrf_token.as_deref()) {
        // Not a sign-in attempt, and nobody is known: no audit row.
        slot.skip_row();
        let detail = "the sign-in form's csrf_token is missing or does not match its cookie; \
                      reload the sign-in page";
        return views::forbidden(detail);
    }
    let address = client_address(&parts);
    let token = form.token.unwrap_or_default();
    let actor = match sign_in(&state, &slot, &address, &token).await {
        Ok(actor) => actor,
        Err(SignInRefused::Denied(_)) => {
            slot.note("console.sign-in", None);
            let error = "That admin token is not valid (or it was revoked).";
            return login_page(&state, StatusCode::UNAUTHORIZED, Some(error));
        }
        Err(SignInRefused::Limited(e)) => return views::error_page(e),
        Err(SignInRefused::Store(e)) => return views::error_page(ApiError::from(e)),
    };
    slot.note("console.sign-in", Some(&actor));
    start_session(&state, &actor).await
}

/// Stores a new session for `actor` and answers 303 to `/admin` with its cookie.
async fn start_session(state: &AppState, actor: &str) -> Response {
    let id = new_secret();
    let stored = stored_form(&id);
    let max = state.settings.console.session_max;
    let session = NewSession {
        session_sha256: &stored,
        actor,
        max_ms: millis(max),
    };
    if let Err(e) = state.store.insert_console_session(session).await {
        return views::error_page(ApiError::from(e));
    }
    let cookies = [
        set_cookie(state, SESSION_COOKIE, &id, max.as_secs()),
        set_cookie(state, LOGIN_COOKIE, "", 0),
    ];
    see_other("/admin", &cookies)
}

/// `POST /admin/logout`: ends the session (its row is deleted) and clears its cookie.
pub async fn logout(State(state): State<AppState>, posted: Posted<Nothing>) -> Response {
    let session = posted.session;
    session.admin.acts("console.sign-out", None);
    if let Err(e) = state.store.delete_console_session(&session.stored).await {
        return views::error_page(ApiError::from(e));
    }
    see_other("/admin/login", &[set_cookie(&state, SESSION_COOKIE, "", 0)])
}
