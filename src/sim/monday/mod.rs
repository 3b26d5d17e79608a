//! The Monday simulator: an in-process axum server on a loopback port that answers monday's
//! GraphQL API (`POST /v2`) the way the gateway can observe it, and fires board webhooks for
//! every change, like the real monday: to the webhooks registered with `create_webhook`
//! (unsigned), else signed to a target URL set by the test.
//!
//! Owns: the public simulator API (`MondaySim`, `MondaySimConfig`, `MondayFaults`, the call and
//! webhook logs, direct state access for large boards and missed deliveries), the HTTP edge
//! (authentication, request shape, fault injection, idempotency keys, the per-minute request and
//! complexity budget, rate-limit headers, the challenge sent before a `create_webhook` runs).
//! Submodules: `schema` (document validation), `store` (boards, items, column value formats),
//! `exec` (GraphQL execution), `setup` (webhook registration, column creation), `webhooks`
//! (event bodies and their delivery).
//! May import: std, axum, tokio, reqwest, serde_json, apollo-compiler, time, rand, uuid, tracing,
//! crate::{auth, domain}.

mod exec;
pub mod schema;
mod setup;
mod store;
mod webhooks;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use apollo_compiler::executable::Operation;
use apollo_compiler::request::coerce_variable_values;
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Node};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};

use super::{Deliveries, DeliveryTracker};
use crate::auth::constant_time_eq;
use crate::domain::entity::{BoardId, MondayItemId};
use store::{Change, Store};

/// How long `timeout_next` holds a request (longer than monday's own 60 s limit).
const TIMEOUT_HOLD: Duration = Duration::from_secs(65);
/// The sliding budget window.
const WINDOW: Duration = Duration::from_secs(60);
/// The concurrency quota advertised in `RateLimit-Policy`.
const CONCURRENCY_QUOTA: u64 = 250;
/// The API version answered when the request names none.
const DEFAULT_API_VERSION: &str = "2026-10";

/// A column of a simulated board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimColumn {
    pub id: String,
    /// GraphQL `ColumnType` name: text, long_text, email, phone, link, status, date, people.
    pub column_type: String,
    pub title: String,
}

impl SimColumn {
    pub fn new(id: &str, column_type: &str, title: &str) -> Self {
        SimColumn {
            id: id.to_owned(),
            column_type: column_type.to_owned(),
            title: title.to_owned(),
        }
    }
}

/// A webhook registered with `create_webhook`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimWebhook {
    pub id: u64,
    pub board_id: BoardId,
    /// Its `WebhookEventType`.
    pub event: String,
    pub config: Option<String>,
    /// Where its deliveries go (monday never answers this in `webhooks`).
    pub url: String,
}

/// A simulated board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBoard {
    pub id: BoardId,
    pub name: String,
    pub columns: Vec<SimColumn>,
}

impl SimBoard {
    /// A board with `columns` given as (id, GraphQL column type, title).
    pub fn new(id: BoardId, name: &str, columns: &[(&str, &str, &str)]) -> Self {
        SimBoard {
            id,
            name: name.to_owned(),
            columns: columns
                .iter()
                .map(|(id, column_type, title)| SimColumn::new(id, column_type, title))
                .collect(),
        }
    }
}

/// What the simulator is started with.
#[derive(Debug, Clone)]
pub struct MondaySimConfig {
    /// The API token requests must carry in `Authorization` (raw or `Bearer <token>`).
    pub api_token: String,
    /// Signs each webhook's JWT (HS256).
    pub signing_secret: String,
    /// `userId` on webhooks for changes made through the API (the gateway's own writes), and `me { id }`.
    pub integration_user_id: i64,
    pub boards: Vec<SimBoard>,
    /// Requests per sliding minute (default 5000).
    pub requests_per_minute: u64,
    /// Complexity points per sliding minute (default 5,000,000).
    pub complexity_per_minute: u64,
}

/// The columns of the default contacts board: (id, GraphQL column type, title).
const CONTACT_COLUMNS: &[(&str, &str, &str)] = &[
    ("email", "email", "Email"),
    ("phone", "phone", "Phone"),
    ("role_title", "text", "Role"),
    ("notes", "long_text", "Notes"),
    ("npd_id", "text", "NPD id"),
    ("status", "status", "Status"),
];

/// The columns of the default organizations board.
const ORGANIZATION_COLUMNS: &[(&str, &str, &str)] = &[
    ("website", "link", "Website"),
    ("industry", "text", "Industry"),
    ("notes", "long_text", "Notes"),
    ("npd_id", "text", "NPD id"),
];

impl MondaySimConfig {
    /// Two boards with the gateway's default mapping: contacts (email: email, phone: phone,
    /// role_title: text, notes: long_text, npd_id: text, status: status) and organizations
    /// (website: link, industry: text, notes: long_text, npd_id: text).
    pub fn contacts_and_organizations(contacts: BoardId, organizations: BoardId) -> Self {
        MondaySimConfig {
            api_token: "sim-monday-api-token".into(),
            signing_secret: "sim-monday-signing-secret".into(),
            integration_user_id: 71_000_099,
            boards: vec![
                SimBoard::new(contacts, "Contacts", CONTACT_COLUMNS),
                SimBoard::new(organizations, "Organizations", ORGANIZATION_COLUMNS),
            ],
            requests_per_minute: 5000,
            complexity_per_minute: 5_000_000,
        }
    }
}

