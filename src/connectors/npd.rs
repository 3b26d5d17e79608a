//! NPD REST client: look-ups and write-backs of contacts and organizations.
//!
//! Owns: `NpdClient` (`GET`/`PATCH /api/v1/{contacts|organizations}/{id}`, `POST
//! /api/v1/contacts`, the list API `GET /api/v1/{contacts|organizations}?limit&cursor`), its headers (bearer token, `Idempotency-Key`, `X-Sync-Origin: monday`) and
//! the classification of NPD's answers into `ConnectorError`.
//! May import: std, reqwest, serde_json, secrecy, time, tracing, crate::{config, connectors, domain}.
//!
//! Classification: 2xx ok; 404 not found; 408, 409, 423, 425, 429 and 5xx retryable (with the
//! `Retry-After` delay); any other status permanent (redirects are never followed, so a 3xx is
//! permanent too); timeouts and connection failures retryable without a status. Error messages
//! come from the answer (problem `detail` or `title`, else the first 300 characters of the body)
//! or the transport failure's kind; the token is redacted from them and our request body is
//! never quoted. At most 1 MiB of any answer is read.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::config::NpdSettings;
use crate::connectors::{ConnectorError, FailureClass, NpdApi, NpdFields, NpdPage, read_bounded};
use crate::domain::entity::{EntityKind, NpdId, Side};
use crate::domain::record::NpdRecord;

const SYSTEM: Side = Side::Npd;
/// Longest connection set-up, whatever the call timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes read of any answer.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Most characters of an answer quoted in an error message.
const MAX_MESSAGE_CHARS: usize = 300;
const REDACTED: &str = "[REDACTED]";

/// The gateway's client for NPD's REST API. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct NpdClient {
    http: reqwest::Client,
    /// `NPD_API_URL` without a trailing slash.
    base_url: String,
    token: Option<SecretString>,
}

impl fmt::Debug for NpdClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NpdClient")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// One page of the list API: the records as JSON objects, and the next page's cursor.
pub type ListPage = (Vec<Map<String, Value>>, Option<String>);

/// An answer that arrived, read up to `MAX_ANSWER_BYTES`.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    /// The answer was longer than `MAX_ANSWER_BYTES`.
    truncated: bool,
}

