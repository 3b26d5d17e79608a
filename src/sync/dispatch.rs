//! Dispatch: run one claimed outbox job against Monday or NPD and record its outcome.
//!
//! Owns: the three steps of a job, none of which holds a transaction across a remote call:
//! 1. prepare (one transaction, fenced by the lease token): on the first attempt, compute what to
//!    send from the field states and freeze it in the job, so every retry sends the same thing
//!    under the same idempotency key; record the values as pending before the call, so an echo
//!    arriving before step 3 is recognised;
//! 2. call the remote (Monday GraphQL or NPD REST) with the job's idempotency key;
//! 3. record (one transaction, fenced): success (remote ids, confirmed values, follow-up jobs),
//!    retry later (the one retry policy), or dead letter. A worker whose lease was taken over
//!    finds the fence closed and changes nothing.
//!
//! Creates are idempotent beyond Monday's 30-minute key window: before `create_item` the ledger
//! link and an `items_page_by_column_values` lookup on the npd_id column are checked, and the new
//! item id is committed (with the write-back job to NPD) in the same transaction as the job.
//! May import: std, serde_json, rand, tracing, crate::{config, domain, ledger, connectors, sync}.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::config::Settings;
use crate::connectors::budget::{Budget, Observed, Urgency};
use crate::connectors::monday::MondayClient;
use crate::connectors::npd::NpdClient;
use crate::connectors::{ConnectorError, FailureClass};
use crate::domain::entity::{BoardId, MondayItemId, NpdId};
use crate::domain::mapping::FieldValue;
use crate::domain::reconcile::{FieldState, Pending, Side, abandon, confirm, mark_sent};
use crate::ledger::entities::{self, EntityRow, status};
use crate::ledger::jobs::{self, JobRow};
use crate::ledger::tx::Tx;
use crate::ledger::{LedgerError, LedgerResult, Store, now_ms};
use crate::sync::outbox::{self, ADMIN_PRIORITY, Operation};
use crate::sync::process::{board_of, record};
use crate::sync::retry::{RetryPolicy, Verdict};

/// What a job sends, frozen at its first attempt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "work", rename_all = "snake_case")]
pub enum Work {
    /// Create or update the entity's item with these field values (`all`: every synced field).
    PushItem {
        values: BTreeMap<String, FieldValue>,
        all: bool,
    },
    ArchiveItem,
    /// PATCH these NPD fields.
    PatchNpd {
        values: BTreeMap<String, FieldValue>,
    },
    /// PATCH `monday_id`.
    WriteLink {
        monday_id: String,
    },
    /// POST a new contact with these fields.
    CreateNpdContact {
        values: BTreeMap<String, FieldValue>,
    },
    /// Nothing left to send (the values were already written by an earlier job).
    Nothing,
}

/// The dispatch use case: the clients, the policy and this worker's name.
#[derive(Clone)]
pub struct Dispatcher {
    settings: Arc<Settings>,
    store: Store,
    monday: Option<MondayClient>,
    npd: Option<NpdClient>,
    policy: RetryPolicy,
    budget: Arc<Budget>,
    worker: String,
}

/// Complexity points Monday counts for a query, a mutation and a create (the simulator's and
/// Monday's older guidance: create_item costs 10,000).
const QUERY_POINTS: u64 = 100;
const MUTATION_POINTS: u64 = 1_000;
const CREATE_POINTS: u64 = 10_000;

/// How one job ended, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Done,
    RetryLater(Duration),
    Dead(String),
    /// The lease was taken over: this worker's outcome was refused.
    Fenced,
}