/// The lifecycle state of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    Active,
    Archived,
    Deleted,
}

/// An item as the simulator keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimItem {
    pub id: MondayItemId,
    pub board_id: BoardId,
    pub name: String,
    pub state: ItemState,
    /// Column id to value, in the API write format (FACTS.md §2.6); empty columns are absent.
    pub column_values: BTreeMap<String, Value>,
}

/// One request the simulator received, and its answer.
#[derive(Debug, Clone)]
pub struct MondayCall {
    /// The first top-level field, e.g. "create_item" ("" when the body or document did not parse).
    pub operation: String,
    /// Every top-level field, in order: a batch names each of its mutations.
    pub fields: Vec<String>,
    pub query: String,
    pub variables: Value,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    pub api_version: Option<String>,
    pub status: u16,
    pub response: Value,
    /// Answered from the idempotency cache without executing.
    pub replayed: bool,
    /// When the request arrived.
    pub at: Instant,
}

impl MondayCall {
    /// How many `field` mutations (or queries) the call carried.
    pub fn count(&self, field: &str) -> usize {
        self.fields.iter().filter(|f| *f == field).count()
    }

    /// Whether the call carried a `field`.
    pub fn has(&self, field: &str) -> bool {
        self.count(field) > 0
    }
}

/// One webhook delivery attempt.
#[derive(Debug, Clone)]
pub struct SentWebhook {
    /// `{"event": {...}}`.
    pub body: Value,
    /// The JWT sent in `Authorization` (empty for an unsigned delivery).
    pub authorization: String,
    /// The receiver's answer; None when the request failed.
    pub status: Option<u16>,
}

/// An answer held by `MondayFaults::hold_next_answer`; releasing or dropping it lets it go.
pub struct AnswerHold(oneshot::Sender<()>);

impl AnswerHold {
    pub fn release(self) {
        let _ = self.0.send(());
    }
}

/// A running simulator. Clones share it.
#[derive(Clone)]
pub struct MondaySim {
    inner: Arc<Inner>,
}

/// Fault switches of a simulator.
#[derive(Clone)]
pub struct MondayFaults {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Status(u16),
    Timeout,
    RateLimit(u64),
    Complexity(u64),
    IdempotencyConflict,
}

enum Idempotency {
    InFlight,
    Done { status: u16, body: Value },
}

/// The sliding one-minute windows of requests and complexity points.
struct Budget {
    requests_per_minute: u64,
    complexity_per_minute: u64,
    requests: VecDeque<Instant>,
    points: VecDeque<(Instant, u64)>,
}

impl Budget {
    fn prune(&mut self, now: Instant) {
        while self
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.requests.pop_front();
        }
        while self
            .points
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
        {
            self.points.pop_front();
        }
    }

    /// Whole seconds until the window that started at `oldest` frees up (at least 1).
    fn seconds_until_free(oldest: Option<Instant>, now: Instant) -> u64 {
        oldest
            .map_or(1, |t| {
                let left = (t + WINDOW).saturating_duration_since(now);
                left.as_secs() + u64::from(left.subsec_nanos() > 0)
            })
            .max(1)
    }

    /// Counts one request; Err(retry seconds) when the minute's requests are used up.
    fn take_request(&mut self, now: Instant) -> Result<(), u64> {
        self.prune(now);
        if self.requests.len() as u64 >= self.requests_per_minute {
            return Err(Self::seconds_until_free(
                self.requests.front().copied(),
                now,
            ));
        }
        self.requests.push_back(now);
        Ok(())
    }

    fn points_used(&self) -> u64 {
        self.points.iter().map(|(_, p)| p).sum()
    }

    /// Charges `cost` points; Err(retry seconds) when the minute's budget cannot pay it.
    fn take_points(&mut self, now: Instant, cost: u64) -> Result<(), u64> {
        self.prune(now);
        if self.points_used().saturating_add(cost) > self.complexity_per_minute {
            return Err(Self::seconds_until_free(
                self.points.front().map(|(t, _)| *t),
                now,
            ));
        }
        self.points.push_back((now, cost));
        Ok(())
    }

    /// What `complexity` answers for a request of `cost` just charged at `now`.
    fn complexity(&mut self, now: Instant, cost: u64) -> exec::Complexity {
        self.prune(now);
        let after = self
            .complexity_per_minute
            .saturating_sub(self.points_used());
        exec::Complexity {
            before: after + cost,
            query: cost,
            reset_in_x_seconds: Self::seconds_until_free(self.points.front().map(|(t, _)| *t), now),
        }
    }

    /// `RateLimit-Policy` and `RateLimit` (FACTS.md §3.3).
    fn headers(&mut self, now: Instant, in_flight: u64) -> (String, String) {
        self.prune(now);
        let policy = format!(
            "\"minuteRate\";q={};w=60, \"concurrency\";q={CONCURRENCY_QUOTA};qu=\"concurrent-requests\", \"complexityMinute\";q={};w=60;qu=\"content-bytes\"",
            self.requests_per_minute, self.complexity_per_minute
        );
        let minute_left = self
            .requests_per_minute
            .saturating_sub(self.requests.len() as u64);
        let mut minute = format!("\"minuteRate\";r={minute_left}");
        if minute_left == 0 {
            let t = Self::seconds_until_free(self.requests.front().copied(), now);
            minute.push_str(&format!(";t={t}"));
        }
        let points_left = self
            .complexity_per_minute
            .saturating_sub(self.points_used());
        let mut complexity = format!("\"complexityMinute\";r={points_left}");
        if let Some((t, _)) = self.points.front() {
            let t = Self::seconds_until_free(Some(*t), now);
            complexity.push_str(&format!(";t={t}"));
        }
        let concurrency = CONCURRENCY_QUOTA.saturating_sub(in_flight);
        let rate = format!("{minute}, \"concurrency\";r={concurrency}, {complexity}");
        (policy, rate)
    }
}