impl NpdClient {
    /// `None` when `settings.api_url` is `None` (or empty). Redirects are never followed;
    /// `timeout` bounds each call, connecting takes at most 5 s of it. Also `None` (logged) in
    /// the unexpected case that the HTTP client cannot be built.
    pub fn new(settings: &NpdSettings, timeout: Duration) -> Option<NpdClient> {
        let base_url = settings
            .api_url
            .as_deref()
            .map(|url| url.trim().trim_end_matches('/'))
            .filter(|url| !url.is_empty())?
            .to_owned();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            .user_agent(concat!("npd-monday-gateway/", env!("CARGO_PKG_VERSION")))
            .build();
        let http = match http {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(error = %e, "the NPD HTTP client could not be built");
                return None;
            }
        };
        Some(NpdClient {
            http,
            base_url,
            token: settings.api_token.clone(),
        })
    }

    /// `GET {api_url}/api/v1/contacts/{id}` or `/api/v1/organizations/{id}`: the record's JSON
    /// object, `None` on 404.
    #[tracing::instrument(name = "npd.get", skip_all, fields(npd.kind = %kind, npd.id = %id, http.status))]
    pub async fn get(&self, kind: EntityKind, id: NpdId) -> Result<Option<Value>, ConnectorError> {
        let request = self.request(Method::GET, &self.record_url(kind, id))?;
        let answer = match self.send(request).await {
            Ok(answer) => answer,
            Err(e) if e.class == FailureClass::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match json_answer(&answer)? {
            record @ Value::Object(_) => Ok(Some(record)),
            _ => Err(bad_answer(&answer, "the answer is not a JSON object")),
        }
    }

    /// `GET {api_url}/api/v1/{contacts|organizations}?limit=N[&cursor=C]`: one page of the list
    /// API, `{"items": [...], "next_cursor": "…" | null}`, as JSON objects.
    #[tracing::instrument(name = "npd.list", skip_all, fields(npd.kind = %kind, http.status))]
    pub async fn list(
        &self,
        kind: EntityKind,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ListPage, ConnectorError> {
        let url = format!("{}/api/v1/{}", self.base_url, kind.plural());
        let mut query = vec![("limit", limit.to_string())];
        query.extend(cursor.map(|c| ("cursor", c.to_owned())));
        let request = self.request(Method::GET, &url)?.query(&query);
        let answer = self.send(request).await?;
        let mut page = match json_answer(&answer)? {
            Value::Object(page) => page,
            _ => return Err(bad_answer(&answer, "the answer is not a JSON object")),
        };
        let next_cursor = match page.remove("next_cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) if !c.is_empty() => Some(c),
            Some(_) => return Err(bad_answer(&answer, "`next_cursor` is not a string")),
        };
        let Some(Value::Array(items)) = page.remove("items") else {
            return Err(bad_answer(&answer, "the answer has no `items` list"));
        };
        let records = items
            .into_iter()
            .map(|item| match item {
                Value::Object(record) => Ok(record),
                _ => Err(bad_answer(&answer, "an item of `items` is not an object")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((records, next_cursor))
    }

    /// `PATCH` the record's URL with only `fields` (a JSON object); returns the answer body
    /// (JSON, or `Null` when empty).
    #[tracing::instrument(name = "npd.patch", skip_all, fields(npd.kind = %kind, npd.id = %id, http.status))]
    pub async fn patch(
        &self,
        kind: EntityKind,
        id: NpdId,
        fields: &Map<String, Value>,
        idempotency_key: &str,
    ) -> Result<Value, ConnectorError> {
        let request = self.write(
            Method::PATCH,
            &self.record_url(kind, id),
            fields,
            idempotency_key,
        )?;
        let answer = self.send(request).await?;
        json_answer(&answer)
    }

    /// `POST {api_url}/api/v1/contacts` with `fields`; the answer is `{"id": "<uuid>", ...}`.
    #[tracing::instrument(name = "npd.create_contact", skip_all, fields(npd.kind = "contact", npd.id, http.status))]
    pub async fn create_contact(
        &self,
        fields: &Map<String, Value>,
        idempotency_key: &str,
    ) -> Result<NpdId, ConnectorError> {
        let url = format!("{}/api/v1/{}", self.base_url, EntityKind::Contact.plural());
        let request = self.write(Method::POST, &url, fields, idempotency_key)?;
        let answer = self.send(request).await?;
        let id = json_answer(&answer)?
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| NpdId::parse(id).ok())
            .ok_or_else(|| bad_answer(&answer, "the answer has no valid `id`"))?;
        tracing::Span::current().record("npd.id", tracing::field::display(id));
        Ok(id)
    }

    fn record_url(&self, kind: EntityKind, id: NpdId) -> String {
        format!("{}/api/v1/{}/{id}", self.base_url, kind.plural())
    }

    /// A request with `Accept` and, when configured, the bearer token.
    fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, ConnectorError> {
        let mut request = self
            .http
            .request(method, url)
            .header(ACCEPT, "application/json");
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| permanent("NPD_API_TOKEN cannot be sent in an HTTP header"))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        Ok(request)
    }

    /// A write: JSON body, `Idempotency-Key` and `X-Sync-Origin: monday`.
    fn write(
        &self,
        method: Method,
        url: &str,
        fields: &Map<String, Value>,
        idempotency_key: &str,
    ) -> Result<RequestBuilder, ConnectorError> {
        let key = HeaderValue::from_str(idempotency_key)
            .map_err(|_| permanent("the idempotency key cannot be sent in an HTTP header"))?;
        let body = serde_json::to_vec(fields)
            .map_err(|_| permanent("the fields cannot be serialized as JSON"))?;
        Ok(self
            .request(method, url)?
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key)
            .header("X-Sync-Origin", Side::Monday.as_str())
            .body(body))
    }

    /// Sends, reads the answer (bounded) and classifies a non-2xx status as an error.
    async fn send(&self, request: RequestBuilder) -> Result<Answer, ConnectorError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        tracing::Span::current().record("http.status", status.as_u16());
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc()));
        let read = read_bounded(response, MAX_ANSWER_BYTES).await;
        if status.is_success() {
            let (body, truncated) = read.map_err(|e| ConnectorError {
                status: Some(status.as_u16()),
                ..transport_error(e)
            })?;
            return Ok(Answer {
                status,
                body,
                truncated,
            });
        }
        // An error answer whose body cannot be read is still classified by its status.
        let (body, _) = read.unwrap_or_default();
        let class = classify(status);
        Err(ConnectorError {
            system: SYSTEM,
            class,
            status: Some(status.as_u16()),
            code: None,
            message: error_message(
                status,
                &body,
                self.token.as_ref().map(|t| t.expose_secret()),
            ),
            retry_after: if class == FailureClass::Retryable {
                retry_after
            } else {
                None
            },
        })
    }
}

