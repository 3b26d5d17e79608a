//! NPD simulator: an in-process NPD (REST API and signed change events) for tests and `demo`.
//!
//! Owns: `NpdSim` (the loopback server, its contacts and organizations, the call log and the log
//! of emitted events), `NpdSimConfig`, `NpdCall`, `EmittedEvent` and `NpdFaults` (fault switches).
//! May import: std, axum, base64, tokio, reqwest, serde, serde_json, time, uuid,
//! crate::{auth, domain}.
//!
//! What it does, as far as the gateway can tell the real NPD:
//! - `GET`/`PATCH /api/v1/contacts/{id}`, `POST /api/v1/contacts`, `GET`/`PATCH
//!   /api/v1/organizations/{id}`, answering the record as an event's `data` shape, and the list
//!   API `GET /api/v1/{contacts|organizations}?limit=N&cursor=C` (`{"items", "next_cursor"}`,
//!   records in id order, the cursor opaque); problems are
//!   `application/problem+json` (unknown id 404, malformed UUID or body 400, wrong token 401).
//! - Every change (by NPD's own users through the `create_*`/`update_*`/`delete_*` methods, or by
//!   the API) bumps the record's version and `updated_at`, then emits a Standard Webhooks signed
//!   `contact.*`/`organization.*` event to the event target, retried like a real sender.
//! - `Idempotency-Key` on writes: a repeat answers the first answer without applying it again.
//!
//! The server stops when the last clone of its `NpdSim` is dropped.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::{Deliveries, Delivery, DeliveryTracker};
use crate::auth::constant_time_eq;
use crate::auth::standard_webhooks::{WebhookSecret, sign};
use crate::domain::entity::{ContactSnapshot, EntityKind, NpdId, OrganizationSnapshot};

/// Retries of an event delivery after the first attempt (a real sender's schedule, compressed).
const EVENT_RETRIES: usize = 5;
/// Pause between two attempts of one event delivery.
const EVENT_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Bound on one attempt of an event delivery.
const EVENT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const PROBLEM_JSON: &str = "application/problem+json";
/// Longest accepted `Idempotency-Key`, in bytes.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct NpdSimConfig {
    /// When set, every API request must carry `Authorization: Bearer <api_token>`.
    pub api_token: Option<String>,
    /// The `whsec_...` secret events are signed with (the gateway's `NPD_WEBHOOK_SECRET`).
    pub webhook_secret: String,
}

/// A running simulated NPD. Clones share the same server and records.
#[derive(Clone)]
pub struct NpdSim {
    inner: Arc<Inner>,
    addr: SocketAddr,
    /// Dropping the last clone drops the sender, which shuts the server down.
    _shutdown: Arc<oneshot::Sender<()>>,
    /// Closed once the server has stopped serving.
    stopped: watch::Receiver<()>,
}

/// One API request as NPD received it, with the status it was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct NpdCall {
    pub method: String,
    pub path: String,
    /// Lower-case header names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON, as a JSON string when it is not JSON, `None` when empty.
    pub body: Option<Value>,
    pub status: u16,
}

/// One change event NPD sent (or tried to send) to the gateway.
#[derive(Debug, Clone)]
pub struct EmittedEvent {
    pub webhook_id: String,
    pub body: Value,
    /// The gateway's answer to the last attempt; `None` without a target or when it failed.
    pub status: Option<u16>,
}

/// Shared fault switches of a simulator.
#[derive(Clone)]
pub struct NpdFaults {
    faults: Arc<Faults>,
}

struct Faults {
    /// (requests left to fail, status to fail them with).
    fail: Mutex<(usize, u16)>,
    delay: Mutex<Duration>,
    emit_on_patch: AtomicBool,
}

struct Inner {
    api_token: Option<String>,
    secret: WebhookSecret,
    http: reqwest::Client,
    faults: Arc<Faults>,
    next_call: AtomicU64,
    store: Mutex<Store>,
    /// Events logged and not yet delivered (or given up on).
    deliveries: DeliveryTracker,
    /// Bumped as each call is logged (`wait_for_call` waits on it).
    calls_seen: watch::Sender<u64>,
}

#[derive(Default)]
struct Store {
    contacts: HashMap<NpdId, ContactSnapshot>,
    organizations: HashMap<NpdId, OrganizationSnapshot>,
    /// The last version given to each record, kept after a delete so versions never go back.
    versions: HashMap<(EntityKind, NpdId), i64>,
    last_updated_at: Option<OffsetDateTime>,
    /// The call log, each with its sequence number (to set the status once answered).
    calls: Vec<(u64, NpdCall)>,
    events: Vec<EmittedEvent>,
    event_target: Option<String>,
    idempotency: HashMap<String, StoredAnswer>,
    /// The custom fields NPD's schema defines (any record may carry them; writes may set them).
    custom_fields: std::collections::BTreeSet<String>,
}

/// The first answer given to an `Idempotency-Key`, and what it was given to.
struct StoredAnswer {
    request: (Method, String, Value),
    answer: Answer,
}

/// What a change did to a record, as in the event type's suffix.
#[derive(Debug, Clone, Copy)]
enum Action {
    Created,
    Updated,
    Deleted,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
        }
    }
}

/// An event stored in the log, not yet delivered.
struct PendingEvent {
    index: usize,
    webhook_id: String,
    body: Value,
    /// Pending in `Inner::deliveries` until the delivery is over.
    _delivery: Delivery,
}

// ---------------------------------------------------------------------------------------------
// The two record kinds
// ---------------------------------------------------------------------------------------------

/// The types a patchable field accepts (`null` is accepted by all but `Bool`).
#[derive(Debug, Clone, Copy)]
enum FieldType {
    Text,
    Uuid,
    MondayId,
    Bool,
    /// An NPD custom field: a string, number, boolean, list of strings, or null.
    Custom,
}

impl FieldType {
    fn accepts(self, value: &Value) -> bool {
        match self {
            FieldType::Bool => value.is_boolean(),
            _ if value.is_null() => true,
            FieldType::Custom => match value {
                Value::Array(items) => items.iter().all(Value::is_string),
                other => !other.is_object(),
            },
            FieldType::Text => value.is_string(),
            FieldType::Uuid => value.as_str().is_some_and(|s| Uuid::parse_str(s).is_ok()),
            FieldType::MondayId => {
                value.as_u64().is_some()
                    || value.as_str().is_some_and(|s| {
                        !s.is_empty()
                            && s.bytes().all(|b| b.is_ascii_digit())
                            && s.parse::<u64>().is_ok()
                    })
            }
        }
    }

    fn expected(self) -> &'static str {
        match self {
            FieldType::Text => "a string or null",
            FieldType::Uuid => "a UUID string or null",
            FieldType::MondayId => "a numeric id (number or string of digits) or null",
            FieldType::Bool => "a boolean",
            FieldType::Custom => "a string, number, boolean, list of strings or null",
        }
    }
}

/// The fields an API write may set on a record kind. Both kinds take `monday_id` (a numeric id)
/// and `sync_enabled` (a boolean).
struct Patchable {
    /// Strings or null.
    text: &'static [&'static str],
    /// UUID strings or null.
    uuids: &'static [&'static str],
}

impl Patchable {
    /// The type `name` accepts; `None` when it is unknown or read-only.
    fn field_type(&self, name: &str) -> Option<FieldType> {
        match name {
            "monday_id" => Some(FieldType::MondayId),
            "sync_enabled" => Some(FieldType::Bool),
            _ if self.text.contains(&name) => Some(FieldType::Text),
            _ if self.uuids.contains(&name) => Some(FieldType::Uuid),
            _ => None,
        }
    }
}