struct SimState {
    store: Store,
    calls: Vec<MondayCall>,
    /// (url, audience)
    target: Option<(String, Option<String>)>,
    idempotency: HashMap<String, Idempotency>,
    /// Raised by `expire_idempotency_keys`: a key taken under an older epoch is not cached when
    /// its answer is finally sent (it has expired meanwhile).
    idempotency_epoch: u64,
    budget: Budget,
    faults: VecDeque<Fault>,
    latency: Duration,
    webhook_before_response: bool,
    webhooks_enabled: bool,
    /// Answers to hold (after the call is recorded) until the test releases them.
    holds: VecDeque<oneshot::Receiver<()>>,
    /// Holds for the next answers to mutations only.
    mutation_holds: VecDeque<oneshot::Receiver<()>>,
}

struct Inner {
    addr: SocketAddr,
    api_token: String,
    integration_user_id: i64,
    state: Mutex<SimState>,
    jobs: mpsc::UnboundedSender<webhooks::Job>,
    webhook_log: Arc<Mutex<Vec<SentWebhook>>>,
    /// Webhooks queued and not yet delivered.
    deliveries: DeliveryTracker,
    /// How many calls were ever recorded: wakes tests waiting for a call.
    calls_seen: watch::Sender<u64>,
    in_flight: AtomicU64,
    /// Sends the challenges of `create_webhook`.
    http: reqwest::Client,
}

/// An answer before the common headers are added.
struct Answer {
    status: u16,
    body: Value,
    headers: Vec<(HeaderName, String)>,
    replayed: bool,
}

impl Answer {
    fn new(status: u16, body: Value) -> Self {
        Answer {
            status,
            body,
            headers: Vec::new(),
            replayed: false,
        }
    }

    fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn retry_after(self, seconds: u64) -> Self {
        self.with_header(header::RETRY_AFTER, seconds.to_string())
    }
}

/// A GraphQL error body `{"errors": [{message, extensions: {code, ..}}]}`.
fn error_body(message: &str, code: &str, extra: Value) -> Value {
    let mut extensions = Map::new();
    extensions.insert("code".into(), json!(code));
    if let Value::Object(extra) = extra {
        extensions.extend(extra);
    }
    json!({ "errors": [{ "message": message, "extensions": extensions }] })
}

/// An answer with monday's error body, `status_code` in its extensions.
fn error_answer(status: u16, message: &str, code: &str, status_code: u16) -> Answer {
    Answer::new(
        status,
        error_body(message, code, json!({ "status_code": status_code })),
    )
}

/// A 400 `BadRequest` about the shape of the request body.
fn bad_request(message: &str) -> Answer {
    error_answer(400, message, "BadRequest", 400)
}

/// A 429 with `Retry-After` and `retry_in_seconds`.
fn too_many(message: &str, code: &str, seconds: u64) -> Answer {
    Answer::new(
        429,
        error_body(
            message,
            code,
            json!({ "retry_in_seconds": seconds, "status_code": 429 }),
        ),
    )
    .retry_after(seconds)
}

/// A request's validated document, the operation to run and its coerced variables.
struct Checked {
    doc: Valid<ExecutableDocument>,
    operation: Node<Operation>,
    variables: Map<String, Value>,
}

/// Checks a request the way monday does before running it: a JSON object body with the document
/// under `query` and an object of `variables`, a well-formed `API-Version`, a document valid
/// against the schema, the operation to run, and variables that fit it. The error is the answer.
fn check_request(
    parsed: Option<Value>,
    body: &[u8],
    api_version: Option<&str>,
) -> Result<Checked, Answer> {
    let Some(Value::Object(request)) = parsed else {
        return Err(if serde_json::from_slice::<Value>(body).is_err() {
            error_answer(
                400,
                "Invalid JSON in the request body",
                "JsonParseException",
                400,
            )
        } else {
            bad_request("Bad request: the body must be a JSON object")
        });
    };
    let Some(query) = request.get("query").and_then(Value::as_str) else {
        return Err(bad_request(
            "Bad request: the body must carry the GraphQL document under `query`",
        ));
    };
    let variables = match request.get("variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(v)) => v.clone(),
        Some(_) => {
            return Err(bad_request(
                "Bad request: `variables` must be a JSON object",
            ));
        }
    };
    if api_version.is_some_and(|v| !valid_api_version(v)) {
        return Err(error_answer(
            200,
            "Invalid API version. Versions look like 2026-10",
            "InvalidVersionException",
            400,
        ));
    }
    let doc = schema::check_document(query).map_err(|e| {
        let code = match e {
            schema::DocumentError::Parse(_) => "GRAPHQL_PARSE_FAILED",
            schema::DocumentError::Invalid(_) => "GRAPHQL_VALIDATION_FAILED",
        };
        validation_failed(e.problems(), code)
    })?;
    let invalid = |message: String| {
        let problem = schema::Problem {
            message,
            location: None,
        };
        validation_failed(&[problem], "GRAPHQL_VALIDATION_FAILED")
    };
    let operation_name = request.get("operationName").and_then(Value::as_str);
    let operation = doc
        .operations
        .get(operation_name)
        .map_err(|e| invalid(e.message().to_string()))?
        .clone();
    let coerced = serde_json::from_value::<JsonMap>(Value::Object(variables))
        .map_err(|e| e.to_string())
        .and_then(|raw| {
            coerce_variable_values(schema::subset_schema(), &operation, &raw)
                .map_err(|e| e.message().to_string())
        })
        .and_then(|valid| serde_json::to_value(&*valid).map_err(|e| e.to_string()))
        .map_err(invalid)?;
    let variables = match coerced {
        Value::Object(v) => v,
        _ => Map::new(),
    };
    Ok(Checked {
        doc,
        operation,
        variables,
    })
}