/// The class of a non-2xx status.
fn classify(status: StatusCode) -> FailureClass {
    match status.as_u16() {
        404 => FailureClass::NotFound,
        408 | 409 | 423 | 425 | 429 | 500..=599 => FailureClass::Retryable,
        _ => FailureClass::Permanent,
    }
}

/// A record NPD answered, read as `kind`.
fn parse_record(kind: EntityKind, object: Map<String, Value>) -> Result<NpdRecord, ConnectorError> {
    NpdRecord::from_object(kind, object).map_err(|e| {
        permanent(&format!(
            "NPD answered a {kind} that does not parse at `{}`",
            e.0.path()
        ))
    })
}

#[async_trait::async_trait]
impl NpdApi for NpdClient {
    async fn list(
        &self,
        kind: EntityKind,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<NpdPage, ConnectorError> {
        let (objects, next_cursor) = NpdClient::list(self, kind, cursor, limit).await?;
        let records = objects
            .into_iter()
            .map(|object| parse_record(kind, object))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NpdPage {
            records,
            next_cursor,
        })
    }

    async fn get(&self, kind: EntityKind, id: NpdId) -> Result<Option<NpdRecord>, ConnectorError> {
        let Some(Value::Object(object)) = NpdClient::get(self, kind, id).await? else {
            return Ok(None);
        };
        parse_record(kind, object).map(Some)
    }

    async fn patch(
        &self,
        kind: EntityKind,
        id: NpdId,
        fields: &NpdFields,
        idempotency_key: &str,
    ) -> Result<Option<i64>, ConnectorError> {
        let answer = NpdClient::patch(self, kind, id, &to_object(fields), idempotency_key).await?;
        Ok(answer.get("version").and_then(Value::as_i64))
    }

    async fn create_contact(
        &self,
        fields: &NpdFields,
        idempotency_key: &str,
    ) -> Result<NpdId, ConnectorError> {
        NpdClient::create_contact(self, &to_object(fields), idempotency_key).await
    }
}

/// The JSON object of a write's fields.
fn to_object(fields: &NpdFields) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect()
}

/// A 2xx answer's body as JSON (`Null` when empty).
fn json_answer(answer: &Answer) -> Result<Value, ConnectorError> {
    if answer.truncated {
        return Err(bad_answer(answer, "the answer is larger than 1 MiB"));
    }
    if answer.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&answer.body)
        .map_err(|_| bad_answer(answer, "the answer is not valid JSON"))
}

/// A 2xx answer the gateway cannot use.
fn bad_answer(answer: &Answer, message: &str) -> ConnectorError {
    ConnectorError {
        status: Some(answer.status.as_u16()),
        ..permanent(message)
    }
}

fn permanent(message: &str) -> ConnectorError {
    ConnectorError {
        system: SYSTEM,
        class: FailureClass::Permanent,
        status: None,
        code: None,
        message: message.to_owned(),
        retry_after: None,
    }
}

/// No answer arrived: retryable, named by kind (the error's own text may carry the URL).
fn transport_error(e: reqwest::Error) -> ConnectorError {
    let (class, kind) = if e.is_timeout() {
        (FailureClass::Retryable, "timed out")
    } else if e.is_connect() {
        (FailureClass::Retryable, "could not connect")
    } else if e.is_builder() {
        (FailureClass::Permanent, "the request could not be built")
    } else if e.is_body() || e.is_decode() {
        (FailureClass::Retryable, "the answer could not be read")
    } else {
        (FailureClass::Retryable, "the request failed")
    };
    let message = match io_error_kind(&e) {
        Some(io) if !e.is_timeout() => format!("{kind} ({io})"),
        _ => kind.to_owned(),
    };
    ConnectorError {
        system: SYSTEM,
        class,
        status: None,
        code: None,
        message,
        retry_after: None,
    }
}

/// The kind of the first I/O error among the sources of `e`.
fn io_error_kind(e: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = err.source();
    }
    None
}