/// What the simulator needs to know of a snapshot type.
trait Record: Clone + Serialize + DeserializeOwned + Send + 'static {
    const KIND: EntityKind;
    const PATCHABLE: Patchable;
    fn id(&self) -> NpdId;
    fn set_meta(&mut self, id: NpdId, version: i64, updated_at: OffsetDateTime);
    fn table(store: &mut Store) -> &mut HashMap<NpdId, Self>;

    /// A record with nothing but its id: every other field as NPD's record shape defaults it
    /// (sync enabled, the rest empty), version 0.
    fn blank(id: NpdId) -> Self {
        serde_json::from_value(json!({ "id": id, "version": 0 }))
            .expect("every field but id and version has a default")
    }
}

/// Implements `Record` for a snapshot type (both have `id`, `version` and `updated_at`), kept in
/// `Store::$table`.
macro_rules! record {
    ($snapshot:ty, $kind:expr, $table:ident, $patchable:expr) => {
        impl Record for $snapshot {
            const KIND: EntityKind = $kind;
            const PATCHABLE: Patchable = $patchable;

            fn id(&self) -> NpdId {
                self.id
            }

            fn set_meta(&mut self, id: NpdId, version: i64, updated_at: OffsetDateTime) {
                self.id = id;
                self.version = version;
                self.updated_at = Some(updated_at);
            }

            fn table(store: &mut Store) -> &mut HashMap<NpdId, Self> {
                &mut store.$table
            }
        }
    };
}

record!(
    ContactSnapshot,
    EntityKind::Contact,
    contacts,
    Patchable {
        text: &[
            "first_name",
            "last_name",
            "email",
            "phone",
            "role_title",
            "notes"
        ],
        uuids: &["organization_id"],
    }
);
record!(
    OrganizationSnapshot,
    EntityKind::Organization,
    organizations,
    Patchable {
        text: &["name", "website", "industry", "notes"],
        uuids: &[],
    }
);

/// A record as JSON (the event `data` and API answer shape).
fn record_json<R: Record>(record: &R) -> Value {
    serde_json::to_value(record).unwrap_or_else(|_| json!({"id": record.id().to_string()}))
}

// ---------------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------------

impl Store {
    /// The next `updated_at`: now at millisecond precision, strictly after the previous one.
    fn next_instant(&mut self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        let now = now.replace_millisecond(now.millisecond()).unwrap_or(now);
        let at = match self.last_updated_at {
            Some(last) if now <= last => last + time::Duration::milliseconds(1),
            _ => now,
        };
        self.last_updated_at = Some(at);
        at
    }

    fn next_version(&mut self, kind: EntityKind, id: NpdId) -> i64 {
        let version = self.versions.get(&(kind, id)).copied().unwrap_or(0) + 1;
        self.versions.insert((kind, id), version);
        version
    }

    /// Stores `record` as the new state of `id` with the next version and `updated_at`.
    fn commit<R: Record>(&mut self, id: NpdId, mut record: R) -> R {
        let version = self.next_version(R::KIND, id);
        let at = self.next_instant();
        record.set_meta(id, version, at);
        R::table(self).insert(id, record.clone());
        record
    }