/// The answer a fault switch forces.
fn fault_answer(fault: Fault) -> Answer {
    match fault {
        Fault::Status(500) => Answer::new(
            500,
            json!({
                "error_message": "Internal server error",
                "error_code": "INTERNAL_SERVER_ERROR",
                "status_code": 500,
                "errors": [{
                    "message": "Internal server error",
                    "extensions": { "code": "INTERNAL_SERVER_ERROR", "status_code": 500 },
                }],
            }),
        ),
        Fault::Status(423) => error_answer(
            423,
            "Resource is currently locked, please try again later",
            "RESOURCE_LOCKED",
            423,
        ),
        Fault::Status(status) => {
            let reason = StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            let code = reason.to_uppercase().replace([' ', '-'], "_");
            error_answer(status, reason, &code, status)
        }
        Fault::Timeout => error_answer(504, "Gateway Timeout", "GATEWAY_TIMEOUT", 504),
        Fault::RateLimit(seconds) => {
            too_many("Rate Limit Exceeded", "RATE_LIMIT_EXCEEDED", seconds)
        }
        Fault::Complexity(seconds) => Answer::new(
            200,
            error_body(
                "Complexity budget exhausted",
                "COMPLEXITY_BUDGET_EXHAUSTED",
                json!({ "retry_in_seconds": seconds }),
            ),
        ),
        Fault::IdempotencyConflict => idempotency_conflict(),
    }
}

fn idempotency_conflict() -> Answer {
    Answer::new(
        409,
        error_body(
            "A request with this idempotency key is currently being processed",
            "IDEMPOTENCY_CONFLICT",
            json!({}),
        ),
    )
    .retry_after(1)
}

fn validation_failed(problems: &[schema::Problem], code: &str) -> Answer {
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| {
            let mut error = json!({ "message": p.message, "extensions": { "code": code } });
            if let Some((line, column)) = p.location {
                error["locations"] = json!([{ "line": line, "column": column }]);
            }
            error
        })
        .collect();
    Answer::new(200, json!({ "errors": errors }))
}

/// Holds an executed mutation's idempotency key in flight until the answer is sent; then (or
/// when the request is abandoned, since the mutation ran anyway) caches the answer under it.
struct InFlightKey<'a> {
    inner: &'a Inner,
    key: String,
    /// The epoch the key was taken in (see `SimState::idempotency_epoch`).
    epoch: u64,
    status: u16,
    body: Value,
}

impl Drop for InFlightKey<'_> {
    fn drop(&mut self) {
        let done = Idempotency::Done {
            status: self.status,
            body: std::mem::take(&mut self.body),
        };
        let mut state = self.inner.lock();
        if state.idempotency_epoch == self.epoch {
            state
                .idempotency
                .insert(std::mem::take(&mut self.key), done);
        }
    }
}

/// Counts a request in flight while alive.
struct InFlightRequest<'a>(&'a AtomicU64);

impl Drop for InFlightRequest<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn valid_api_version(v: &str) -> bool {
    let b = v.as_bytes();
    v == "dev"
        || (b.len() == 7
            && b[4] == b'-'
            && b[..4].iter().all(u8::is_ascii_digit)
            && matches!(&v[5..], "01" | "04" | "07" | "10"))
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a call to the log and wakes whoever waits for one.
    fn record(&self, state: &mut SimState, call: MondayCall) {
        state.calls.push(call);
        self.calls_seen.send_modify(|n| *n += 1);
    }

    fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization.map(str::trim) else {
            return false;
        };
        let token = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => value,
        };
        !token.is_empty() && constant_time_eq(token.as_bytes(), self.api_token.as_bytes())
    }

    /// Queues the webhooks of `changes` (none when webhooks are off): to the webhooks registered
    /// for the change's board and event, unsigned, else to the target (signed), if one is set.
    /// The receivers resolve once each was delivered, when `wait`.
    fn dispatch(
        &self,
        state: &SimState,
        changes: &[Change],
        user_id: i64,
        wait: bool,
    ) -> Vec<oneshot::Receiver<()>> {
        if !state.webhooks_enabled {
            return Vec::new();
        }
        let now = OffsetDateTime::now_utc();
        let mut receivers = Vec::new();
        for change in changes {
            let board_index = state.store.board_index(change.board()).unwrap_or_default();
            let body = webhooks::event_body(change, user_id, board_index, now);
            let registered = setup::fired_by(&state.store, change);
            // (url, audience: None for an unsigned delivery, subscription id to set)
            let targets: Vec<(String, Option<String>, Option<u64>)> = if registered.is_empty() {
                state
                    .target
                    .iter()
                    .map(|(url, audience)| {
                        let audience = audience.clone().unwrap_or_else(|| url.clone());
                        (url.clone(), Some(audience), None)
                    })
                    .collect()
            } else {
                registered
                    .into_iter()
                    .map(|w| (w.url, None, Some(w.id)))
                    .collect()
            };
            for (url, audience, subscription) in targets {
                let mut body = body.clone();
                if let Some(id) = subscription {
                    body["event"]["subscriptionId"] = json!(id);
                }
                let (done, receiver) = if wait {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                } else {
                    (None, None)
                };
                let job = webhooks::Job {
                    body,
                    user_id,
                    url,
                    audience,
                    done,
                    _delivery: self.deliveries.queue(),
                };
                if self.jobs.send(job).is_ok()
                    && let Some(rx) = receiver
                {
                    receivers.push(rx);
                }
            }
        }
        receivers
    }

    async fn handle(&self, headers: HeaderMap, body: Bytes) -> Response {
        let at = Instant::now();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlightRequest(&self.in_flight);
        let request_id = uuid::Uuid::new_v4().to_string();
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let query = parsed
            .as_ref()
            .and_then(|b| b.get("query"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut call = MondayCall {
            operation: schema::first_field_name(&query).unwrap_or_default(),
            fields: schema::field_names(&query),
            variables: parsed
                .as_ref()
                .and_then(|b| b.get("variables"))
                .cloned()
                .unwrap_or(Value::Null),
            query,
            idempotency_key: text("idempotency-key"),
            authorization: text("authorization"),
            api_version: text("api-version"),
            status: 0,
            response: Value::Null,
            replayed: false,
            at,
        };

        if !self.authorized(call.authorization.as_deref()) {
            let answer = Answer::new(
                401,
                error_body("Not Authenticated", "NOT_AUTHENTICATED", json!({})),
            );
            return self.finish(call, answer, &request_id, None).await;
        }

        let taken = self.lock().budget.take_request(at);
        if let Err(seconds) = taken {
            let answer = too_many("Minute limit rate exceeded", "RATE_LIMIT_EXCEEDED", seconds);
            return self.finish(call, answer, &request_id, None).await;
        }

        let fault = self.lock().faults.pop_front();
        if let Some(fault) = fault {
            if let Fault::Timeout = fault {
                let answer = fault_answer(fault);
                call.status = answer.status;
                call.response = answer.body.clone();
                self.record(&mut self.lock(), call.clone());
                tokio::time::sleep(TIMEOUT_HOLD).await;
                return self.respond(answer, &request_id, call.api_version.as_deref());
            }
            return self
                .finish(call, fault_answer(fault), &request_id, None)
                .await;
        }

        let checked = match check_request(parsed, &body, call.api_version.as_deref()) {
            Ok(checked) => checked,
            Err(answer) => return self.finish(call, answer, &request_id, None).await,
        };
        // Like monday, a webhook is registered only for a URL that echoes a challenge.
        let mut verified = Vec::new();
        let urls = exec::Request {
            doc: &checked.doc,
            operation: &checked.operation,
            variables: &checked.variables,
            verified_urls: &[],
        }
        .webhook_urls();
        for url in urls {
            if setup::challenge(&self.http, &url).await {
                verified.push(url);
            }
        }
        let req = exec::Request {
            doc: &checked.doc,
            operation: &checked.operation,
            variables: &checked.variables,
            verified_urls: &verified,
        };
        let key = call
            .idempotency_key
            .clone()
            .filter(|k| req.is_mutation() && !k.is_empty());

        // Idempotency, budget and execution in one critical section.
        let gate = {
            let mut state = self.lock();
            let cached = key
                .as_ref()
                .and_then(|key| match state.idempotency.get(key) {
                    Some(Idempotency::Done { status, body }) => {
                        let mut answer = Answer::new(*status, body.clone())
                            .with_header(HeaderName::from_static("idempotency-replayed"), "true");
                        answer.replayed = true;
                        Some(answer)
                    }
                    Some(Idempotency::InFlight) => Some(idempotency_conflict()),
                    None => None,
                });
            if let Some(answer) = cached {
                Err(answer)
            } else if let Err(seconds) = state.budget.take_points(at, req.cost()) {
                Err(too_many(
                    "Complexity budget exhausted",
                    "COMPLEXITY_BUDGET_EXHAUSTED",
                    seconds,
                ))
            } else {
                if let Some(key) = &key {
                    state.idempotency.insert(key.clone(), Idempotency::InFlight);
                }
                let complexity = state.budget.complexity(at, req.cost());
                let outcome = exec::execute(
                    &mut state.store,
                    &req,
                    self.integration_user_id,
                    complexity,
                    OffsetDateTime::now_utc(),
                );
                let wait = state.webhook_before_response;
                let receivers =
                    self.dispatch(&state, &outcome.changes, self.integration_user_id, wait);
                Ok((outcome, receivers, state.idempotency_epoch))
            }
        };
        let (outcome, receivers, epoch) = match gate {
            Ok(run) => run,
            Err(answer) => return self.finish(call, answer, &request_id, None).await,
        };
        let mut body = outcome.body;
        body.insert("extensions".into(), json!({ "request_id": request_id }));
        let body = Value::Object(body);
        // From here on the answer is cached even if the request is abandoned (the mutation ran).
        // Created outside the critical section: its Drop locks.
        let guard = key.map(|key| InFlightKey {
            inner: self,
            key,
            epoch,
            status: 200,
            body: body.clone(),
        });
        for rx in receivers {
            let _ = rx.await;
        }
        self.finish(call, Answer::new(200, body), &request_id, guard)
            .await
    }

    /// Records the call, waits the configured latency (and for a held answer's release), then
    /// answers (and only then releases an idempotency key held in flight).
    async fn finish(
        &self,
        mut call: MondayCall,
        mut answer: Answer,
        request_id: &str,
        guard: Option<InFlightKey<'_>>,
    ) -> Response {
        if let Value::Object(body) = &mut answer.body
            && !body.contains_key("extensions")
        {
            body.insert("extensions".into(), json!({ "request_id": request_id }));
        }
        call.status = answer.status;
        call.response = answer.body.clone();
        call.replayed = answer.replayed;
        let api_version = call.api_version.clone();
        let mutation = call.query.trim_start().starts_with("mutation");
        let (latency, hold) = {
            let mut state = self.lock();
            self.record(&mut state, call);
            let hold = match state.holds.pop_front() {
                Some(hold) => Some(hold),
                None if mutation => state.mutation_holds.pop_front(),
                None => None,
            };
            (state.latency, hold)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(hold) = hold {
            // Released (or dropped) by the test.
            let _ = hold.await;
        }
        drop(guard);
        self.respond(answer, request_id, api_version.as_deref())
    }

    /// The HTTP response with monday's common headers.
    fn respond(&self, answer: Answer, request_id: &str, api_version: Option<&str>) -> Response {
        let (policy, rate) = {
            let in_flight = self.in_flight.load(Ordering::SeqCst);
            self.lock().budget.headers(Instant::now(), in_flight)
        };
        // A replayed answer keeps the request id it was first given.
        let request_id = answer
            .body
            .pointer("/extensions/request_id")
            .and_then(Value::as_str)
            .unwrap_or(request_id)
            .to_owned();
        let status =
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, answer.body.to_string()).into_response();
        let headers = response.headers_mut();
        let mut set = |name: HeaderName, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set(header::CONTENT_TYPE, "application/json; charset=utf-8");
        set(HeaderName::from_static("ratelimit-policy"), &policy);
        set(HeaderName::from_static("ratelimit"), &rate);
        set(HeaderName::from_static("x-request-id"), &request_id);
        set(
            HeaderName::from_static("api-version"),
            api_version
                .filter(|v| valid_api_version(v))
                .unwrap_or(DEFAULT_API_VERSION),
        );
        for (name, value) in answer.headers {
            set(name, &value);
        }
        response
    }
}

async fn handle(
    AxumState(inner): AxumState<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.handle(headers, body).await
}

impl MondaySim {
    /// Binds 127.0.0.1:0 and starts serving `POST /v2` and delivering webhooks.
    pub async fn start(config: MondaySimConfig) -> std::io::Result<MondaySim> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let (jobs, receiver) = mpsc::unbounded_channel();
        let webhook_log = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(webhooks::deliver_all(
            receiver,
            client.clone(),
            config.signing_secret.as_bytes().to_vec(),
            webhook_log.clone(),
        ));
        let inner = Arc::new(Inner {
            addr,
            api_token: config.api_token.clone(),
            integration_user_id: config.integration_user_id,
            state: Mutex::new(SimState {
                store: Store::new(config.boards.clone()),
                calls: Vec::new(),
                target: None,
                idempotency: HashMap::new(),
                idempotency_epoch: 0,
                budget: Budget {
                    requests_per_minute: config.requests_per_minute,
                    complexity_per_minute: config.complexity_per_minute,
                    requests: VecDeque::new(),
                    points: VecDeque::new(),
                },
                faults: VecDeque::new(),
                latency: Duration::ZERO,
                webhook_before_response: false,
                webhooks_enabled: true,
                holds: VecDeque::new(),
                mutation_holds: VecDeque::new(),
            }),
            jobs,
            webhook_log,
            deliveries: DeliveryTracker::new(),
            calls_seen: watch::Sender::new(0),
            in_flight: AtomicU64::new(0),
            http: client,
        });
        let app = Router::new()
            .route("/v2", post(handle))
            .with_state(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the Monday simulator stopped serving");
            }
        });
        Ok(MondaySim { inner })
    }

    /// "http://127.0.0.1:PORT/v2" (the MONDAY_API_URL).
    pub fn api_url(&self) -> String {
        format!("http://{}/v2", self.inner.addr)
    }

    /// Where board webhooks are delivered, and the `aud` their JWT carries (None: the url).
    /// None url: no deliveries.
    pub fn set_webhook_target(&self, url: Option<String>, audience: Option<String>) {
        self.inner.lock().target = url.map(|url| (url, audience));
    }

    /// Every request received so far, in order of answer.
    pub fn calls(&self) -> Vec<MondayCall> {
        self.inner.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.inner.lock().calls.clear();
    }

    /// Waits until a call matching `matches` was received (it may already have been), and returns
    /// it; None after `within`. A call is recorded before its latency or hold, so while one is
    /// held it is in flight: a mutation has executed and its idempotency key is still taken.
    pub async fn wait_for_call(
        &self,
        within: Duration,
        matches: impl Fn(&MondayCall) -> bool,
    ) -> Option<MondayCall> {
        super::wait_for_logged(&self.inner.calls_seen, within, || {
            self.inner.lock().calls.iter().find(|c| matches(c)).cloned()
        })
        .await
    }

    /// The webhooks queued so far and how many of them are not delivered (or given up on) yet.
    pub fn webhook_deliveries(&self) -> Deliveries {
        self.inner.deliveries.get()
    }

    /// Waits until every queued webhook was delivered or given up on; false after `within`.
    /// A mutation or a simulated user's edit queues its webhooks before it returns, so once this
    /// is true no webhook of anything done before is still to come.
    pub async fn webhooks_delivered(&self, within: Duration) -> bool {
        self.inner.deliveries.wait_idle(within).await
    }

    /// The items of `board` in any state (deleted ones included), by id.
    pub fn items(&self, board: BoardId) -> Vec<SimItem> {
        self.inner
            .lock()
            .store
            .items()
            .filter(|s| s.item.board_id == board)
            .map(|s| s.item.clone())
            .collect()
    }

    pub fn item(&self, id: MondayItemId) -> Option<SimItem> {
        self.inner.lock().store.item(id).map(|s| s.item.clone())
    }

    /// The webhooks registered on `board` with `create_webhook`, with where they point.
    pub fn registered_webhooks(&self, board: BoardId) -> Vec<SimWebhook> {
        let state = self.inner.lock();
        state
            .store
            .webhooks()
            .iter()
            .filter(|w| w.board_id == board)
            .cloned()
            .collect()
    }

    /// The columns of `board` as they are now (`create_column` adds to them).
    pub fn columns(&self, board: BoardId) -> Vec<SimColumn> {
        let state = self.inner.lock();
        state
            .store
            .board(board)
            .map(|b| b.columns.clone())
            .unwrap_or_default()
    }

    /// Adds columns to a board, given as (id, GraphQL column type, title): a board a person
    /// extended. False when there is no such board.
    pub fn add_columns(&self, board: BoardId, columns: &[(&str, &str, &str)]) -> bool {
        let mut state = self.inner.lock();
        let Some(board) = state.store.board_mut(board) else {
            return false;
        };
        board.columns.extend(
            columns
                .iter()
                .map(|(id, column_type, title)| SimColumn::new(id, column_type, title)),
        );
        true
    }

    /// Puts items on their boards as given (ids, states and values in the API write format),
    /// with no webhook: a board that already held them. Built for large boards, so tests need
    /// not create thousands of items through the API. Later created items get higher ids.
    pub fn insert_items(&self, items: impl IntoIterator<Item = SimItem>) {
        let now = OffsetDateTime::now_utc();
        let mut state = self.inner.lock();
        for item in items {
            state.store.insert_item(item, now);
        }
    }

    /// Changes an item directly (values, name, state), with no webhook: an edit whose delivery
    /// Monday gave up on. False when there is no such item.
    pub fn edit_item_silently(&self, id: MondayItemId, edit: impl FnOnce(&mut SimItem)) -> bool {
        self.inner
            .lock()
            .store
            .edit_item(id, OffsetDateTime::now_utc(), edit)
    }

    /// Every webhook delivery attempt so far, in order.
    pub fn webhooks(&self) -> Vec<SentWebhook> {
        self.inner
            .webhook_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies a simulated human's edit and waits until its webhooks were delivered.
    async fn user_write(
        &self,
        write: impl FnOnce(&mut Store, OffsetDateTime) -> Result<Vec<Change>, store::FieldError>,
        what: &str,
    ) {
        let receivers = {
            let mut state = self.inner.lock();
            match write(&mut state.store, OffsetDateTime::now_utc()) {
                Ok(changes) => self
                    .inner
                    .dispatch(&state, &changes, webhooks::HUMAN_USER_ID, true),
                Err(e) => {
                    tracing::warn!(code = e.code, message = %e.message, "simulated user {what} refused");
                    Vec::new()
                }
            }
        };
        for rx in receivers {
            let _ = rx.await;
        }
    }

    /// As a human in monday's UI (userId 4012689): sets one column (value in the API write
    /// format; null clears) and fires `update_column_value`. Returns once the webhooks were delivered.
    pub async fn user_change_column(&self, item: MondayItemId, column_id: &str, value: Value) {
        let mut values = Map::new();
        values.insert(column_id.to_owned(), value);
        self.user_write(
            |store, now| store.change_columns(None, item, &Value::Object(values), now),
            "column change",
        )
        .await;
    }

    /// As a human: renames the item and fires `update_name`.
    pub async fn user_rename_item(&self, item: MondayItemId, name: &str) {
        let values = json!({ "name": name });
        self.user_write(
            |store, now| store.change_columns(None, item, &values, now),
            "rename",
        )
        .await;
    }

    /// As a human: creates an item and fires `create_pulse`.
    ///
    /// Panics when the board does not exist or a value is invalid (a mistake in the test).
    pub async fn user_create_item(
        &self,
        board: BoardId,
        name: &str,
        column_values: Map<String, Value>,
    ) -> MondayItemId {
        let (id, receivers) = {
            let mut state = self.inner.lock();
            let created = state.store.create_item(
                board,
                name,
                &Value::Object(column_values),
                OffsetDateTime::now_utc(),
            );
            let (id, changes) = match created {
                Ok(created) => created,
                Err(e) => panic!(
                    "user_create_item on board {board}: {} ({})",
                    e.message, e.code
                ),
            };
            let receivers = self
                .inner
                .dispatch(&state, &changes, webhooks::HUMAN_USER_ID, true);
            (id, receivers)
        };
        for rx in receivers {
            let _ = rx.await;
        }
        id
    }

    /// As a human: archives the item and fires `archive_pulse`.
    pub async fn user_archive_item(&self, item: MondayItemId) {
        self.user_write(|store, _| store.set_state(item, true), "archive")
            .await;
    }

    /// As a human: deletes the item and fires `delete_pulse`.
    pub async fn user_delete_item(&self, item: MondayItemId) {
        self.user_write(|store, _| store.set_state(item, false), "delete")
            .await;
    }

    pub fn faults(&self) -> MondayFaults {
        MondayFaults {
            inner: self.inner.clone(),
        }
    }
}