/// The problem `detail` or `title`, else the start of the body, else the status line; at most
/// `MAX_MESSAGE_CHARS` characters, control characters replaced by spaces. `secret` (the token) is
/// redacted before the text is cut, since NPD or a proxy may echo our headers.
fn error_message(status: StatusCode, body: &[u8], secret: Option<&str>) -> String {
    let problem = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| {
            ["detail", "title"].into_iter().find_map(|key| {
                value
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|text| !text.is_empty())
                    .map(str::to_owned)
            })
        });
    let text = problem.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if text.is_empty() {
        return format!("HTTP {status}");
    }
    let text = match secret {
        Some(secret) if !secret.is_empty() && text.contains(secret) => {
            text.replace(secret, REDACTED)
        }
        _ => text,
    };
    text.chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `Retry-After` as delta seconds or an HTTP date (IMF-fixdate, RFC 850 or asctime); a date in
/// the past is zero.
fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(value)?;
    let delta = at - now;
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// The three date formats of RFC 9110 §5.6.7, all in UTC:
/// `Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT`, `Sun Nov  6 08:49:37 1994`.
fn parse_http_date(value: &str) -> Option<OffsetDateTime> {
    let parts: Vec<&str> = value
        .split([' ', ',', '-', ':'])
        .filter(|part| !part.is_empty())
        .collect();
    let number = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    // parts[0] is the weekday, which is not checked.
    let (day, month, year, hms) = match parts.as_slice() {
        [_, day, month, year, h, m, s, "GMT"] if number(day).is_some() => {
            (*day, *month, *year, [*h, *m, *s])
        }
        [_, month, day, h, m, s, year] => (*day, *month, *year, [*h, *m, *s]),
        _ => return None,
    };
    let mut year = i32::try_from(number(year)?).ok()?;
    if year < 100 {
        // RFC 850's two-digit year: the nearest century that is not too far in the future.
        year += if year < 70 { 2000 } else { 1900 };
    }
    let month = match month {
        "Jan" => Month::January,
        "Feb" => Month::February,
        "Mar" => Month::March,
        "Apr" => Month::April,
        "May" => Month::May,
        "Jun" => Month::June,
        "Jul" => Month::July,
        "Aug" => Month::August,
        "Sep" => Month::September,
        "Oct" => Month::October,
        "Nov" => Month::November,
        "Dec" => Month::December,
        _ => return None,
    };
    let day = u8::try_from(number(day)?).ok()?;
    let [h, m, s] = hms;
    let time = Time::from_hms(
        u8::try_from(number(h)?).ok()?,
        u8::try_from(number(m)?).ok()?,
        u8::try_from(number(s)?).ok()?,
    )
    .ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use axum::Router;
    use axum::http::header::{CONTENT_TYPE as AXUM_CONTENT_TYPE, LOCATION};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use serde_json::json;

    use super::*;
    use crate::sim::npd::tests::{
        Receiver, TOKEN, create_ada, insert_ada, organization, sim_with_receiver,
    };
    use crate::sim::npd::{NpdCall, NpdSim};

    fn settings(url: Option<String>, token: Option<&str>) -> NpdSettings {
        NpdSettings {
            webhook_secret: None,
            api_url: url,
            api_token: token.map(|t| SecretString::from(t.to_owned())),
            timestamp_tolerance_secs: 300,
        }
    }

    fn client_for(url: &str, timeout: Duration) -> NpdClient {
        NpdClient::new(&settings(Some(url.to_owned()), Some(TOKEN)), timeout)
            .expect("a client when the URL is set")
    }

    /// The simulator, its event receiver, and a client of it with a 5 s timeout.
    async fn start() -> (NpdSim, Receiver, NpdClient) {
        let (sim, receiver) = sim_with_receiver(&[]).await;
        let client = client_for(&sim.url(), Duration::from_secs(5));
        (sim, receiver, client)
    }

    fn fields(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// Serves `app` on a loopback port; returns its base URL.
    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    fn last_call(sim: &NpdSim) -> NpdCall {
        sim.calls().pop().expect("at least one call")
    }

    #[test]
    fn there_is_no_client_without_an_api_url_and_debug_hides_the_token() {
        let timeout = Duration::from_secs(1);
        assert!(NpdClient::new(&settings(None, Some(TOKEN)), timeout).is_none());
        assert!(NpdClient::new(&settings(Some(" ".into()), Some(TOKEN)), timeout).is_none());

        let client = client_for("http://127.0.0.1:9/", timeout);

        let debug = format!("{client:?} {client:#?}");
        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(debug.contains("[REDACTED]"), "{debug}");
        assert_eq!(client.base_url, "http://127.0.0.1:9");
    }

    #[tokio::test]
    async fn get_returns_the_record_and_none_for_an_unknown_id() {
        // Arrange
        let (sim, _receiver, client) = start().await;
        let id = create_ada(&sim).await;

        // Act
        let found = client.get(EntityKind::Contact, id).await.expect("found");
        let missing = client
            .get(EntityKind::Contact, NpdId(uuid::Uuid::new_v4()))
            .await
            .expect("404 is not an error");
        let wrong_kind = client
            .get(EntityKind::Organization, id)
            .await
            .expect("404 is not an error");

        // Assert
        let stored = sim.contact(id).expect("stored");
        assert_eq!(
            found,
            Some(serde_json::to_value(&stored).expect("serialize"))
        );
        assert_eq!(missing, None);
        assert_eq!(wrong_kind, None);
        let call = sim.calls().into_iter().next().expect("a call");
        assert_eq!(call.method, "GET");
        assert_eq!(call.path, format!("/api/v1/contacts/{id}"));
        assert_eq!(
            call.headers.get("authorization"),
            Some(&format!("Bearer {TOKEN}"))
        );
        assert_eq!(
            call.headers.get("accept").map(String::as_str),
            Some("application/json")
        );
        assert!(!call.headers.contains_key("idempotency-key"));
        assert_eq!(call.body, None);
    }

    #[tokio::test]
    async fn list_pages_through_every_record_once_in_id_order() {
        // Arrange: 7 contacts NPD holds (no events), one organization.
        let (sim, _receiver, client) = start().await;
        let mut ids: Vec<NpdId> = (0..7).map(|_| insert_ada(&sim)).collect();
        ids.sort_unstable();

        // Act: pages of 3.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = NpdApi::list(&client, EntityKind::Contact, cursor.as_deref(), 3)
                .await
                .expect("a page");
            pages += 1;
            seen.extend(page.records.iter().map(|r| r.id));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        let organizations = NpdApi::list(&client, EntityKind::Organization, None, 500)
            .await
            .expect("a page");

        // Assert
        assert_eq!((seen, pages), (ids, 3));
        assert_eq!(organizations, NpdPage::default());
        let call = last_call(&sim);
        assert_eq!(call.path, "/api/v1/organizations");
        assert_eq!(
            call.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }

    #[tokio::test]
    async fn patch_applies_the_fields_bumps_the_version_and_sends_the_sync_headers() {
        // Arrange
        let (sim, receiver, client) = start().await;
        let id = create_ada(&sim).await;
        let change = fields(json!({"email": "ada@lovelace.org", "monday_id": "4100000001"}));

        // Act
        let answer = client
            .patch(EntityKind::Contact, id, &change, "sync-7f3a")
            .await
            .expect("patched");

        // Assert
        assert_eq!(answer["version"], 2);
        assert_eq!(answer["email"], "ada@lovelace.org");
        let stored = sim.contact(id).expect("stored");
        assert_eq!(stored.version, 2);
        assert_eq!(stored.email.as_deref(), Some("ada@lovelace.org"));
        assert_eq!(stored.first_name.as_deref(), Some("Ada"));
        let call = last_call(&sim);
        assert_eq!((call.method.as_str(), call.status), ("PATCH", 200));
        assert_eq!(call.path, format!("/api/v1/contacts/{id}"));
        assert_eq!(call.body, Some(Value::Object(change)));
        let header = |name: &str| call.headers.get(name).map(String::as_str);
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(header("authorization"), Some(bearer.as_str()));
        assert_eq!(header("idempotency-key"), Some("sync-7f3a"));
        assert_eq!(header("x-sync-origin"), Some("monday"));
        assert_eq!(header("content-type"), Some("application/json"));
        assert_eq!(header("accept"), Some("application/json"));
        let received = receiver.wait_for(2).await;
        assert_eq!(received[1].body["type"], "contact.updated");
        assert_eq!(received[1].body["data"], answer);
    }

    #[tokio::test]
    async fn patching_an_organization_uses_its_own_path() {
        let (sim, _receiver, client) = start().await;
        let org = organization("Acme");
        let id = org.id;
        sim.create_organization(org).await;

        let answer = client
            .patch(
                EntityKind::Organization,
                id,
                &fields(json!({"website": "https://acme.test"})),
                "k-org",
            )
            .await
            .expect("patched");

        assert_eq!(answer["website"], "https://acme.test");
        assert_eq!(last_call(&sim).path, format!("/api/v1/organizations/{id}"));
        assert_eq!(sim.organization(id).map(|o| o.version), Some(2));
    }

    #[tokio::test]
    async fn a_repeated_idempotency_key_changes_the_record_once_and_emits_one_event() {
        let (sim, receiver, client) = start().await;
        let id = create_ada(&sim).await;
        let change = fields(json!({"notes": "from Monday"}));

        let first = client
            .patch(EntityKind::Contact, id, &change, "same-key")
            .await
            .expect("first");
        let second = client
            .patch(EntityKind::Contact, id, &change, "same-key")
            .await
            .expect("replay");

        assert_eq!(first, second);
        assert_eq!(sim.contact(id).map(|c| c.version), Some(2));
        assert!(sim.events_delivered(Duration::from_secs(5)).await);
        let received = receiver.received();
        assert_eq!(received.len(), 2, "created + one updated: {received:?}");
        assert_eq!(sim.events().len(), 2);
        assert_eq!(sim.calls().len(), 2);
    }

    #[tokio::test]
    async fn create_contact_returns_the_new_id() {
        let (sim, receiver, client) = start().await;
        let new = fields(
            json!({"first_name": "Grace", "last_name": "Hopper", "monday_id": "4100000002"}),
        );

        let id = client
            .create_contact(&new, "create-42")
            .await
            .expect("created");

        let stored = sim.contact(id).expect("stored under the returned id");
        assert_eq!(stored.version, 1);
        assert_eq!(stored.last_name.as_deref(), Some("Hopper"));
        let call = last_call(&sim);
        assert_eq!(
            (call.method.as_str(), call.path.as_str(), call.status),
            ("POST", "/api/v1/contacts", 201)
        );
        assert_eq!(
            call.headers.get("idempotency-key").map(String::as_str),
            Some("create-42")
        );
        assert_eq!(
            call.headers.get("x-sync-origin").map(String::as_str),
            Some("monday")
        );
        let received = receiver.wait_for(1).await;
        assert_eq!(received[0].body["type"], "contact.created");
        assert_eq!(received[0].body["data"]["id"], id.to_string());
    }

    #[tokio::test]
    async fn statuses_are_classified_for_the_retry_policy() {
        let (sim, _receiver, client) = start().await;
        let id = insert_ada(&sim);
        let change = fields(json!({"notes": "x"}));
        // (statuses, their class, the Retry-After the simulator sends with them)
        let classes = [
            (&[400, 401, 403, 422][..], FailureClass::Permanent, None),
            (&[404], FailureClass::NotFound, None),
            (
                &[408, 409, 423, 425, 500, 502],
                FailureClass::Retryable,
                None,
            ),
            (
                &[429, 503],
                FailureClass::Retryable,
                Some(Duration::from_secs(1)),
            ),
        ];
        let cases = classes.iter().flat_map(|(statuses, class, retry_after)| {
            statuses
                .iter()
                .map(|status| (*status, *class, *retry_after))
        });
        for (n, (status, class, retry_after)) in cases.enumerate() {
            sim.faults().fail_next(1, status);

            let err = client
                .patch(EntityKind::Contact, id, &change, &format!("k-{n}"))
                .await
                .expect_err("a failure");

            assert_eq!(err.system, Side::Npd);
            assert_eq!(err.class, class, "status {status}");
            assert_eq!(err.status, Some(status));
            assert_eq!(err.retry_after, retry_after, "status {status}");
            assert_eq!(err.message, "simulated failure");
            assert_eq!(err.is_retryable(), class == FailureClass::Retryable);
        }
        assert_eq!(
            sim.contact(id).map(|c| c.version),
            Some(0),
            "nothing applied"
        );
    }

    #[tokio::test]
    async fn a_wrong_token_an_unknown_field_and_an_unknown_record_are_classified() {
        let (sim, _receiver, client) = start().await;
        let id = insert_ada(&sim);
        let change = fields(json!({"notes": "x"}));
        let wrong_token = NpdClient::new(
            &settings(Some(sim.url()), Some("not-the-token")),
            Duration::from_secs(5),
        )
        .expect("client");
        let unauthorized = wrong_token
            .get(EntityKind::Contact, id)
            .await
            .expect_err("401");
        let nickname = fields(json!({"nickname": "A"}));
        let unknown_field = client
            .patch(EntityKind::Contact, id, &nickname, "k-bad")
            .await
            .expect_err("400");
        let missing = NpdId(uuid::Uuid::new_v4());
        let unknown_record = client
            .patch(EntityKind::Contact, missing, &change, "k-missing")
            .await
            .expect_err("404");
        let expected = [
            (&unauthorized, FailureClass::Permanent, 401),
            (&unknown_field, FailureClass::Permanent, 400),
            (&unknown_record, FailureClass::NotFound, 404),
        ];
        for (err, class, status) in expected {
            assert_eq!((err.class, err.status), (class, Some(status)), "{err:?}");
        }
        assert_eq!(unauthorized.message, "missing or invalid bearer token");
        assert!(
            unknown_field.message.contains("`nickname`"),
            "{}",
            unknown_field.message
        );
    }

    #[tokio::test]
    async fn a_slow_answer_past_the_timeout_is_retryable_without_a_status() {
        let (sim, _receiver) = sim_with_receiver(&[]).await;
        let id = insert_ada(&sim);
        let client = client_for(&sim.url(), Duration::from_millis(200));
        sim.faults().delay(Duration::from_secs(2));

        let err = client
            .get(EntityKind::Contact, id)
            .await
            .expect_err("timed out");

        assert_eq!(err.class, FailureClass::Retryable);
        assert_eq!(err.status, None);
        assert_eq!(err.retry_after, None);
        assert_eq!(err.message, "timed out");
        sim.faults().delay(Duration::ZERO);
        assert!(
            client
                .get(EntityKind::Contact, id)
                .await
                .expect("fast again")
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable_without_a_status() {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        drop(listener);
        let client = client_for(&url, Duration::from_secs(2));

        let err = client
            .get(EntityKind::Contact, NpdId(uuid::Uuid::new_v4()))
            .await
            .expect_err("refused");

        assert_eq!((err.class, err.status), (FailureClass::Retryable, None));
        assert!(
            err.message.starts_with("could not connect"),
            "{}",
            err.message
        );
        assert!(!err.message.contains(&url), "{}", err.message);
    }

    #[tokio::test]
    async fn error_messages_never_contain_the_token_or_the_request_body() {
        // A misbehaving NPD (or proxy) that echoes the Authorization header in its errors.
        let echo = |status: u16, problem: bool| {
            move |headers: axum::http::HeaderMap| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let status = axum::http::StatusCode::from_u16(status).expect("status");
                if problem {
                    let body = json!({"title": "Bad", "detail": format!("header was {auth}")});
                    (
                        status,
                        [(AXUM_CONTENT_TYPE, "application/problem+json")],
                        body.to_string(),
                    )
                        .into_response()
                } else {
                    (status, format!("you sent {auth}\n")).into_response()
                }
            }
        };
        let app = Router::new()
            .route(
                "/api/v1/contacts/{id}",
                get(echo(400, true)).patch(echo(503, false)),
            )
            .route("/api/v1/organizations/{id}", get(echo(500, false)));
        let url = serve(app).await;
        let client = client_for(&url, Duration::from_secs(5));
        let secret_field = fields(json!({"notes": "PRIVATE-NOTE-TEXT"}));
        let id = NpdId(uuid::Uuid::new_v4());

        let errors = [
            client.get(EntityKind::Contact, id).await.expect_err("400"),
            client
                .patch(EntityKind::Contact, id, &secret_field, "k")
                .await
                .expect_err("503"),
            client
                .get(EntityKind::Organization, id)
                .await
                .expect_err("500"),
        ];

        for err in &errors {
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(TOKEN), "{shown}");
            assert!(!shown.contains("PRIVATE-NOTE-TEXT"), "{shown}");
            assert!(shown.contains("[REDACTED]"), "{shown}");
        }
        assert_eq!(errors[0].message, "header was Bearer [REDACTED]");
        assert_eq!(errors[1].message, "you sent Bearer [REDACTED]");
        assert_eq!(errors[1].retry_after, None);
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_oversized_or_malformed_answers_are_refused() {
        let app = Router::new()
            .route(
                "/api/v1/contacts/{id}",
                get(|| async {
                    (
                        axum::http::StatusCode::FOUND,
                        [(LOCATION, "http://127.0.0.1:9/elsewhere")],
                    )
                }),
            )
            .route(
                "/api/v1/organizations/{id}",
                get(|| async { format!("[{}1]", "1,".repeat(600_000)) })
                    .patch(|| async { "not json" }),
            )
            .route(
                "/api/v1/contacts",
                axum::routing::post(|| async {
                    (
                        axum::http::StatusCode::CREATED,
                        axum::Json(json!({"id": "nope"})),
                    )
                }),
            );
        let url = serve(app).await;
        let client = client_for(&url, Duration::from_secs(5));
        let id = NpdId(uuid::Uuid::new_v4());

        let redirect = client.get(EntityKind::Contact, id).await.expect_err("302");
        let oversized = client
            .get(EntityKind::Organization, id)
            .await
            .expect_err("too big");
        let not_json = client
            .patch(EntityKind::Organization, id, &Map::new(), "k")
            .await
            .expect_err("not JSON");
        let no_id = client
            .create_contact(&Map::new(), "k")
            .await
            .expect_err("no id");

        assert_eq!(
            (redirect.class, redirect.status),
            (FailureClass::Permanent, Some(302))
        );
        assert_eq!(oversized.class, FailureClass::Permanent);
        assert_eq!(oversized.message, "the answer is larger than 1 MiB");
        assert_eq!(not_json.message, "the answer is not valid JSON");
        assert_eq!(
            (no_id.class, no_id.status),
            (FailureClass::Permanent, Some(201))
        );
        assert_eq!(no_id.message, "the answer has no valid `id`");
    }

    #[tokio::test]
    async fn an_empty_success_answer_to_a_patch_is_null() {
        let app = Router::new().route(
            "/api/v1/contacts/{id}",
            axum::routing::patch(|| async { axum::http::StatusCode::NO_CONTENT }),
        );
        let url = serve(app).await;
        let client = client_for(&url, Duration::from_secs(5));

        let answer = client
            .patch(
                EntityKind::Contact,
                NpdId(uuid::Uuid::new_v4()),
                &Map::new(),
                "k",
            )
            .await
            .expect("204");

        assert_eq!(answer, Value::Null);
    }

    #[test]
    fn the_token_is_redacted_before_the_message_is_cut_to_300_characters() {
        let body = format!("{}{TOKEN} and more", "y".repeat(295));

        let message = error_message(StatusCode::BAD_REQUEST, body.as_bytes(), Some(TOKEN));

        assert_eq!(message.chars().count(), 300);
        assert!(message.ends_with("[REDA"), "{message}");
        assert!(!message.contains(&TOKEN[..5]), "{message}");
    }

    #[test]
    fn retry_after_accepts_delta_seconds_and_the_three_http_date_formats() {
        let now = PrimitiveDateTime::new(
            Date::from_calendar_date(1994, Month::November, 6).expect("date"),
            Time::from_hms(8, 49, 0).expect("time"),
        )
        .assume_utc();
        // (the header, the seconds to wait from `now`)
        let accepted = [
            ("1", 1),
            (" 120 ", 120),
            ("Sun, 06 Nov 1994 08:49:37 GMT", 37),
            ("Sunday, 06-Nov-94 08:49:37 GMT", 37),
            ("Sun Nov  6 08:49:37 1994", 37),
            ("Sun, 06 Nov 1994 08:48:00 GMT", 0),
        ];
        for (value, seconds) in accepted {
            let expected = Some(Duration::from_secs(seconds));
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
        let refused = [
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "-5",
            "1.5",
            "soon",
            "",
        ];
        for value in refused {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
    }

    #[test]
    fn error_messages_prefer_the_problem_detail_then_the_title_then_the_text() {
        let long = "x".repeat(1000);
        let cases: [(&[u8], String); 6] = [
            (
                br#"{"title": "Bad Request", "detail": "field `email`: wrong type"}"#,
                "field `email`: wrong type".into(),
            ),
            (br#"{"title": "Conflict", "detail": ""}"#, "Conflict".into()),
            (b"upstream\nexploded", "upstream exploded".into()),
            (long.as_bytes(), "x".repeat(300)),
            (b"", "HTTP 502 Bad Gateway".into()),
            (b"  ", "HTTP 502 Bad Gateway".into()),
        ];
        for (body, expected) in cases {
            assert_eq!(error_message(StatusCode::BAD_GATEWAY, body, None), expected);
        }
    }
}