    /// Appends an event to the log (status `None` until delivered), counted as pending in
    /// `deliveries` until the returned event is delivered or dropped.
    fn log_event(
        &mut self,
        deliveries: &DeliveryTracker,
        kind: EntityKind,
        action: Action,
        data: Value,
    ) -> PendingEvent {
        let webhook_id = format!("evt_{}", Uuid::new_v4().simple());
        let timestamp = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let body = json!({
            "type": format!("{}.{}", kind.as_str(), action.as_str()),
            "timestamp": timestamp,
            "data": data,
        });
        self.events.push(EmittedEvent {
            webhook_id: webhook_id.clone(),
            body: body.clone(),
            status: None,
        });
        PendingEvent {
            index: self.events.len() - 1,
            webhook_id,
            body,
            _delivery: deliveries.queue(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The public handle
// ---------------------------------------------------------------------------------------------

/// An NPD user's create, edit and delete of one record kind, each emitting its event: the same
/// three methods for contacts and organizations.
macro_rules! user_edits {
    ($snapshot:ty, $kind:literal, $a_kind:literal, $create:ident, $update:ident, $delete:ident) => {
        #[doc = concat!("An NPD user creates ", $a_kind, " (with its id); emits `", $kind, ".created`.")]
        pub async fn $create(&self, record: $snapshot) -> EmittedEvent {
            let id = record.id;
            self.user_write(id, Action::Created, |stored: &mut $snapshot| *stored = record)
                .await
        }

        #[doc = concat!("An NPD user edits ", $a_kind, "; emits `", $kind, ".updated`. An unknown id")]
        #[doc = "starts from a blank record (sync enabled, every field empty)."]
        pub async fn $update(&self, id: NpdId, change: impl FnOnce(&mut $snapshot)) -> EmittedEvent {
            self.user_write(id, Action::Updated, change).await
        }

        #[doc = concat!("An NPD user deletes ", $a_kind, "; emits `", $kind, ".deleted` with")]
        #[doc = "`{\"id\", \"version\"}`."]
        pub async fn $delete(&self, id: NpdId) -> EmittedEvent {
            self.user_delete::<$snapshot>(id).await
        }
    };
}

impl NpdSim {
    /// Binds `127.0.0.1:0` and serves until the last clone is dropped. Errors if the webhook
    /// secret is not a valid `whsec_...` secret or the port cannot be bound.
    pub async fn start(config: NpdSimConfig) -> std::io::Result<NpdSim> {
        let secret = WebhookSecret::parse(&config.webhook_secret).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("NPD simulator: {e}"),
            )
        })?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(EVENT_ATTEMPT_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            api_token: config.api_token,
            secret,
            http,
            faults: Arc::new(Faults {
                fail: Mutex::new((0, 500)),
                delay: Mutex::new(Duration::ZERO),
                emit_on_patch: AtomicBool::new(true),
            }),
            next_call: AtomicU64::new(0),
            store: Mutex::new(Store::default()),
            deliveries: DeliveryTracker::new(),
            calls_seen: watch::Sender::new(0),
        });
        let app = Router::new()
            .fallback(serve_api)
            .with_state(Arc::clone(&inner));
        let (shutdown, shut_down) = oneshot::channel::<()>();
        let (serving, stopped) = watch::channel(());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // Resolves when the sender is dropped, i.e. the last `NpdSim` clone is gone.
                    let _ = shut_down.await;
                })
                .await;
            drop(serving);
        });
        Ok(NpdSim {
            inner,
            addr,
            _shutdown: Arc::new(shutdown),
            stopped,
        })
    }

    /// `http://127.0.0.1:PORT`, the `NPD_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where change events are POSTed (the gateway's `/api/v1/npd/events` URL); `None` stops
    /// delivering (events are still logged in `events()`, with status `None`).
    pub fn set_event_target(&self, url: Option<String>) {
        self.inner.store().event_target = url;
    }

    /// Every API request so far, in arrival order (failed ones included).
    pub fn calls(&self) -> Vec<NpdCall> {
        self.inner
            .store()
            .calls
            .iter()
            .map(|(_, call)| call.clone())
            .collect()
    }

    pub fn clear_calls(&self) {
        self.inner.store().calls.clear();
    }

    /// Waits until a call matching `matches` was received (it may already have been), and returns
    /// it; None after `within`. A call is logged as it arrives, before it is answered.
    pub async fn wait_for_call(
        &self,
        within: Duration,
        matches: impl Fn(&NpdCall) -> bool,
    ) -> Option<NpdCall> {
        super::wait_for_logged(&self.inner.calls_seen, within, || {
            let store = self.inner.store();
            store
                .calls
                .iter()
                .find(|(_, c)| matches(c))
                .map(|(_, c)| c.clone())
        })
        .await
    }

    /// The events logged so far and how many of them are not delivered (or given up on) yet.
    pub fn event_deliveries(&self) -> Deliveries {
        self.inner.deliveries.get()
    }

    /// Waits until every logged event was delivered or given up on; false after `within`. A
    /// change logs its event before it returns (an API write: before it is answered), so once this
    /// is true no event of anything done before is still to come.
    pub async fn events_delivered(&self, within: Duration) -> bool {
        self.inner.deliveries.wait_idle(within).await
    }

    /// Resolves once the server has stopped serving (after the last clone is dropped); holding it
    /// does not keep the server alive.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopped = self.stopped.clone();
        async move {
            // The sender is dropped when the server task ends.
            while stopped.changed().await.is_ok() {}
        }
    }

    /// Every event emitted so far, in emission order, with the gateway's last answer.
    pub fn events(&self) -> Vec<EmittedEvent> {
        self.inner.store().events.clone()
    }

    pub fn contact(&self, id: NpdId) -> Option<ContactSnapshot> {
        self.inner.store().contacts.get(&id).cloned()
    }

    pub fn organization(&self, id: NpdId) -> Option<OrganizationSnapshot> {
        self.inner.store().organizations.get(&id).cloned()
    }

    user_edits!(
        ContactSnapshot,
        "contact",
        "a contact",
        create_contact,
        update_contact,
        delete_contact
    );
    user_edits!(
        OrganizationSnapshot,
        "organization",
        "an organization",
        create_organization,
        update_organization,
        delete_organization
    );

    /// Defines NPD custom fields (strings, numbers, booleans, lists of strings, or null): writes
    /// may set them, like the contract's fields.
    pub fn define_custom_fields(&self, names: &[&str]) {
        let mut store = self.inner.store();
        store
            .custom_fields
            .extend(names.iter().map(|n| (*n).to_owned()));
    }

    /// Stores `contact` as given (version and `updated_at` untouched) without emitting: a record
    /// that exists in NPD but whose event never reached the gateway.
    pub fn insert_contact(&self, contact: ContactSnapshot) {
        let mut store = self.inner.store();
        let key = (EntityKind::Contact, contact.id);
        let version = store.versions.get(&key).copied().unwrap_or(0);
        store.versions.insert(key, version.max(contact.version));
        store.contacts.insert(contact.id, contact);
    }

    /// Stores `organization` as given without emitting (see `insert_contact`).
    pub fn insert_organization(&self, organization: OrganizationSnapshot) {
        let mut store = self.inner.store();
        let key = (EntityKind::Organization, organization.id);
        let version = store.versions.get(&key).copied().unwrap_or(0);
        store
            .versions
            .insert(key, version.max(organization.version));
        store.organizations.insert(organization.id, organization);
    }

    /// Removes a record without emitting: a delete whose event never reached the gateway.
    /// Returns whether it existed.
    pub fn remove_silently(&self, kind: EntityKind, id: NpdId) -> bool {
        let mut store = self.inner.store();
        match kind {
            EntityKind::Contact => store.contacts.remove(&id).is_some(),
            EntityKind::Organization => store.organizations.remove(&id).is_some(),
        }
    }

    /// Posts `body` once as an event with this `webhook-id`, signed now; returns the gateway's
    /// status (`None` without a target or when the request failed). Not logged in `events()`.
    pub async fn send_event(&self, webhook_id: &str, body: &Value) -> Option<u16> {
        let target = self.inner.store().event_target.clone()?;
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.inner.post_event(&target, webhook_id, &bytes).await
    }

    pub fn faults(&self) -> NpdFaults {
        NpdFaults {
            faults: Arc::clone(&self.inner.faults),
        }
    }

    async fn user_write<R: Record>(
        &self,
        id: NpdId,
        action: Action,
        change: impl FnOnce(&mut R),
    ) -> EmittedEvent {
        let pending = {
            let mut store = self.inner.store();
            let mut record = R::table(&mut store)
                .get(&id)
                .cloned()
                .unwrap_or_else(|| R::blank(id));
            change(&mut record);
            let record = store.commit(id, record);
            store.log_event(
                &self.inner.deliveries,
                R::KIND,
                action,
                record_json(&record),
            )
        };
        self.inner.deliver(pending).await
    }

    async fn user_delete<R: Record>(&self, id: NpdId) -> EmittedEvent {
        let pending = {
            let mut store = self.inner.store();
            R::table(&mut store).remove(&id);
            let version = store.next_version(R::KIND, id);
            store.next_instant();
            store.log_event(
                &self.inner.deliveries,
                R::KIND,
                Action::Deleted,
                json!({"id": id.to_string(), "version": version}),
            )
        };
        self.inner.deliver(pending).await
    }
}

impl NpdFaults {
    /// The next `n` API requests are answered `status` (problem+json; 429 and 503 carry
    /// `Retry-After: 1`), before authentication and routing. `n = 0` turns it off.
    pub fn fail_next(&self, n: usize, status: u16) {
        *lock(&self.faults.fail) = (n, status);
    }

    /// Every API answer is delayed by `d` (after the request took effect); zero turns it off.
    pub fn delay(&self, d: Duration) {
        *lock(&self.faults.delay) = d;
    }

    /// Whether a PATCH emits `<kind>.updated` (the echo of the gateway's own write). Default on.
    pub fn set_emit_on_patch(&self, on: bool) {
        self.faults.emit_on_patch.store(on, Ordering::SeqCst);
    }
}

impl Faults {
    fn take_failure(&self) -> Option<u16> {
        let mut fail = lock(&self.fail);
        if fail.0 == 0 {
            return None;
        }
        fail.0 -= 1;
        Some(fail.1)
    }
}

/// Locks, ignoring poisoning: the simulator's state stays usable after a panicking test thread.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Event delivery
// ---------------------------------------------------------------------------------------------

impl Inner {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Delivers a logged event: up to 1 + `EVENT_RETRIES` attempts until a 2xx, each re-signed
    /// with the same `webhook-id`. Returns the event with the last attempt's status.
    async fn deliver(&self, pending: PendingEvent) -> EmittedEvent {
        let bytes = serde_json::to_vec(&pending.body).unwrap_or_default();
        for attempt in 0..=EVENT_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(EVENT_RETRY_PAUSE).await;
            }
            let Some(target) = self.store().event_target.clone() else {
                break;
            };
            let status = self.post_event(&target, &pending.webhook_id, &bytes).await;
            if let Some(event) = self.store().events.get_mut(pending.index) {
                event.status = status;
            }
            if status.is_some_and(|s| (200..300).contains(&s)) {
                break;
            }
        }
        let status = self
            .store()
            .events
            .get(pending.index)
            .and_then(|event| event.status);
        EmittedEvent {
            webhook_id: pending.webhook_id,
            body: pending.body,
            status,
        }
    }

    /// One signed attempt; the gateway's status, or `None` when the request failed.
    async fn post_event(&self, target: &str, webhook_id: &str, body: &[u8]) -> Option<u16> {
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = sign(&self.secret, webhook_id, timestamp, body);
        let response = self
            .http
            .post(target)
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    }

    /// Delivers in the background, so an API answer is not held up by the gateway.
    fn deliver_later(self: &Arc<Self>, pending: PendingEvent) {
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            inner.deliver(pending).await;
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The REST API
// ---------------------------------------------------------------------------------------------

/// An API answer before it becomes a response (kept for idempotent replays).
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    body: Value,
    problem: bool,
    headers: Vec<(HeaderName, String)>,
}

