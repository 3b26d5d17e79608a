//! Reading monday's answers: errors (current `errors[]` and legacy `error_code`/`error_message`,
//! also inside HTTP 200), their classification into `ConnectorError`, and the `RateLimit` header.
//!
//! Owns: `interpret` (status + headers + body -> `data` or a classified error), `transport_error`,
//! `RateLimitState`. Messages carry monday's error texts and `request_id`, never our token or
//! request body.
//! May import: std, reqwest, serde_json, crate::connectors.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::{Map, Value};

use crate::connectors::{ConnectorError, FailureClass};

const SYSTEM: crate::domain::entity::Side = crate::domain::entity::Side::Monday;
/// Longest piece of one remote error message kept.
const MAX_MESSAGE_CHARS: usize = 500;

/// What the last `RateLimit` header said (FACTS.md §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitState {
    /// `"minuteRate";r=`: requests left in the current minute.
    pub minute_remaining: Option<u64>,
    /// `"complexityMinute";r=`: complexity points left in the current minute.
    pub complexity_remaining: Option<u64>,
    /// The longest `t=` among the policies: when every reported budget has reset.
    pub reset_in: Option<Duration>,
}

impl RateLimitState {
    /// Parses `"minuteRate";r=4999, "concurrency";r=249, "complexityMinute";r=4950000;t=45`.
    /// None when neither budget is named.
    pub fn parse(header: &str) -> Option<RateLimitState> {
        let mut state = RateLimitState::default();
        let mut known = false;
        for item in header.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default().trim_matches('"');
            let mut remaining = None;
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim() {
                    "r" => remaining = value.parse::<u64>().ok(),
                    "t" => {
                        if let Ok(t) = value.parse::<u64>() {
                            let t = Duration::from_secs(t);
                            state.reset_in = Some(state.reset_in.map_or(t, |old| old.max(t)));
                        }
                    }
                    _ => {}
                }
            }
            match name {
                "minuteRate" => {
                    state.minute_remaining = remaining;
                    known = true;
                }
                "complexityMinute" => {
                    state.complexity_remaining = remaining;
                    known = true;
                }
                _ => {}
            }
        }
        known.then_some(state)
    }
}

/// One error found in an answer body.
#[derive(Debug, Default)]
struct RemoteError {
    code: Option<String>,
    message: Option<String>,
    /// `extensions.status_code` / legacy `status_code`.
    status_code: Option<u64>,
}

fn truncated(s: &str) -> String {
    if s.chars().count() <= MAX_MESSAGE_CHARS {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX_MESSAGE_CHARS).collect();
        out.push('…');
        out
    }
}

fn retry_in_seconds(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f.ceil() as u64))
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The errors of a body (current and legacy format) and the largest `retry_in_seconds`.
fn remote_errors(body: &Value) -> (Vec<RemoteError>, Option<u64>) {
    let mut errors = Vec::new();
    let mut retry_in: Option<u64> = None;
    let mut note_retry = |v: Option<u64>| {
        if let Some(v) = v {
            retry_in = Some(retry_in.map_or(v, |old| old.max(v)));
        }
    };
    if let Some(list) = body.get("errors").and_then(Value::as_array) {
        for error in list {
            match error {
                Value::String(message) => errors.push(RemoteError {
                    message: Some(message.clone()),
                    ..RemoteError::default()
                }),
                Value::Object(error) => {
                    let extensions = error.get("extensions");
                    let ext = |key: &str| extensions.and_then(|e| e.get(key));
                    note_retry(retry_in_seconds(ext("retry_in_seconds")));
                    note_retry(retry_in_seconds(
                        ext("error_data").and_then(|d| d.get("retry_in_seconds")),
                    ));
                    errors.push(RemoteError {
                        code: ext("code").and_then(Value::as_str).map(str::to_owned),
                        message: error
                            .get("message")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        status_code: ext("status_code").and_then(Value::as_u64),
                    });
                }
                _ => {}
            }
        }
    }
    let legacy_code = body.get("error_code").and_then(Value::as_str);
    let legacy_message = body.get("error_message").and_then(Value::as_str);
    note_retry(retry_in_seconds(
        body.get("error_data")
            .and_then(|d| d.get("retry_in_seconds")),
    ));
    if legacy_code.is_some() || legacy_message.is_some() {
        let legacy_status = body.get("status_code").and_then(Value::as_u64);
        let same = errors
            .iter_mut()
            .find(|e| legacy_message.is_some() && e.message.as_deref() == legacy_message);
        match same {
            Some(same) => {
                if same.code.is_none() {
                    same.code = legacy_code.map(str::to_owned);
                }
                same.status_code = same.status_code.or(legacy_status);
            }
            None => errors.insert(
                0,
                RemoteError {
                    code: legacy_code.map(str::to_owned),
                    message: legacy_message.map(str::to_owned),
                    status_code: legacy_status,
                },
            ),
        }
    }
    (errors, retry_in)
}