impl Dispatcher {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        monday: Option<MondayClient>,
        npd: Option<NpdClient>,
        worker: String,
    ) -> Self {
        let policy = RetryPolicy::from(&settings.sync);
        let budget = Arc::new(Budget::new(
            settings.monday.requests_per_minute,
            settings.monday.complexity_per_minute,
        ));
        Dispatcher {
            settings,
            store,
            monday,
            npd,
            policy,
            budget,
            worker,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Claims up to `limit` jobs for this worker. Monday jobs are claimed only while the Monday
    /// budget has room (admin pushes only, when only the reserve is left), so a job never sits
    /// on its lease waiting for the budget.
    pub async fn claim(&self, limit: i64) -> LedgerResult<Vec<JobRow>> {
        let lease_ms = i64::try_from(self.settings.sync.lease_ms).unwrap_or(i64::MAX);
        // Room for a whole job: at most a lookup and a create.
        let monday_min_priority = match self.budget.room(2, QUERY_POINTS + CREATE_POINTS) {
            Some(Urgency::Routine) => i64::MIN,
            Some(Urgency::Admin) => ADMIN_PRIORITY,
            None => i64::MAX,
        };
        self.store
            .claim_jobs(&self.worker, lease_ms, limit, monday_min_priority)
            .await
    }

    /// Spends Monday budget for one call (waits if this process is over it).
    async fn spend(&self, points: u64, job: &JobRow) {
        let urgency = if job.priority >= ADMIN_PRIORITY {
            Urgency::Admin
        } else {
            Urgency::Routine
        };
        let waited = self.budget.acquire(points, urgency).await;
        if waited > Duration::from_millis(100) {
            tracing::info!(
                waited_ms = waited.as_millis() as u64,
                "waited for Monday's per-minute budget"
            );
        }
    }

    /// Takes in what Monday said of its remaining budget.
    fn observe(&self, monday: &MondayClient) {
        if let Some(rl) = monday.last_rate_limit() {
            self.budget.observe(Observed {
                requests_remaining: rl.minute_remaining,
                points_remaining: rl.complexity_remaining,
                reset_in: rl.reset_in,
            });
        }
    }

    /// Runs one claimed job to its recorded outcome.
    #[tracing::instrument(skip_all, fields(job.id = job.id, job.operation = %job.operation, job.attempt = job.attempts))]
    pub async fn run(&self, job: JobRow) -> LedgerResult<JobEnd> {
        let Some(token) = job.lease_token else {
            return Ok(JobEnd::Fenced);
        };
        let Some((work, entity)) = self.prepare(&job, token).await? else {
            return Ok(JobEnd::Fenced);
        };
        let result = self.call(&job, &entity, &work).await;
        let end = self.record(&job, token, &entity, &work, result).await?;
        match &end {
            JobEnd::Done => tracing::info!("job done"),
            JobEnd::RetryLater(d) => {
                tracing::warn!(retry_in_ms = d.as_millis() as u64, "job will be retried")
            }
            JobEnd::Dead(e) => tracing::warn!(error = %e, "job moved to the dead letters"),
            JobEnd::Fenced => tracing::warn!("lease lost: outcome refused by the fence"),
        }
        Ok(end)
    }

    /// Step 1: freeze what the job sends (first attempt) and mark it pending.
    async fn prepare(&self, job: &JobRow, token: i64) -> LedgerResult<Option<(Work, EntityRow)>> {
        let mut tx = self.store.begin().await?;
        if jobs::fenced(&mut tx, job.id, token).await?.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let entity = entities::lock(&mut tx, job.entity_id)
            .await?
            .ok_or_else(|| LedgerError::Corrupt(format!("job {} names no entity", job.id)))?;
        let payload: Value = serde_json::from_str(&job.payload).unwrap_or(Value::Null);
        let work = match payload
            .get("frozen")
            .cloned()
            .map(serde_json::from_value::<Work>)
        {
            Some(Ok(work)) => {
                // A retry sends only what is still the gateway's intention: a value whose pending
                // write was superseded (a newer decision, or the side's own newer edit) would
                // overwrite something newer if it landed now.
                let fields = entities::load_fields(&mut tx, entity.id).await?;
                still_pending(work, &fields)
            }
            _ => {
                let force = payload
                    .get("force")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let work = self.compute_work(&mut tx, job, &entity, force).await?;
                jobs::set_payload(&mut tx, job.id, &json!({ "force": force, "frozen": work }))
                    .await?;
                work
            }
        };
        // From here the values are going out: should a newer decision replace them before they
        // are confirmed, their reports must still be known as the gateway's own.
        match &work {
            Work::PushItem { values, .. } => {
                update_fields(&mut tx, &entity, values, |state, value| {
                    mark_sent(state, Side::Monday, value)
                })
                .await?;
            }
            Work::PatchNpd { values } => {
                update_fields(&mut tx, &entity, values, |state, value| {
                    mark_sent(state, Side::Npd, value)
                })
                .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(Some((work, entity)))
    }

    async fn compute_work(
        &self,
        tx: &mut Tx,
        job: &JobRow,
        entity: &EntityRow,
        force: bool,
    ) -> LedgerResult<Work> {
        let operation = Operation::parse(&job.operation).ok_or_else(|| {
            LedgerError::Corrupt(format!(
                "job {}: unknown operation {}",
                job.id, job.operation
            ))
        })?;
        let mut fields = entities::load_fields(tx, entity.id).await?;
        let work = match operation {
            Operation::PushItem => {
                // A create (no link yet) or a forced push writes every synced field; an update
                // writes the values pending for Monday.
                let all = force || entity.monday_item_id.is_none();
                let kind = entity.entity_kind()?;
                let mut values = BTreeMap::new();
                for (field, _) in self.settings.mapping.for_kind(kind).synced_fields() {
                    let mut state = fields.remove(&field).unwrap_or_default();
                    let pending = pending_to(&state, Side::Monday);
                    let value = match (all, pending) {
                        (_, Some(v)) => v,
                        (true, None) => state.npd.clone(),
                        (false, None) => continue,
                    };
                    if all && pending_to(&state, Side::Monday).is_none() {
                        // Record the write before the call, so its echo is recognised.
                        state.pending_monday = Some(Pending {
                            value: value.clone(),
                            sent: false,
                        });
                        entities::save_field(tx, entity.id, &field, &state).await?;
                    }
                    values.insert(field, value);
                }
                if values.is_empty() {
                    Work::Nothing
                } else {
                    Work::PushItem { values, all }
                }
            }
            Operation::ArchiveItem => Work::ArchiveItem,
            Operation::PatchNpd => {
                let values: BTreeMap<String, FieldValue> = fields
                    .iter()
                    .filter_map(|(f, s)| pending_to(s, Side::Npd).map(|v| (f.clone(), v)))
                    .collect();
                if values.is_empty() {
                    Work::Nothing
                } else {
                    Work::PatchNpd { values }
                }
            }
            Operation::WriteLink => match &entity.monday_item_id {
                Some(id) => Work::WriteLink {
                    monday_id: id.clone(),
                },
                None => Work::Nothing,
            },
            Operation::CreateNpdContact => Work::CreateNpdContact {
                values: fields
                    .iter()
                    .map(|(f, s)| (f.clone(), s.monday.clone()))
                    .collect(),
            },
        };
        Ok(work)
    }

    /// Step 2: the remote call. No transaction is open here.
    async fn call(
        &self,
        job: &JobRow,
        entity: &EntityRow,
        work: &Work,
    ) -> Result<Value, ConnectorError> {
        // One key per job and mutation: stable across the job's retries, and distinct between
        // the create and the update a retried create may turn into (an item adopted by its
        // npd_id), since Monday answers a reused key with the first answer whatever the request.
        let key_of = |mutation: &str| format!("{}:{mutation}", job.idempotency_key);
        let kind = entity
            .entity_kind()
            .map_err(|e| local_error("monday", e.to_string()))?;
        match work {
            Work::Nothing => Ok(json!({"sent": false})),
            Work::PushItem { values, all } => {
                let monday = self
                    .monday
                    .as_ref()
                    .ok_or_else(|| not_configured("monday", "MONDAY_API_TOKEN"))?;
                let board = board_of(&self.settings, entity, kind)
                    .ok_or_else(|| not_configured("monday", "the board id"))?;
                let npd_id = entity.npd_id.clone().unwrap_or_default();
                let mapping = self.settings.mapping.for_kind(kind);
                let name_values = self.name_values(entity, values).await;
                let name = mapping.item_name(&name_values);
                let mut item = entity.monday_item_id();
                let mut adopted = false;
                if item.is_none() && !npd_id.is_empty() {
                    // Idempotent create: an item carrying this NPD id may exist already (a create
                    // whose answer was lost, more than 30 minutes ago): adopt it.
                    self.spend(QUERY_POINTS, job).await;
                    let found = monday
                        .find_items_by_column(board, &mapping.npd_id_column, &npd_id)
                        .await;
                    self.observe(monday);
                    let found = found?;
                    item = found.first().copied();
                    adopted = item.is_some();
                }
                match item {
                    None => {
                        let filled: BTreeMap<String, FieldValue> = values
                            .iter()
                            .filter(|(_, v)| v.is_some())
                            .map(|(f, v)| (f.clone(), v.clone()))
                            .collect();
                        let columns = mapping.monday_column_values(&filled, Some(&npd_id));
                        self.spend(CREATE_POINTS, job).await;
                        let created = monday
                            .create_item(board, &name, &columns, &key_of("create_item"))
                            .await;
                        self.observe(monday);
                        let created = created?;
                        Ok(
                            json!({"item_id": created.to_string(), "board_id": board.to_string(), "created": true}),
                        )
                    }
                    Some(item) => {
                        let mut columns = mapping.monday_column_values(
                            values,
                            (*all || adopted).then_some(npd_id.as_str()),
                        );
                        let renames = mapping.item_name.iter().any(|f| values.contains_key(f));
                        if renames || adopted {
                            columns.insert("name".into(), Value::String(name));
                        }
                        if !columns.is_empty() {
                            self.spend(MUTATION_POINTS, job).await;
                            let changed = monday
                                .change_multiple_column_values(
                                    board,
                                    item,
                                    &columns,
                                    &key_of("change_multiple_column_values"),
                                )
                                .await;
                            self.observe(monday);
                            changed?;
                        }
                        Ok(
                            json!({"item_id": item.to_string(), "board_id": board.to_string(), "created": false, "adopted": adopted}),
                        )
                    }
                }
            }
            Work::ArchiveItem => {
                let monday = self
                    .monday
                    .as_ref()
                    .ok_or_else(|| not_configured("monday", "MONDAY_API_TOKEN"))?;
                match entity.monday_item_id() {
                    Some(item) => {
                        self.spend(MUTATION_POINTS, job).await;
                        let archived = monday.archive_item(item, &key_of("archive_item")).await;
                        self.observe(monday);
                        match archived {
                            Ok(()) => Ok(json!({"archived": item.to_string()})),
                            Err(e) if e.class == FailureClass::NotFound => {
                                Ok(json!({"archived": null, "note": "item already gone"}))
                            }
                            Err(e) => Err(e),
                        }
                    }
                    None => Ok(json!({"archived": null})),
                }
            }
            Work::PatchNpd { values } => {
                let npd = self
                    .npd
                    .as_ref()
                    .ok_or_else(|| not_configured("npd", "NPD_API_URL"))?;
                let id = npd_id_of(entity)?;
                let body: Map<String, Value> = values
                    .iter()
                    .map(|(f, v)| (f.clone(), v.clone().map_or(Value::Null, Value::String)))
                    .collect();
                let answer = npd.patch(kind, id, &body, &job.idempotency_key).await?;
                Ok(
                    json!({"patched": values.keys().collect::<Vec<_>>(), "npd_version": answer.get("version")}),
                )
            }
            Work::WriteLink { monday_id } => {
                let npd = self
                    .npd
                    .as_ref()
                    .ok_or_else(|| not_configured("npd", "NPD_API_URL"))?;
                let id = npd_id_of(entity)?;
                let body =
                    Map::from_iter([("monday_id".to_owned(), Value::String(monday_id.clone()))]);
                let answer = npd.patch(kind, id, &body, &job.idempotency_key).await?;
                Ok(json!({"monday_id": monday_id, "npd_version": answer.get("version")}))
            }
            Work::CreateNpdContact { values } => {
                let npd = self
                    .npd
                    .as_ref()
                    .ok_or_else(|| not_configured("npd", "NPD_API_URL"))?;
                let mut body: Map<String, Value> = values
                    .iter()
                    .map(|(f, v)| (f.clone(), v.clone().map_or(Value::Null, Value::String)))
                    .collect();
                if let Some(item) = &entity.monday_item_id {
                    body.insert("monday_id".into(), Value::String(item.clone()));
                }
                let id = npd.create_contact(&body, &job.idempotency_key).await?;
                Ok(json!({"npd_id": id.to_string()}))
            }
        }
    }

    /// The values of the item-name fields: the ones being sent, else what NPD holds.
    async fn name_values(
        &self,
        entity: &EntityRow,
        values: &BTreeMap<String, FieldValue>,
    ) -> BTreeMap<String, FieldValue> {
        let mut out = values.clone();
        if let Ok(kind) = entity.entity_kind() {
            let mapping = self.settings.mapping.for_kind(kind);
            if mapping.item_name.iter().all(|f| values.contains_key(f)) {
                return out;
            }
            if let Ok(mut tx) = self.store.begin_read().await {
                if let Ok(fields) = entities::load_fields(&mut tx, entity.id).await {
                    for f in &mapping.item_name {
                        out.entry(f.clone())
                            .or_insert_with(|| fields.get(f).and_then(|s| s.npd.clone()));
                    }
                }
                let _ = tx.rollback().await;
            }
        }
        out
    }

    /// Step 3: record the outcome, fenced by the lease token.
    async fn record(
        &self,
        job: &JobRow,
        token: i64,
        entity: &EntityRow,
        work: &Work,
        result: Result<Value, ConnectorError>,
    ) -> LedgerResult<JobEnd> {
        let mut tx = self.store.begin().await?;
        if jobs::fenced(&mut tx, job.id, token).await?.is_none() {
            tx.rollback().await?;
            return Ok(JobEnd::Fenced);
        }
        // Current row, under the entity's lock (processing may have moved it on meanwhile).
        let entity = &entities::lock(&mut tx, entity.id)
            .await?
            .unwrap_or_else(|| entity.clone());
        let end = match result {
            Ok(answer) => {
                self.succeeded(&mut tx, job, entity, work, &answer).await?;
                jobs::complete(&mut tx, job.id, token, &answer).await?;
                JobEnd::Done
            }
            Err(error) => {
                if error.class == FailureClass::NotFound
                    && matches!(work, Work::PushItem { .. })
                    && entity.monday_item_id.is_some()
                {
                    // The linked item is gone: unlink, and let the retry create a new one.
                    entities::set_link(&mut tx, entity.id, None, None).await?;
                    record(
                        &mut tx,
                        entity,
                        None,
                        Some(job.id),
                        "unlinked",
                        format!("Monday item is gone ({error}): a new item will be created"),
                        None,
                    )
                    .await?;
                    let fresh = json!({"force": true});
                    jobs::set_payload(&mut tx, job.id, &fresh).await?;
                    jobs::retry_later(&mut tx, job.id, token, &error.to_string(), now_ms()).await?;
                    tx.commit().await?;
                    return Ok(JobEnd::RetryLater(Duration::ZERO));
                }
                let verdict = self.policy.verdict(job.attempts, &error, &mut rand::rng());
                match verdict {
                    Verdict::RetryAfter(delay) => {
                        let at =
                            now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                        jobs::retry_later(&mut tx, job.id, token, &error.to_string(), at).await?;
                        record(
                            &mut tx,
                            entity,
                            None,
                            Some(job.id),
                            "failed",
                            format!(
                                "{} attempt {} failed, retry in {} ms: {error}",
                                job.operation,
                                job.attempts,
                                delay.as_millis()
                            ),
                            None,
                        )
                        .await?;
                        JobEnd::RetryLater(delay)
                    }
                    Verdict::Dead(reason) => {
                        self.gave_up(&mut tx, entity, work).await?;
                        jobs::bury(&mut tx, job.id, token, &reason).await?;
                        entities::set_status(&mut tx, entity.id, status::FAILED, Some(&reason))
                            .await?;
                        record(
                            &mut tx,
                            entity,
                            None,
                            Some(job.id),
                            "dead",
                            format!("{} moved to the dead letters: {reason}", job.operation),
                            None,
                        )
                        .await?;
                        JobEnd::Dead(reason)
                    }
                }
            }
        };
        tx.commit().await?;
        Ok(end)
    }

    async fn succeeded(
        &self,
        tx: &mut Tx,
        job: &JobRow,
        entity: &EntityRow,
        work: &Work,
        answer: &Value,
    ) -> LedgerResult<()> {
        let fields = |values: &BTreeMap<String, FieldValue>| {
            values.keys().cloned().collect::<Vec<_>>().join(", ")
        };
        let (reason, detail) = match work {
            Work::Nothing => (format!("{}: nothing left to send", job.operation), None),
            Work::PushItem { values, .. } => {
                let item: Option<MondayItemId> =
                    answer["item_id"].as_str().and_then(|s| s.parse().ok());
                let board: Option<BoardId> =
                    answer["board_id"].as_str().and_then(|s| s.parse().ok());
                let linked_now = item.is_some() && entity.monday_item_id() != item;
                if linked_now {
                    entities::set_link(tx, entity.id, item, board).await?;
                }
                self.confirm_all(tx, entity, Side::Monday, values).await?;
                mark_synced(tx, entity).await?;
                // The new link goes back to NPD, after (never before) it is committed here.
                if linked_now && let Some(item) = item {
                    let fresh = entities::find_by_id(tx, entity.id)
                        .await?
                        .unwrap_or_else(|| entity.clone());
                    outbox::write_link_back(
                        tx,
                        &self.settings,
                        &fresh,
                        item,
                        job.priority,
                        job.request_id.as_deref(),
                    )
                    .await?;
                }
                let what = if answer["created"] == json!(true) {
                    "created"
                } else {
                    "updated"
                };
                let item = item.map(|i| i.to_string()).unwrap_or_default();
                (
                    format!("Monday item {item} {what}: {}", fields(values)),
                    Some(answer.clone()),
                )
            }
            Work::ArchiveItem => ("Monday item archived".to_owned(), Some(answer.clone())),
            Work::PatchNpd { values } => {
                self.confirm_all(tx, entity, Side::Npd, values).await?;
                mark_synced(tx, entity).await?;
                (format!("NPD patched: {}", fields(values)), None)
            }
            Work::WriteLink { monday_id } => {
                (format!("monday_id {monday_id} written back to NPD"), None)
            }
            Work::CreateNpdContact { values } => {
                let id = answer["npd_id"]
                    .as_str()
                    .and_then(|s| NpdId::parse(s).ok())
                    .ok_or_else(|| {
                        LedgerError::Corrupt(format!("job {}: NPD answered no id", job.id))
                    })?;
                entities::set_npd_id(tx, entity.id, id).await?;
                self.confirm_all(tx, entity, Side::Npd, values).await?;
                mark_synced(tx, entity).await?;
                (
                    format!("NPD contact {id} created from the Monday item"),
                    None,
                )
            }
        };
        // NPD answered with the version its record now has: the event it sends for this write
        // is an echo, and any event older than it is stale (however late it arrives).
        if let Some(version) = answer.get("npd_version").and_then(Value::as_i64) {
            entities::record_npd_write(tx, entity.id, version).await?;
        }
        record(tx, entity, None, Some(job.id), "sent", reason, detail).await
    }

    async fn confirm_all(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        side: Side,
        values: &BTreeMap<String, FieldValue>,
    ) -> LedgerResult<()> {
        update_fields(tx, entity, values, |state, value| {
            confirm(state, side, value)
        })
        .await
    }

    /// A job died: its values are no longer in flight.
    async fn gave_up(&self, tx: &mut Tx, entity: &EntityRow, work: &Work) -> LedgerResult<()> {
        let (side, values) = match work {
            Work::PushItem { values, .. } => (Side::Monday, values),
            Work::PatchNpd { values } => (Side::Npd, values),
            _ => return Ok(()),
        };
        update_fields(tx, entity, values, |state, value| {
            abandon(state, side, value)
        })
        .await
    }
}

/// Applies `step` to the state of each field in `values`, saving the ones that changed.
async fn update_fields(
    tx: &mut Tx,
    entity: &EntityRow,
    values: &BTreeMap<String, FieldValue>,
    step: impl Fn(&FieldState, &FieldValue) -> FieldState,
) -> LedgerResult<()> {
    let fields = entities::load_fields(tx, entity.id).await?;
    for (field, value) in values {
        let state = fields.get(field).cloned().unwrap_or_default();
        let next = step(&state, value);
        if next != state {
            entities::save_field(tx, entity.id, field, &next).await?;
        }
    }
    Ok(())
}

/// After a successful write: `synced`, unless a conflict still waits for an admin.
async fn mark_synced(tx: &mut Tx, entity: &EntityRow) -> LedgerResult<()> {
    let next = if crate::ledger::conflicts::open_count(tx, entity.id).await? > 0 {
        status::CONFLICT
    } else {
        status::SYNCED
    };
    entities::set_status(tx, entity.id, next, None).await
}

/// `work` without the values whose pending write is no longer theirs.
fn still_pending(work: Work, fields: &BTreeMap<String, FieldState>) -> Work {
    let keep = |side: Side, values: BTreeMap<String, FieldValue>| -> BTreeMap<String, FieldValue> {
        values
            .into_iter()
            .filter(|(f, v)| {
                fields
                    .get(f)
                    .and_then(|s| s.pending(side))
                    .is_some_and(|p| &p.value == v)
            })
            .collect()
    };
    match work {
        Work::PushItem { values, all } => {
            let values = keep(Side::Monday, values);
            if values.is_empty() {
                Work::Nothing
            } else {
                Work::PushItem { values, all }
            }
        }
        Work::PatchNpd { values } => {
            let values = keep(Side::Npd, values);
            if values.is_empty() {
                Work::Nothing
            } else {
                Work::PatchNpd { values }
            }
        }
        other => other,
    }
}

/// The value in flight to `side`, if any.
fn pending_to(state: &FieldState, side: Side) -> Option<FieldValue> {
    state.pending(side).map(|p| p.value.clone())
}

fn npd_id_of(entity: &EntityRow) -> Result<NpdId, ConnectorError> {
    entity
        .npd_id()
        .ok_or_else(|| local_error("npd", format!("entity {} has no NPD id", entity.id)))
}

fn not_configured(system: &'static str, what: &str) -> ConnectorError {
    local_error(system, format!("{what} is not configured"))
}

fn local_error(system: &'static str, message: String) -> ConnectorError {
    ConnectorError {
        system,
        class: FailureClass::Permanent,
        status: None,
        code: None,
        message,
        retry_after: None,
    }
}