impl Answer {
    fn json(status: StatusCode, body: Value) -> Answer {
        Answer {
            status,
            body,
            problem: false,
            headers: Vec::new(),
        }
    }

    fn problem(status: StatusCode, detail: impl Into<String>) -> Answer {
        let body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail.into(),
        });
        Answer {
            status,
            body,
            problem: true,
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        if self.problem {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

/// The one handler: logs the call, answers it, then applies the delay fault.
async fn serve_api(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seq = inner.log_call(&method, &uri, &headers, &body);
    let answer = inner.answer(&method, &uri, &headers, &body);
    if let Some((_, call)) = inner.store().calls.iter_mut().find(|(s, _)| *s == seq) {
        call.status = answer.status.as_u16();
    }
    let delay = *lock(&inner.faults.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    answer.into_response()
}

impl Inner {
    fn log_call(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> u64 {
        let seq = self.next_call.fetch_add(1, Ordering::SeqCst);
        let mut names = BTreeMap::<String, String>::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            names
                .entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let body = (!body.is_empty()).then(|| {
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
        });
        let call = NpdCall {
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            headers: names,
            body,
            status: 0,
        };
        self.store().calls.push((seq, call));
        self.calls_seen.send_modify(|n| *n += 1);
        seq
    }

    /// Faults, then authentication, then routing.
    fn answer(
        self: &Arc<Self>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Answer {
        let path = uri.path();
        if let Some(status) = self.faults.take_failure() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let answer = Answer::problem(status, "simulated failure");
            return if matches!(status.as_u16(), 429 | 503) {
                answer.with_header(header::RETRY_AFTER, "1")
            } else {
                answer
            };
        }
        if let Some(token) = &self.api_token
            && !bearer_matches(headers, token)
        {
            return Answer::problem(StatusCode::UNAUTHORIZED, "missing or invalid bearer token")
                .with_header(header::WWW_AUTHENTICATE, "Bearer");
        }
        let segments: Vec<&str> = match path.strip_prefix("/api/v1/") {
            Some(rest) => rest.split('/').collect(),
            None => Vec::new(),
        };
        match (segments.as_slice(), method) {
            (["contacts"], &Method::POST) => self.create_by_api(path, headers, body),
            (["contacts"], &Method::GET) => self.list::<ContactSnapshot>(uri.query()),
            (["contacts"], _) => method_not_allowed("GET, POST"),
            (["organizations"], &Method::GET) => self.list::<OrganizationSnapshot>(uri.query()),
            (["organizations"], _) => method_not_allowed("GET"),
            (["contacts", id], _) => {
                self.record_endpoint::<ContactSnapshot>(method, path, id, headers, body)
            }
            (["organizations", id], _) => {
                self.record_endpoint::<OrganizationSnapshot>(method, path, id, headers, body)
            }
            _ => Answer::problem(StatusCode::NOT_FOUND, "no such resource"),
        }
    }

    /// `GET /api/v1/{contacts|organizations}?limit=N&cursor=C`: records in id order after the
    /// cursor's id (keyset paging, so records created or deleted meanwhile never shift a page).
    fn list<R: Record>(&self, query: Option<&str>) -> Answer {
        let (limit, after) = match list_query(query) {
            Ok(parsed) => parsed,
            Err(detail) => return Answer::problem(StatusCode::BAD_REQUEST, detail),
        };
        let mut store = self.store();
        let mut ids: Vec<NpdId> = R::table(&mut store)
            .keys()
            .copied()
            .filter(|id| after.is_none_or(|after| *id > after))
            .collect();
        ids.sort_unstable();
        let more = ids.len() > limit;
        ids.truncate(limit);
        let table = R::table(&mut store);
        let items: Vec<Value> = ids
            .iter()
            .filter_map(|id| table.get(id).map(record_json))
            .collect();
        let next_cursor = match (more, ids.last()) {
            (true, Some(last)) => Value::String(list_cursor(*last)),
            _ => Value::Null,
        };
        Answer::json(
            StatusCode::OK,
            json!({ "items": items, "next_cursor": next_cursor }),
        )
    }

    fn record_endpoint<R: Record>(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        id: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Answer {
        let Ok(id) = NpdId::parse(id) else {
            return Answer::problem(
                StatusCode::BAD_REQUEST,
                "the id in the path is not a valid UUID",
            );
        };
        match *method {
            Method::GET => match R::table(&mut self.store()).get(&id) {
                Some(record) => Answer::json(StatusCode::OK, record_json(record)),
                None => not_found::<R>(id),
            },
            Method::PATCH => self.patch_by_api::<R>(path, id, headers, body),
            _ => method_not_allowed("GET, PATCH"),
        }
    }

    fn patch_by_api<R: Record>(
        self: &Arc<Self>,
        path: &str,
        id: NpdId,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Answer {
        let custom = self.store().custom_fields.clone();
        let (fields, key) = match parse_write::<R>(headers, body, &custom) {
            Ok(parsed) => parsed,
            Err(answer) => return answer,
        };
        let request = (
            Method::PATCH,
            path.to_owned(),
            Value::Object(fields.clone()),
        );
        let mut store = self.store();
        if let Some(replay) = replay(&store, key.as_deref(), &request) {
            return replay;
        }
        let Some(current) = R::table(&mut store).get(&id).cloned() else {
            return not_found::<R>(id);
        };
        let Some(changed) = overlay(&current, &fields) else {
            return Answer::problem(StatusCode::BAD_REQUEST, "the fields do not fit the record");
        };
        let record = store.commit(id, changed);
        let answer = Answer::json(StatusCode::OK, record_json(&record));
        remember(&mut store, key, request, &answer);
        if self.faults.emit_on_patch.load(Ordering::SeqCst) {
            let pending = store.log_event(
                &self.deliveries,
                R::KIND,
                Action::Updated,
                record_json(&record),
            );
            drop(store);
            self.deliver_later(pending);
        }
        answer
    }

    fn create_by_api(self: &Arc<Self>, path: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
        let custom = self.store().custom_fields.clone();
        let (fields, key) = match parse_write::<ContactSnapshot>(headers, body, &custom) {
            Ok(parsed) => parsed,
            Err(answer) => return answer,
        };
        let request = (Method::POST, path.to_owned(), Value::Object(fields.clone()));
        let mut store = self.store();
        if let Some(replay) = replay(&store, key.as_deref(), &request) {
            return replay;
        }
        let id = NpdId(Uuid::new_v4());
        let Some(record) = overlay(&ContactSnapshot::blank(id), &fields) else {
            return Answer::problem(StatusCode::BAD_REQUEST, "the fields do not fit the record");
        };
        let record = store.commit(id, record);
        let answer = Answer::json(StatusCode::CREATED, record_json(&record));
        remember(&mut store, key, request, &answer);
        let pending = store.log_event(
            &self.deliveries,
            EntityKind::Contact,
            Action::Created,
            record_json(&record),
        );
        drop(store);
        self.deliver_later(pending);
        answer
    }
}

/// `Authorization: Bearer <token>`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let scheme = b"bearer ";
    if value.len() < scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return false;
    }
    constant_time_eq(&value[scheme.len()..], token.as_bytes())
}

fn not_found<R: Record>(id: NpdId) -> Answer {
    Answer::problem(
        StatusCode::NOT_FOUND,
        format!("{} {id} not found", R::KIND.as_str()),
    )
}

fn method_not_allowed(allow: &'static str) -> Answer {
    Answer::problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        .with_header(header::ALLOW, allow)
}

/// The opaque cursor of a list page that ended at `last`.
fn list_cursor(last: NpdId) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{last}"))
}

/// `limit` (1..=500, default 100) and the id a `cursor` continues after; the error is a
/// problem's detail.
fn list_query(query: Option<&str>) -> Result<(usize, Option<NpdId>), String> {
    use base64::Engine;
    let mut limit = 100;
    let mut after = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => limit = n,
                _ => return Err("`limit` must be a number from 1 to 500".into()),
            },
            "cursor" => {
                let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(value)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .and_then(|text| NpdId::parse(text.strip_prefix("after:")?).ok());
                match id {
                    Some(id) => after = Some(id),
                    None => return Err("`cursor` is not a cursor this API gave".into()),
                }
            }
            _ => {}
        }
    }
    Ok((limit, after))
}