/// `rate.?limit`: "rate", at most one character, then "limit".
fn mentions_rate_limit(lower: &str) -> bool {
    lower.match_indices("rate").any(|(i, _)| {
        let rest = &lower[i + 4..];
        rest.starts_with("limit")
            || rest
                .chars()
                .next()
                .is_some_and(|c| rest[c.len_utf8()..].starts_with("limit"))
    })
}

/// Whether an error inside a 2xx answer is worth retrying (rate, complexity, concurrency, daily
/// and IP limits, temporary blocks, internal errors, locked resources).
fn is_transient(error: &RemoteError) -> bool {
    let text = format!(
        "{} {}",
        error.code.as_deref().unwrap_or_default(),
        error.message.as_deref().unwrap_or_default()
    )
    .to_lowercase();
    const MARKERS: &[&str] = &[
        "complexity",
        "maxcon",
        "concurrency",
        "daily_limit",
        "ip_rate",
        "api_temporarily_blocked",
        "minute limit",
        "internal server error",
        "internal_server_error",
        "idempotency_conflict",
        "currently locked",
    ];
    MARKERS.iter().any(|m| text.contains(m))
        || mentions_rate_limit(&text)
        || error
            .status_code
            .is_some_and(|s| s == 429 || (500..600).contains(&s))
}

fn is_not_found(error: &RemoteError) -> bool {
    error.code.as_deref().is_some_and(|code| {
        code.eq_ignore_ascii_case("ResourceNotFoundException")
            || code.eq_ignore_ascii_case("InvalidItemIdException")
    })
}

/// Seconds of a `Retry-After` header (delay-seconds form).
fn retry_after_header(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().or_else(|| {
        value
            .parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0)
            .map(|f| f.ceil() as u64)
    })
}

fn with_request_id(message: String, request_id: Option<&str>) -> String {
    match request_id {
        Some(id) if !id.is_empty() => format!("{message} (request_id: {id})"),
        _ => message,
    }
}