impl MondayFaults {
    fn push(&self, n: usize, fault: Fault) {
        self.inner
            .lock()
            .faults
            .extend(std::iter::repeat_n(fault, n));
    }

    /// The next `n` requests answer HTTP `status` with monday's error body; nothing is executed.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.push(n, Fault::Status(status));
    }

    /// The next `n` requests are held ~65 s (the client times out first), then answered 504;
    /// nothing is executed.
    pub fn timeout_next(&self, n: usize) {
        self.push(n, Fault::Timeout);
    }

    /// The next `n` requests answer 429 with `Retry-After` and `RATE_LIMIT_EXCEEDED`.
    pub fn rate_limit_next(&self, n: usize, retry_after_secs: u64) {
        self.push(n, Fault::RateLimit(retry_after_secs));
    }

    /// The next `n` requests answer HTTP 200 with `COMPLEXITY_BUDGET_EXHAUSTED` and `retry_in_seconds`.
    pub fn complexity_exhausted_next(&self, n: usize, retry_in_seconds: u64) {
        self.push(n, Fault::Complexity(retry_in_seconds));
    }

    /// The next `n` requests answer 409 `IDEMPOTENCY_CONFLICT` with `Retry-After: 1`.
    pub fn idempotency_conflict_next(&self, n: usize) {
        self.push(n, Fault::IdempotencyConflict);
    }

    /// Holds the next answer: the request is recorded (see `MondaySim::wait_for_call`) and, for a
    /// mutation, executed with its idempotency key in flight, but not answered until the returned
    /// hold is released or dropped.
    pub fn hold_next_answer(&self) -> AnswerHold {
        let (release, hold) = oneshot::channel();
        self.inner.lock().holds.push_back(hold);
        AnswerHold(release)
    }

    /// Like `hold_next_answer`, for the next answer to a mutation (queries pass).
    pub fn hold_next_mutation_answer(&self) -> AnswerHold {
        let (release, hold) = oneshot::channel();
        self.inner.lock().mutation_holds.push_back(hold);
        AnswerHold(release)
    }

    /// Every answer is delayed by `d` (zero: no delay).
    pub fn set_latency(&self, d: Duration) {
        self.inner.lock().latency = d;
    }

    /// Deliver a mutation's webhooks (and wait for them) before answering it.
    pub fn set_webhook_before_response(&self, on: bool) {
        self.inner.lock().webhook_before_response = on;
    }

    /// Turns webhook deliveries on or off (events of changes made while off are never sent).
    pub fn set_webhooks_enabled(&self, on: bool) {
        self.inner.lock().webhooks_enabled = on;
    }

    /// Moves the clock that ages page cursors forward by `by`: every cursor of a walk begun more
    /// than 60 minutes (of this clock) ago is expired, as on monday.
    pub fn advance_clock(&self, by: Duration) {
        let by = time::Duration::try_from(by).unwrap_or(time::Duration::MAX);
        self.inner.lock().store.advance_cursor_clock(by);
    }

    /// The next request that continues a walk with a cursor finds it expired (as if its 60
    /// minutes had run out just then).
    pub fn expire_next_cursor(&self) {
        self.inner.lock().store.expire_next_cursor();
    }

    /// Every idempotency key expires, answered or still in flight, as if 30 minutes passed since
    /// each was used: a mutation executed under a key whose answer is still held is not cached
    /// when that answer is sent, and a request that reuses any key is executed again.
    pub fn expire_idempotency_keys(&self) {
        let mut state = self.inner.lock();
        state.idempotency.clear();
        state.idempotency_epoch += 1;
    }

    /// Forgets every cached idempotent answer, as if 30 minutes passed.
    pub fn drop_idempotency_cache(&self) {
        self.inner
            .lock()
            .idempotency
            .retain(|_, v| matches!(v, Idempotency::InFlight));
    }
}