/// Checks a write's headers and body: JSON content type, a JSON object of patchable fields with
/// the right types, and a well-formed `Idempotency-Key` if any.
fn parse_write<R: Record>(
    headers: &HeaderMap,
    body: &[u8],
    custom: &std::collections::BTreeSet<String>,
) -> Result<(Map<String, Value>, Option<String>), Answer> {
    let json_content = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_content {
        return Err(Answer::problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be sent as application/json",
        ));
    }
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN => {
                Some(key.to_owned())
            }
            _ => {
                return Err(Answer::problem(
                    StatusCode::BAD_REQUEST,
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                ));
            }
        },
    };
    let fields = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => {
            return Err(Answer::problem(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object",
            ));
        }
        Err(_) => {
            return Err(Answer::problem(
                StatusCode::BAD_REQUEST,
                "the body is not valid JSON",
            ));
        }
    };
    for (name, value) in &fields {
        let field_type = R::PATCHABLE
            .field_type(name)
            .or_else(|| custom.contains(name).then_some(FieldType::Custom));
        let Some(field_type) = field_type else {
            return Err(Answer::problem(
                StatusCode::BAD_REQUEST,
                format!(
                    "field `{}`: unknown or read-only {} field",
                    field_label(name),
                    R::KIND
                ),
            ));
        };
        if !field_type.accepts(value) {
            return Err(Answer::problem(
                StatusCode::BAD_REQUEST,
                format!(
                    "field `{name}`: has the wrong type, expected {}",
                    field_type.expected()
                ),
            ));
        }
    }
    Ok((fields, key))
}

/// A field name fit to quote in a problem: plain identifiers only, anything else is `?`.
fn field_label(name: &str) -> &str {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain { name } else { "?" }
}

/// `record` with `fields` written over it; `None` if the result is not a valid record.
fn overlay<R: Record>(record: &R, fields: &Map<String, Value>) -> Option<R> {
    let mut value = serde_json::to_value(record).ok()?;
    let object = value.as_object_mut()?;
    for (name, field) in fields {
        object.insert(name.clone(), field.clone());
    }
    serde_json::from_value(value).ok()
}

/// The stored answer for a repeated `Idempotency-Key`; 422 if the key was used for another request.
fn replay(store: &Store, key: Option<&str>, request: &(Method, String, Value)) -> Option<Answer> {
    let stored = store.idempotency.get(key?)?;
    if stored.request == *request {
        Some(
            stored
                .answer
                .clone()
                .with_header(HeaderName::from_static("idempotent-replayed"), "true"),
        )
    } else {
        Some(Answer::problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this Idempotency-Key was already used for a different request",
        ))
    }
}

