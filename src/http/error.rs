//! The one HTTP error type of the gateway, answered as `application/problem+json` (RFC 9457).
//!
//! Owns: `ApiError`, its status codes and problem bodies, and `RawBody` (the body extractor whose
//! rejections are problems too, 413 over the limit).
//! `detail` never contains a secret or a raw payload; internal errors are logged once here and
//! answered with a generic detail.
//! `Problem` is the body's type, and the `*Problems` response sets are what the OpenAPI
//! document says each family of routes can answer.
//! May import: std, axum, serde, serde_json, tracing, utoipa, crate::ledger.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ledger::LedgerError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error body (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable URN per kind of problem, e.g. `urn:npd-monday-gateway:problem:not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    pub status: u16,
    /// What was wrong, naming the field; never a secret or a payload.
    pub detail: String,
}

/// The detail of a problem answered, in the response's extensions (the admin audit reads it).
#[derive(Debug, Clone)]
pub struct ProblemDetail(pub String);

/// Declares an OpenAPI response set: one problem+json response per status.
macro_rules! problems {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $status:literal: $what:literal $(, headers($($h:tt)*))?;)* }) => {
        $(#[$meta])*
        #[derive(utoipa::IntoResponses)]
        pub enum $name {
            $(
                #[response(status = $status, description = $what, content_type = "application/problem+json" $(, headers($($h)*))?)]
                $variant(Problem),
            )*
        }
    };
}

problems! {
    /// What an admin route can answer besides its success.
    AdminProblems {
        BadRequest = 400: "The id, the query or the body is malformed; the detail names what";
        Unauthorized = 401: "No admin token, a wrong or revoked one, or one in the query string", headers(("WWW-Authenticate" = String, description = "Bearer"));
        NotFound = 404: "No such record";
        Timeout = 408: "The request took longer than the request timeout";
        TooLarge = 413: "The body is larger than the limit";
        RateLimited = 429: "The token's requests of this minute are spent, or this address failed to authenticate too often", headers(("Retry-After" = u64, description = "Seconds until the limit resets"));
        Unavailable = 503: "The store cannot be reached, or the gateway is at its concurrency limit; retry later", headers(("Retry-After" = u64, description = "Seconds"));
    }
}

problems! {
    /// What `POST /api/v1/npd/events` can answer besides 202.
    NpdProblems {
        BadRequest = 400: "Not a valid event: invalid JSON, an unknown type, a missing id, a wrongly typed field";
        Unauthorized = 401: "A missing or wrong signature, or a timestamp out of range";
        Timeout = 408: "The request took longer than the request timeout";
        TooLarge = 413: "The body is larger than 256 KiB";
        Unavailable = 503: "The store cannot commit in time, or the gateway is at its concurrency limit: nothing was accepted, retry", headers(("Retry-After" = u64, description = "Seconds"));
    }
}

problems! {
    /// What a Monday webhook route can answer besides 200.
    MondayProblems {
        BadRequest = 400: "Not a Monday delivery";
        Unauthorized = 401: "A missing or invalid JWT, or no way to authenticate deliveries is configured";
        NotFound = 404: "A wrong path token (the route does not exist)";
        Timeout = 408: "The request took longer than the request timeout";
        TooLarge = 413: "The body is larger than 256 KiB";
        Unavailable = 503: "The store cannot commit in time, or the gateway is at its concurrency limit: nothing was accepted, retry", headers(("Retry-After" = u64, description = "Seconds"));
    }
}

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the detail names what is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or invalid credentials or signature.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: no such resource.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the resource's state.
    #[error("{0}")]
    Conflict(String),
    /// 405: the route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408: the request took longer than the request timeout.
    #[error("the request took too long")]
    RequestTimeout,
    /// 413: the body is over the limit (in bytes).
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 503: the store could not commit; nothing was accepted, the sender should retry.
    #[error("the store is unavailable; nothing was accepted, retry later")]
    Unavailable,
    /// 503: the gateway serves `max_concurrent_requests` already; shed, nothing was accepted.
    #[error("the gateway is at its concurrency limit; nothing was accepted, retry later")]
    Overloaded,
    /// 502: a remote system (NPD's API) could not answer a question the request depends on.
    #[error("{0}")]
    BadGateway(String),
    /// 503: the gateway is up but cannot serve yet (store unreachable or not migrated).
    #[error("{0}")]
    NotReady(String),
    /// 429: a rate limit; `Retry-After` says when to try again.
    #[error("{detail}")]
    RateLimited {
        detail: String,
        retry_after_secs: u64,
    },
    /// 500: anything else; logged, never described to the client.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::Overloaded | ApiError::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem `type`: a stable URN per kind of problem.
    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::RequestTimeout => "request-timeout",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::Unavailable => "store-unavailable",
            ApiError::Overloaded => "overloaded",
            ApiError::NotReady(_) => "not-ready",
            ApiError::BadGateway(_) => "bad-gateway",
            ApiError::RateLimited { .. } => "rate-limited",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        // Whatever went wrong, the delivery is not committed: 503 tells the sender to retry,
        // and never a 2xx. Log once, here, with the cause chain (no payloads in it).
        if let LedgerError::NotCommitted(why) = e {
            // Backpressure, not a fault: under load this is every shed request, so warn.
            tracing::warn!(reason = why, "delivery not committed");
            return ApiError::Unavailable;
        }
        let chain = anyhow::Error::from(e);
        tracing::error!(error.cause_chain = ?chain, "store could not commit");
        ApiError::Unavailable
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error.cause_chain = ?e, "internal error");
        }
        let status = self.status();
        let detail = self.to_string();
        let body = Problem {
            kind: format!("urn:npd-monday-gateway:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.clone(),
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (status, text).into_response();
        response.extensions_mut().insert(ProblemDetail(detail));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            ApiError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

/// The raw request body, read up to the router's body limit. Over the limit: 413 problem.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(crate::config::DEFAULT_BODY_LIMIT_BYTES, |l| l.0);
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge(limit))
            }
            Err(_) => Err(ApiError::BadRequest(
                "the request body could not be read".into(),
            )),
        }
    }
}

/// The configured body limit, put in request extensions so that `RawBody` can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn problems_are_rfc9457_json_with_the_right_status() {
        let cases = [
            (
                ApiError::BadRequest("field `data.id` is missing".into()),
                400,
                "field `data.id` is missing",
            ),
            (
                ApiError::Unauthorized("bad signature".into()),
                401,
                "bad signature",
            ),
            (
                ApiError::PayloadTooLarge(262_144),
                413,
                "the body is larger than 262144 bytes",
            ),
            (
                ApiError::Unavailable,
                503,
                "the store is unavailable; nothing was accepted, retry later",
            ),
            (
                ApiError::Internal(anyhow::anyhow!("secret-ish detail")),
                500,
                "internal error",
            ),
        ];
        for (error, status, detail) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
            if status == 503 {
                assert_eq!(response.headers()[header::RETRY_AFTER], "5");
            }
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            assert_eq!(body["status"], status);
            assert_eq!(body["detail"], detail);
            assert!(body["type"].as_str().is_some_and(|t| t.starts_with("urn:")));
            assert!(body["title"].is_string());
        }
    }
}
