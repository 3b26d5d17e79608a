//! Posted console forms: the session, the CSRF check, then the form's own fields.
//!
//! `Posted<T>` is the extractor of every console POST but the sign-in: without a session it
//! answers 303 to the sign-in page; without the session's `csrf_token` field, 403 (audited as a
//! denied call of that session's admin); a form that does not read as `T`, 400.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::session::Session;
use super::views;
use crate::auth::console_session::same;
use crate::http::AppState;
use crate::http::error::{ApiError, RawBody};

/// A form with no fields but its `csrf_token`.
#[derive(Debug, Default, Deserialize)]
pub struct Nothing {}

#[derive(Debug, Default, Deserialize)]
struct CsrfField {
    csrf_token: Option<String>,
}

/// An `application/x-www-form-urlencoded` body as `T` (unknown fields are ignored).
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::BadRequest(format!("the form could not be read: {e}")))
}

/// A POST of a signed-in session whose CSRF token checked out, with its form.
pub struct Posted<T> {
    pub session: Session,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let RawBody(bytes) = RawBody::from_request(req, state)
            .await
            .map_err(views::error_page)?;
        let csrf: CsrfField = parse_form(&bytes).unwrap_or_default();
        if !same(&session.csrf, csrf.csrf_token.as_deref()) {
            let detail = "the form's csrf_token is missing or is not this session's";
            return Err(views::forbidden(detail));
        }
        let form = parse_form(&bytes).map_err(views::error_page)?;
        Ok(Posted { session, form })
    }
}