fn remember(
    store: &mut Store,
    key: Option<String>,
    request: (Method, String, Value),
    answer: &Answer,
) {
    if let Some(key) = key {
        store.idempotency.insert(
            key,
            StoredAnswer {
                request,
                answer: answer.clone(),
            },
        );
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Tests of the simulator, and the signed-event receiver the NPD client tests reuse.

    use std::collections::VecDeque;

    use axum::routing::post;

    use super::*;
    use crate::auth::standard_webhooks::{SignedHeaders, Verifier};

    pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    pub(crate) const TOKEN: &str = "npd-sim-token-3c9a7e";
    const RECEIVER_PATH: &str = "/api/v1/npd/events";

    /// One event delivery as the receiver saw it.
    #[derive(Debug, Clone)]
    pub(crate) struct Received {
        pub webhook_id: String,
        pub body: Value,
        pub verified: bool,
    }

    /// A stand-in for the gateway's event endpoint: verifies signatures, records every delivery
    /// and answers from a script (then 202).
    #[derive(Clone)]
    pub(crate) struct Receiver {
        url: String,
        received: Arc<Mutex<Vec<Received>>>,
        /// How many deliveries arrived: wakes `wait_for`.
        arrived: Arc<watch::Sender<usize>>,
        _shutdown: Arc<oneshot::Sender<()>>,
    }

    #[derive(Clone)]
    struct ReceiverState {
        verifier: Verifier,
        received: Arc<Mutex<Vec<Received>>>,
        arrived: Arc<watch::Sender<usize>>,
        script: Arc<Mutex<VecDeque<u16>>>,
    }

    impl Receiver {
        pub(crate) async fn start(script: &[u16]) -> Receiver {
            let secret = WebhookSecret::parse(SECRET).expect("test secret parses");
            let received = Arc::new(Mutex::new(Vec::new()));
            let script = Arc::new(Mutex::new(
                script.iter().copied().collect::<VecDeque<u16>>(),
            ));
            let arrived = Arc::new(watch::Sender::new(0));
            let state = ReceiverState {
                verifier: Verifier::new(vec![secret], 300),
                received: Arc::clone(&received),
                arrived: Arc::clone(&arrived),
                script,
            };
            let app = Router::new()
                .route(RECEIVER_PATH, post(receive))
                .with_state(state);
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bind the receiver");
            let addr = listener.local_addr().expect("receiver address");
            let (shutdown, stopped) = oneshot::channel::<()>();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
            Receiver {
                url: format!("http://{addr}{RECEIVER_PATH}"),
                received,
                arrived,
                _shutdown: Arc::new(shutdown),
            }
        }

        pub(crate) fn url(&self) -> String {
            self.url.clone()
        }

        pub(crate) fn received(&self) -> Vec<Received> {
            lock(&self.received).clone()
        }

        /// Waits (up to 5 s) until at least `n` deliveries arrived.
        pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
            let mut arrived = self.arrived.subscribe();
            let enough = arrived.wait_for(|count| *count >= n);
            if !matches!(
                tokio::time::timeout(Duration::from_secs(5), enough).await,
                Ok(Ok(_))
            ) {
                panic!("expected {n} deliveries, got {:?}", self.received());
            }
            self.received()
        }
    }

    async fn receive(
        State(state): State<ReceiverState>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let signed = SignedHeaders {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
        };
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let verified = state.verifier.verify(signed, &body, now).is_ok()
            && header("content-type") == Some("application/json");
        let count = {
            let mut received = lock(&state.received);
            received.push(Received {
                webhook_id: signed.id.unwrap_or_default().to_owned(),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                verified,
            });
            received.len()
        };
        state.arrived.send_replace(count);
        if !verified {
            return StatusCode::UNAUTHORIZED;
        }
        let status = lock(&state.script).pop_front().unwrap_or(202);
        StatusCode::from_u16(status).expect("scripted status is valid")
    }

    pub(crate) fn config() -> NpdSimConfig {
        NpdSimConfig {
            api_token: Some(TOKEN.to_owned()),
            webhook_secret: SECRET.to_owned(),
        }
    }

    /// A simulator whose events go to a receiver answering `script` first.
    pub(crate) async fn sim_with_receiver(script: &[u16]) -> (NpdSim, Receiver) {
        let sim = NpdSim::start(config()).await.expect("start the simulator");
        let receiver = Receiver::start(script).await;
        sim.set_event_target(Some(receiver.url()));
        (sim, receiver)
    }

    /// Ada, created by an NPD user (so `contact.created` is emitted); her id.
    pub(crate) async fn create_ada(sim: &NpdSim) -> NpdId {
        let ada = contact("Ada");
        let id = ada.id;
        sim.create_contact(ada).await;
        id
    }

    /// Ada, stored without an event (a record the gateway never heard of); her id.
    pub(crate) fn insert_ada(sim: &NpdSim) -> NpdId {
        let ada = contact("Ada");
        let id = ada.id;
        sim.insert_contact(ada);
        id
    }

    pub(crate) fn contact(first_name: &str) -> ContactSnapshot {
        ContactSnapshot {
            first_name: Some(first_name.to_owned()),
            last_name: Some("Lovelace".to_owned()),
            email: Some("ada@example.com".to_owned()),
            ..ContactSnapshot::blank(NpdId(Uuid::new_v4()))
        }
    }

    pub(crate) fn organization(name: &str) -> OrganizationSnapshot {
        OrganizationSnapshot {
            name: Some(name.to_owned()),
            website: Some("https://example.com".to_owned()),
            ..OrganizationSnapshot::blank(NpdId(Uuid::new_v4()))
        }
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("test client")
    }

    /// Sends a request with the right token; returns status, headers and JSON body.
    async fn call(
        sim: &NpdSim,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> (u16, HeaderMap, Value) {
        let mut request = http()
            .request(method, format!("{}{path}", sim.url()))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the simulator answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// `GET /api/v1/contacts/{id}` with the right token.
    async fn get_contact(sim: &NpdSim, id: NpdId) -> (u16, HeaderMap, Value) {
        let path = format!("/api/v1/contacts/{id}");
        call(sim, Method::GET, &path, None, &[]).await
    }

    /// The `type` of each received event, in order.
    fn event_types(received: &[Received]) -> Vec<&str> {
        received
            .iter()
            .map(|r| r.body["type"].as_str().unwrap_or_default())
            .collect()
    }

    fn updated_at(body: &Value) -> OffsetDateTime {
        let text = body["data"]["updated_at"].as_str().expect("updated_at");
        OffsetDateTime::parse(text, &Rfc3339).expect("RFC 3339")
    }

    #[tokio::test]
    async fn creating_updating_and_deleting_a_contact_emit_signed_events_with_increasing_versions()
    {
        // Arrange
        let (sim, receiver) = sim_with_receiver(&[]).await;
        let ada = contact("Ada");
        let id = ada.id;

        // Act
        let created = sim.create_contact(ada).await;
        let updated = sim
            .update_contact(id, |c| c.phone = Some("+442079460990".to_owned()))
            .await;
        let deleted = sim.delete_contact(id).await;

        // Assert
        let received = receiver.received();
        assert_eq!(received.len(), 3, "{received:?}");
        assert!(received.iter().all(|r| r.verified), "{received:?}");
        let emitted = [&created, &updated, &deleted];
        for (event, got) in emitted.iter().zip(&received) {
            assert_eq!(event.status, Some(202));
            assert_eq!(got.webhook_id, event.webhook_id);
            assert_eq!(got.body, event.body);
            assert!(got.webhook_id.starts_with("evt_") && got.webhook_id.len() == 36);
            let timestamp = got.body["timestamp"].as_str().expect("timestamp");
            OffsetDateTime::parse(timestamp, &Rfc3339).expect("RFC 3339 timestamp");
        }
        let types = event_types(&received);
        assert_eq!(
            types,
            ["contact.created", "contact.updated", "contact.deleted"]
        );
        let versions: Vec<i64> = received
            .iter()
            .map(|r| r.body["data"]["version"].as_i64().expect("version"))
            .collect();
        assert_eq!(versions, [1, 2, 3]);
        assert!(updated_at(&updated.body) > updated_at(&created.body));
        assert_eq!(updated.body["data"]["first_name"], "Ada");
        assert_eq!(updated.body["data"]["phone"], "+442079460990");
        assert_eq!(
            deleted.body["data"],
            json!({"id": id.to_string(), "version": 3})
        );
        assert!(sim.contact(id).is_none());
        let events = sim.events();
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.status == Some(202)));
        let parsed = crate::domain::event::NpdEvent::parse(
            &serde_json::to_vec(&updated.body).expect("serialize"),
        )
        .expect("the gateway's parser accepts the event");
        assert_eq!(
            parsed.event_type,
            crate::domain::event::NpdEventType::ContactUpdated
        );
    }

    #[tokio::test]
    async fn organizations_have_their_own_events_and_versions_survive_a_delete() {
        let (sim, receiver) = sim_with_receiver(&[]).await;
        let acme = organization("Acme");
        let id = acme.id;

        sim.create_organization(acme).await;
        sim.update_organization(id, |o| o.industry = Some("Rockets".to_owned()))
            .await;
        sim.delete_organization(id).await;
        let again = sim.create_organization(OrganizationSnapshot {
            name: Some("Acme again".to_owned()),
            ..OrganizationSnapshot::blank(id)
        });
        let again = again.await;

        let received = receiver.received();
        let types = event_types(&received);
        assert_eq!(
            types,
            [
                "organization.created",
                "organization.updated",
                "organization.deleted",
                "organization.created"
            ]
        );
        assert_eq!(again.body["data"]["version"], 4);
        let stored = sim.organization(id).expect("re-created");
        assert_eq!(stored.version, 4);
        assert_eq!(stored.name.as_deref(), Some("Acme again"));
        assert!(sim.contact(id).is_none());
    }

    #[tokio::test]
    async fn updated_at_is_strictly_increasing_across_rapid_changes() {
        let sim = NpdSim::start(config()).await.expect("start");
        let ada = contact("Ada");
        let id = ada.id;
        let mut previous = sim.create_contact(ada).await;
        for n in 0..20 {
            let next = sim
                .update_contact(id, |c| c.notes = Some(format!("note {n}")))
                .await;
            assert!(updated_at(&next.body) > updated_at(&previous.body));
            assert_eq!(
                next.body["data"]["version"].as_i64(),
                previous.body["data"]["version"].as_i64().map(|v| v + 1)
            );
            previous = next;
        }
    }

    #[tokio::test]
    async fn a_patch_through_the_api_emits_an_updated_event_with_the_full_snapshot() {
        let (sim, receiver) = sim_with_receiver(&[]).await;
        let id = create_ada(&sim).await;

        let (status, _, body) = call(
            &sim,
            Method::PATCH,
            &format!("/api/v1/contacts/{id}"),
            Some(json!({"email": "ada@lovelace.org", "monday_id": "4100000001"})),
            &[("idempotency-key", "k-1"), ("x-sync-origin", "monday")],
        )
        .await;

        assert_eq!(status, 200, "{body}");
        assert_eq!(body["version"], 2);
        assert_eq!(body["email"], "ada@lovelace.org");
        assert_eq!(body["monday_id"], "4100000001");
        assert_eq!(body["first_name"], "Ada");
        let received = receiver.wait_for(2).await;
        let echo = &received[1];
        assert!(echo.verified);
        assert_eq!(echo.body["type"], "contact.updated");
        assert_eq!(echo.body["data"], body);
        let stored = sim.contact(id).expect("stored");
        assert_eq!(stored.email.as_deref(), Some("ada@lovelace.org"));
        assert_eq!(stored.monday_id.map(|m| m.0), Some(4_100_000_001));
    }

    #[tokio::test]
    async fn with_emit_on_patch_off_a_patch_changes_the_record_silently() {
        let (sim, receiver) = sim_with_receiver(&[]).await;
        let id = create_ada(&sim).await;
        sim.faults().set_emit_on_patch(false);

        let (status, _, _) = call(
            &sim,
            Method::PATCH,
            &format!("/api/v1/contacts/{id}"),
            Some(json!({"notes": "quiet"})),
            &[],
        )
        .await;

        assert_eq!(status, 200);
        assert!(sim.events_delivered(Duration::from_secs(5)).await);
        assert_eq!(receiver.received().len(), 1);
        assert_eq!(sim.events().len(), 1);
        assert_eq!(
            sim.contact(id).and_then(|c| c.notes).as_deref(),
            Some("quiet")
        );
    }

    #[tokio::test]
    async fn a_receiver_answering_500_twice_then_202_sees_the_same_webhook_id_three_times() {
        let (sim, receiver) = sim_with_receiver(&[500, 500]).await;

        let event = sim.create_contact(contact("Ada")).await;

        let received = receiver.received();
        assert_eq!(received.len(), 3, "{received:?}");
        assert!(received.iter().all(|r| r.verified));
        assert!(received.iter().all(|r| r.webhook_id == event.webhook_id));
        assert!(received.iter().all(|r| r.body == event.body));
        assert_eq!(event.status, Some(202));
        assert_eq!(sim.events()[0].status, Some(202));
    }

    #[tokio::test]
    async fn a_receiver_that_never_accepts_gets_one_attempt_and_five_retries() {
        let (sim, receiver) = sim_with_receiver(&[503; 10]).await;

        let event = sim.create_contact(contact("Ada")).await;

        assert_eq!(receiver.received().len(), 6);
        assert_eq!(event.status, Some(503));
    }

    #[tokio::test]
    async fn without_a_target_events_are_logged_but_not_sent() {
        let sim = NpdSim::start(config()).await.expect("start");

        let event = sim.create_contact(contact("Ada")).await;
        let status = sim.send_event("evt_manual", &event.body).await;

        assert_eq!(event.status, None);
        assert_eq!(status, None);
        assert_eq!(sim.events().len(), 1);
    }

    #[tokio::test]
    async fn send_event_posts_the_given_body_once_under_the_given_webhook_id() {
        let (sim, receiver) = sim_with_receiver(&[500]).await;
        let body: Value =
            serde_json::from_str(include_str!("../../fixtures/npd/contact.updated.json"))
                .expect("fixture");

        let first = sim.send_event("evt_replayed", &body).await;
        let second = sim.send_event("evt_replayed", &body).await;

        assert_eq!((first, second), (Some(500), Some(202)));
        let received = receiver.received();
        assert_eq!(received.len(), 2);
        assert!(
            received
                .iter()
                .all(|r| r.verified && r.webhook_id == "evt_replayed")
        );
        assert_eq!(received[0].body, body);
        assert!(sim.events().is_empty());
    }

    #[tokio::test]
    async fn insert_contact_stores_without_emitting_and_the_api_serves_it() {
        let (sim, receiver) = sim_with_receiver(&[]).await;
        let ada = ContactSnapshot {
            version: 7,
            ..contact("Ada")
        };
        let id = ada.id;

        sim.insert_contact(ada.clone());
        let (status, _, body) = get_contact(&sim, id).await;
        let next = sim
            .update_contact(id, |c| c.notes = Some("x".to_owned()))
            .await;

        assert_eq!(status, 200);
        assert_eq!(body, serde_json::to_value(&ada).expect("serialize"));
        assert_eq!(next.body["data"]["version"], 8);
        assert_eq!(receiver.received().len(), 1);
    }

    #[tokio::test]
    async fn post_creates_a_contact_with_a_new_id_and_emits_contact_created() {
        let (sim, receiver) = sim_with_receiver(&[]).await;

        // The same create twice under one key.
        let create = async || {
            let grace = json!({"first_name": "Grace", "sync_enabled": true});
            let key = [("idempotency-key", "create-1")];
            call(&sim, Method::POST, "/api/v1/contacts", Some(grace), &key).await
        };
        let (status, _, body) = create().await;
        let (again, headers, replay) = create().await;

        assert_eq!(status, 201, "{body}");
        let id = NpdId::parse(body["id"].as_str().expect("id")).expect("uuid");
        assert_eq!(body["version"], 1);
        assert_eq!(
            sim.contact(id).and_then(|c| c.first_name).as_deref(),
            Some("Grace")
        );
        assert_eq!((again, &replay), (201, &body));
        assert_eq!(
            headers.get("idempotent-replayed").map(|v| v.as_bytes()),
            Some(&b"true"[..])
        );
        assert!(sim.events_delivered(Duration::from_secs(5)).await);
        let received = receiver.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].body["type"], "contact.created");
        assert_eq!(received[0].body["data"], body);
    }

    #[tokio::test]
    async fn an_idempotency_key_reused_for_another_request_is_refused() {
        let sim = NpdSim::start(config()).await.expect("start");
        let id = insert_ada(&sim);
        let path = format!("/api/v1/contacts/{id}");

        // Two different patches under one key.
        let patch = async |notes: &str| {
            let key = [("idempotency-key", "k")];
            call(
                &sim,
                Method::PATCH,
                &path,
                Some(json!({ "notes": notes })),
                &key,
            )
            .await
        };
        let (first, _, _) = patch("a").await;
        let (second, _, problem) = patch("b").await;

        assert_eq!((first, second), (200, 422));
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("Idempotency-Key")
        );
        assert_eq!(sim.contact(id).and_then(|c| c.notes).as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn the_api_requires_the_bearer_token_and_logs_every_call_in_order() {
        let sim = NpdSim::start(config()).await.expect("start");
        let id = insert_ada(&sim);
        let url = format!("{}/api/v1/contacts/{id}", sim.url());

        let missing = http().get(&url).send().await.expect("answer");
        let wrong = http()
            .get(&url)
            .bearer_auth("npd-sim-token-3c9a7f")
            .send()
            .await
            .expect("answer");
        let lower = http()
            .get(&url)
            .header("authorization", format!("bearer {TOKEN}"))
            .send()
            .await
            .expect("answer");
        let (right, _, _) = get_contact(&sim, id).await;

        assert_eq!(missing.status().as_u16(), 401);
        assert_eq!(
            missing.headers().get("content-type").map(|v| v.as_bytes()),
            Some(PROBLEM_JSON.as_bytes())
        );
        assert_eq!(wrong.status().as_u16(), 401);
        assert_eq!(lower.status().as_u16(), 200);
        assert_eq!(right, 200);
        let calls = sim.calls();
        let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
        assert_eq!(statuses, [401, 401, 200, 200]);
        assert!(
            calls
                .iter()
                .all(|c| c.method == "GET" && c.path == format!("/api/v1/contacts/{id}"))
        );
        assert!(!calls[0].headers.contains_key("authorization"));
        assert_eq!(
            calls[3].headers.get("authorization"),
            Some(&format!("Bearer {TOKEN}"))
        );
        sim.clear_calls();
        assert!(sim.calls().is_empty());
    }

    #[tokio::test]
    async fn without_a_configured_token_any_caller_is_served() {
        let sim = NpdSim::start(NpdSimConfig {
            api_token: None,
            webhook_secret: SECRET.to_owned(),
        })
        .await
        .expect("start");
        let id = insert_ada(&sim);

        let response = http()
            .get(format!("{}/api/v1/contacts/{id}", sim.url()))
            .send()
            .await
            .expect("answer");

        assert_eq!(response.status().as_u16(), 200);
    }

    /// Method, path, body, expected status, text the problem's detail must contain.
    type BadRequestCase<'a> = (Method, &'a str, Option<Value>, u16, Option<&'a str>);

    #[tokio::test]
    async fn bad_requests_are_refused_with_problems_that_name_the_field() {
        let sim = NpdSim::start(config()).await.expect("start");
        let ada = contact("Ada");
        let id = ada.id;
        sim.insert_contact(ada.clone());
        let acme = organization("Acme");
        let org = acme.id;
        sim.create_organization(acme).await;
        let contact_path = format!("/api/v1/contacts/{id}");
        let org_path = format!("/api/v1/organizations/{org}");
        let unknown = format!("/api/v1/contacts/{}", Uuid::new_v4());
        let cases: Vec<BadRequestCase<'_>> = vec![
            (
                Method::GET,
                "/api/v1/contacts/not-a-uuid",
                None,
                400,
                Some("UUID"),
            ),
            (
                Method::PATCH,
                "/api/v1/organizations/12",
                Some(json!({})),
                400,
                Some("UUID"),
            ),
            (Method::GET, &unknown, None, 404, Some("not found")),
            (
                Method::PATCH,
                &unknown,
                Some(json!({"notes": "x"})),
                404,
                Some("not found"),
            ),
            (Method::GET, "/api/v1/people/1", None, 404, None),
            (Method::DELETE, &contact_path, None, 405, None),
            (Method::DELETE, "/api/v1/contacts", None, 405, None),
            (
                Method::GET,
                "/api/v1/contacts?limit=0",
                None,
                400,
                Some("`limit`"),
            ),
            (
                Method::GET,
                "/api/v1/contacts?limit=501",
                None,
                400,
                Some("`limit`"),
            ),
            (
                Method::GET,
                "/api/v1/organizations?cursor=zz",
                None,
                400,
                Some("`cursor`"),
            ),
            (
                Method::PATCH,
                &contact_path,
                Some(json!({"nickname": "A"})),
                400,
                Some("`nickname`"),
            ),
            (
                Method::PATCH,
                &contact_path,
                Some(json!({"version": 9})),
                400,
                Some("`version`"),
            ),
            (
                Method::PATCH,
                &contact_path,
                Some(json!({"email": 42})),
                400,
                Some("`email`"),
            ),
            (
                Method::PATCH,
                &contact_path,
                Some(json!({"organization_id": "x"})),
                400,
                Some("`organization_id`"),
            ),
            (
                Method::PATCH,
                &contact_path,
                Some(json!({"monday_id": "abc"})),
                400,
                Some("`monday_id`"),
            ),
            (
                Method::PATCH,
                &contact_path,
                Some(json!({"sync_enabled": null})),
                400,
                Some("`sync_enabled`"),
            ),
            (
                Method::PATCH,
                &contact_path,
                Some(json!(["email"])),
                400,
                Some("JSON object"),
            ),
            (
                Method::PATCH,
                &org_path,
                Some(json!({"first_name": "A"})),
                400,
                Some("`first_name`"),
            ),
            (
                Method::PATCH,
                &org_path,
                Some(json!({"website": ["a"]})),
                400,
                Some("`website`"),
            ),
            (
                Method::POST,
                "/api/v1/contacts",
                Some(json!({"id": id.to_string()})),
                400,
                Some("`id`"),
            ),
        ];
        for (method, path, body, expected, detail) in cases {
            let (status, headers, problem) = call(&sim, method.clone(), path, body, &[]).await;
            assert_eq!(status, expected, "{method} {path}: {problem}");
            assert_eq!(
                headers.get("content-type").map(|v| v.as_bytes()),
                Some(PROBLEM_JSON.as_bytes()),
                "{method} {path}"
            );
            assert_eq!(problem["status"], expected);
            if let Some(detail) = detail {
                let text = problem["detail"].as_str().unwrap_or_default();
                assert!(text.contains(detail), "{method} {path}: {text}");
            }
        }
        let no_json = http()
            .patch(format!("{}{contact_path}", sim.url()))
            .bearer_auth(TOKEN)
            .body(r#"{"notes": "x"}"#)
            .send()
            .await
            .expect("answer");
        assert_eq!(no_json.status().as_u16(), 415);
        assert_eq!(sim.contact(id), Some(ada));
        assert_eq!(sim.organization(org).map(|o| o.version), Some(1));
    }

    #[tokio::test]
    async fn fail_next_answers_the_given_status_then_recovers() {
        let sim = NpdSim::start(config()).await.expect("start");
        let id = insert_ada(&sim);
        let path = format!("/api/v1/contacts/{id}");
        sim.faults().fail_next(2, 429);

        let (first, headers, problem) = call(&sim, Method::GET, &path, None, &[]).await;
        let (second, _, _) = call(&sim, Method::GET, &path, None, &[]).await;
        let (third, _, _) = call(&sim, Method::GET, &path, None, &[]).await;

        assert_eq!((first, second, third), (429, 429, 200));
        assert_eq!(
            headers.get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert_eq!(problem["status"], 429);
        let statuses: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
        assert_eq!(statuses, [429, 429, 200]);
    }

    #[tokio::test]
    async fn dropping_the_last_clone_stops_the_server() {
        let sim = NpdSim::start(config()).await.expect("start");
        let url = format!("{}/api/v1/contacts/{}", sim.url(), Uuid::new_v4());
        let clone = sim.clone();
        drop(sim);
        let alive = http()
            .get(&url)
            .send()
            .await
            .expect("still served by the clone");
        assert_eq!(alive.status().as_u16(), 401);

        let stopped = clone.stopped();
        drop(clone);

        tokio::time::timeout(Duration::from_secs(5), stopped)
            .await
            .expect("the server stops once the last clone is dropped");
        assert!(
            http().get(&url).send().await.is_err(),
            "the simulator still answers after the last clone was dropped"
        );
    }

    #[tokio::test]
    async fn a_bad_webhook_secret_is_refused_at_start() {
        let result = NpdSim::start(NpdSimConfig {
            api_token: None,
            webhook_secret: "whsec_not*base64".to_owned(),
        })
        .await;
        let err = result.err().expect("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}