fn describe(errors: &[RemoteError]) -> Option<String> {
    let parts: Vec<String> = errors
        .iter()
        .filter_map(|e| e.message.as_deref().or(e.code.as_deref()))
        .map(truncated)
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The `data` of a successful answer, or the classified failure.
pub(super) fn interpret(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, ConnectorError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let (errors, retry_in) = json.as_ref().map(remote_errors).unwrap_or_default();
    let request_id = json
        .as_ref()
        .and_then(|b| b.pointer("/extensions/request_id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    let retry_after = match (retry_after_header(headers), retry_in) {
        (None, None) => None,
        (a, b) => Some(Duration::from_secs(a.unwrap_or(0).max(b.unwrap_or(0)))),
    };
    let code = errors.iter().find_map(|e| e.code.clone());
    let fail = |class: FailureClass, message: String| ConnectorError {
        system: SYSTEM,
        class,
        status: Some(status),
        code: code.clone(),
        message: with_request_id(message, request_id.as_deref()),
        retry_after,
    };

    if !(200..300).contains(&status) {
        let class = match status {
            408 | 409 | 423 | 425 | 429 | 500..=599 => FailureClass::Retryable,
            _ if errors.iter().any(is_not_found) => FailureClass::NotFound,
            _ => FailureClass::Permanent,
        };
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("unexpected status");
        let message = match describe(&errors) {
            Some(text) => format!("HTTP {status}: {text}"),
            None if json.is_none() => format!("HTTP {status} {reason} (body is not JSON)"),
            None => format!("HTTP {status} {reason}"),
        };
        return Err(fail(class, message));
    }

    let Some(json) = json else {
        return Err(fail(
            FailureClass::Retryable,
            format!("HTTP {status} with a body that is not JSON"),
        ));
    };
    if !errors.is_empty() {
        let class = if errors.iter().any(is_transient) {
            FailureClass::Retryable
        } else if errors.iter().any(is_not_found) {
            FailureClass::NotFound
        } else {
            FailureClass::Permanent
        };
        let message = describe(&errors).unwrap_or_else(|| "error without a message".into());
        return Err(fail(class, message));
    }
    match json.get("data") {
        Some(Value::Object(data)) => Ok(data.clone()),
        _ => Err(fail(
            FailureClass::Permanent,
            "the answer has neither `data` nor `errors`".into(),
        )),
    }
}

/// A batch's `data`, and each alias's own error.
pub(super) type BatchAnswer = (Map<String, Value>, Vec<Option<ConnectorError>>);

/// The answer to a batch of `aliases` mutations (`m0`, `m1`, ...): `data`, and per alias the
/// error Monday named it in (`errors[].path[0]`), classified as a single answer's would be. An
/// error that names no alias (a rate or complexity limit, a parse error), a non-2xx status or a
/// body that is not JSON fails the whole request.
pub(super) fn interpret_batch(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    aliases: usize,
) -> Result<BatchAnswer, ConnectorError> {
    let alias_of = |error: &Value| {
        let name = error.pointer("/path/0")?.as_str()?;
        let index: usize = name.strip_prefix('m')?.parse().ok()?;
        (index < aliases).then_some(index)
    };
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let errors: Vec<Value> = json
        .as_ref()
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let whole = json.is_none()
        || !(200..300).contains(&status)
        || errors.iter().any(|e| alias_of(e).is_none())
        || json.as_ref().is_some_and(|b| b.get("error_code").is_some());
    if whole {
        return interpret(status, headers, body).map(|data| (data, vec![None; aliases]));
    }
    let mut per_alias: Vec<Option<ConnectorError>> = vec![None; aliases];
    for error in &errors {
        if let Some(i) = alias_of(error) {
            let alone = serde_json::json!({ "errors": [error] }).to_string();
            per_alias[i] = interpret(status, headers, alone.as_bytes()).err();
        }
    }
    let data = match json.as_ref().and_then(|b| b.get("data")) {
        Some(Value::Object(data)) => data.clone(),
        _ => Map::new(),
    };
    Ok((data, per_alias))
}

/// A request that got no HTTP answer (connect failure, timeout, broken body).
pub(super) fn transport_error(e: &reqwest::Error) -> ConnectorError {
    let what = if e.is_timeout() {
        "request timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer body could not be read"
    } else if e.is_redirect() {
        "redirects are not followed"
    } else {
        "transport error"
    };
    // Only the cause is quoted (not the URL); the token is never part of an error.
    let detail = std::error::Error::source(e)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    ConnectorError {
        system: SYSTEM,
        class: FailureClass::Retryable,
        status: None,
        code: None,
        message: truncated(&format!("{what}{detail}")),
        retry_after: None,
    }
}

/// An answer longer than the gateway reads (`limit` bytes): refused unread, and not retried.
pub(super) fn too_large(status: u16, limit: usize) -> ConnectorError {
    ConnectorError {
        status: Some(status),
        message: format!("the answer is larger than {} MiB", limit / (1024 * 1024)),
        ..unexpected("")
    }
}

/// An answer of an unexpected shape.
pub(super) fn unexpected(what: &str) -> ConnectorError {
    ConnectorError {
        system: SYSTEM,
        class: FailureClass::Permanent,
        status: Some(200),
        code: None,
        message: format!("unexpected answer: {what}"),
        retry_after: None,
    }
}
