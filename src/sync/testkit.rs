//! Test support for the use cases: in-memory fakes of Monday and NPD behind the connector traits,
//! and a `Kit` that wires them to a real (temporary SQLite) ledger, so `process` and `dispatch`
//! are tested without HTTP.
//!
//! Owns: `FakeMonday`, `FakeNpd`, `Kit`. Test-only.
//! May import: std, tokio, tempfile, crate::*.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::SecretString;

use crate::config::Settings;
use crate::connectors::monday::{
    BoardWebhook, ItemSnapshot, ItemsPage, RateLimitState, graphql_column_type,
};
use crate::connectors::{
    Batched, ConnectorError, FailureClass, FoundItem, MondayApi, Mutation, NewColumn, NpdApi,
    NpdFields, NpdPage,
};
use crate::domain::entity::{BoardId, EntityKind, MondayItemId, NpdId, Side};
use crate::domain::event::{MondayDelivery, NpdEvent};
use crate::domain::mapping::ColumnValues;
use crate::domain::record::NpdRecord;
use crate::ledger::Store;
use crate::ledger::entities::EntityRow;
use crate::ledger::group_commit::InboxWriter;
use crate::ledger::inbox::InsertOutcome;
use crate::ledger::jobs::JobRow;
use crate::sync::budget::MondayBudget;
use crate::sync::dispatch::{Dispatcher, JobEnd, Remotes};
use crate::sync::ingest::Ingest;
use crate::sync::process::{OwnMondayUser, Processor};

pub const CONTACTS_BOARD: BoardId = BoardId(4_100_000_001);
pub const ADA: &str = "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10";
/// The Monday user the gateway's token acts as in these tests.
pub const GATEWAY_USER: i64 = 71_999_999;

/// One call a fake received.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    CreateItem {
        board: BoardId,
        name: String,
        columns: serde_json::Map<String, serde_json::Value>,
        key: String,
    },
    ChangeColumns {
        item: MondayItemId,
        columns: serde_json::Map<String, serde_json::Value>,
        key: String,
    },
    Archive {
        item: MondayItemId,
    },
    Find {
        column: String,
        value: String,
    },
    Patch {
        id: NpdId,
        fields: NpdFields,
        key: String,
    },
    CreateContact {
        fields: NpdFields,
    },
    /// A batched request: its mutations, in alias order.
    Batch {
        mutations: Vec<Mutation>,
        key: String,
    },
    FindMany {
        column: String,
        values: Vec<String>,
    },
    CreateColumn {
        board: BoardId,
        id: String,
        title: String,
        column_type: String,
        key: String,
    },
    CreateWebhook {
        board: BoardId,
        url: String,
        event: String,
        key: String,
    },
}

#[derive(Debug, Default)]
struct Script {
    calls: Vec<Call>,
    /// What the next calls answer, in order: an error, or `None` to succeed (then every call
    /// succeeds again).
    failures: VecDeque<Option<ConnectorError>>,
    /// Errors for single aliases of the next batch, by alias index.
    alias_failures: BTreeMap<usize, ConnectorError>,
    /// Items by their npd_id column value, for `find_items_by_column`.
    items_by_npd_id: BTreeMap<String, MondayItemId>,
    next_item: u64,
    npd_version: i64,
    /// The board's columns (id, GraphQL type); None: no such board.
    board_columns: Option<Vec<(String, String)>>,
    webhooks: Vec<BoardWebhook>,
}

/// Monday and NPD in memory: every call is recorded; failures can be scripted.
#[derive(Debug, Clone, Default)]
pub struct Fakes(Arc<Mutex<Script>>);

impl Fakes {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.script().calls.clone()
    }

    /// The next call fails with `error`.
    pub fn fail_next(&self, error: ConnectorError) {
        self.script().failures.push_back(Some(error));
    }

    /// The next call succeeds (before the failures queued after it).
    pub fn succeed_next(&self) {
        self.script().failures.push_back(None);
    }

    /// Alias `index` of the next batch fails with `error` (the others succeed).
    pub fn fail_alias(&self, index: usize, error: ConnectorError) {
        self.script().alias_failures.insert(index, error);
    }

    fn next_item(&self) -> MondayItemId {
        let mut script = self.script();
        script.next_item += 1;
        // The first item is the one the Monday fixtures name (pulseId 5200000101).
        MondayItemId(5_200_000_100 + script.next_item)
    }

    /// An item that already carries `npd_id` in its npd_id column.
    pub fn add_item(&self, npd_id: &str, item: MondayItemId) {
        self.script()
            .items_by_npd_id
            .insert(npd_id.to_owned(), item);
    }

    /// A board that exists with these columns (id, GraphQL type) and no webhooks.
    pub fn set_board(&self, columns: &[(&str, &str)]) {
        self.script().board_columns = Some(
            columns
                .iter()
                .map(|(id, t)| ((*id).to_owned(), (*t).to_owned()))
                .collect(),
        );
    }

    fn answer(&self, call: Call) -> Result<(), ConnectorError> {
        let mut script = self.script();
        script.calls.push(call);
        match script.failures.pop_front().flatten() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

pub fn error(system: Side, class: FailureClass, status: u16) -> ConnectorError {
    ConnectorError {
        system,
        class,
        status: Some(status),
        code: None,
        message: format!("scripted {status}"),
        retry_after: None,
    }
}

#[async_trait]
impl MondayApi for Fakes {
    async fn create_item(
        &self,
        board: BoardId,
        item_name: &str,
        columns: &ColumnValues,
        idempotency_key: &str,
    ) -> Result<MondayItemId, ConnectorError> {
        self.answer(Call::CreateItem {
            board,
            name: item_name.to_owned(),
            columns: columns.0.clone(),
            key: idempotency_key.to_owned(),
        })?;
        Ok(self.next_item())
    }

    async fn change_multiple_column_values(
        &self,
        _board: BoardId,
        item: MondayItemId,
        columns: &ColumnValues,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError> {
        self.answer(Call::ChangeColumns {
            item,
            columns: columns.0.clone(),
            key: idempotency_key.to_owned(),
        })
    }

    async fn archive_item(&self, item: MondayItemId, _key: &str) -> Result<(), ConnectorError> {
        self.answer(Call::Archive { item })
    }

    async fn find_items_by_column(
        &self,
        _board: BoardId,
        column_id: &str,
        value: &str,
    ) -> Result<Vec<MondayItemId>, ConnectorError> {
        self.answer(Call::Find {
            column: column_id.to_owned(),
            value: value.to_owned(),
        })?;
        Ok(self
            .script()
            .items_by_npd_id
            .get(value)
            .copied()
            .into_iter()
            .collect())
    }

    async fn mutate(
        &self,
        mutations: &[Mutation],
        idempotency_key: &str,
    ) -> Result<Batched, ConnectorError> {
        self.answer(Call::Batch {
            mutations: mutations.to_vec(),
            key: idempotency_key.to_owned(),
        })?;
        let mut failing = std::mem::take(&mut self.script().alias_failures);
        let results = mutations
            .iter()
            .enumerate()
            .map(|(i, m)| match (failing.remove(&i), m) {
                (Some(e), _) => Err(e),
                (None, Mutation::Create { .. }) => Ok(self.next_item()),
                (None, Mutation::Update { item, .. } | Mutation::Archive { item }) => Ok(*item),
            })
            .collect();
        Ok(Batched {
            results,
            complexity_left: None,
        })
    }

    async fn find_items_by_column_values(
        &self,
        _board: BoardId,
        column_id: &str,
        values: &[String],
    ) -> Result<Vec<FoundItem>, ConnectorError> {
        self.answer(Call::FindMany {
            column: column_id.to_owned(),
            values: values.to_vec(),
        })?;
        let script = self.script();
        Ok(values
            .iter()
            .filter_map(|v| {
                script.items_by_npd_id.get(v).map(|id| FoundItem {
                    id: *id,
                    text: Some(v.clone()),
                    active: true,
                })
            })
            .collect())
    }

    async fn get_item(&self, _item: MondayItemId) -> Result<Option<ItemSnapshot>, ConnectorError> {
        Ok(None)
    }

    async fn board_columns(
        &self,
        _board: BoardId,
    ) -> Result<Option<Vec<(String, String)>>, ConnectorError> {
        Ok(self.script().board_columns.clone())
    }

    async fn board_webhooks(&self, _board: BoardId) -> Result<Vec<BoardWebhook>, ConnectorError> {
        Ok(self.script().webhooks.clone())
    }

    async fn create_webhook(
        &self,
        board: BoardId,
        url: &str,
        event: &str,
        key: &str,
    ) -> Result<String, ConnectorError> {
        let (url, event, key) = (url.to_owned(), event.to_owned(), key.to_owned());
        self.answer(Call::CreateWebhook {
            board,
            url,
            event: event.clone(),
            key,
        })?;
        let mut script = self.script();
        let id = format!("{}", 81_000_000 + script.webhooks.len());
        let config = None;
        script.webhooks.push(BoardWebhook {
            id: id.clone(),
            event,
            config,
        });
        Ok(id)
    }

    async fn create_column(
        &self,
        board: BoardId,
        column: &NewColumn<'_>,
        key: &str,
    ) -> Result<(), ConnectorError> {
        let column_type = graphql_column_type(column.column_type).to_owned();
        self.answer(Call::CreateColumn {
            board,
            id: column.id.to_owned(),
            title: column.title.to_owned(),
            column_type: column_type.clone(),
            key: key.to_owned(),
        })?;
        let mut script = self.script();
        let columns = script.board_columns.get_or_insert_with(Vec::new);
        columns.push((column.id.to_owned(), column_type));
        Ok(())
    }

    async fn items_page(
        &self,
        _board: BoardId,
        _columns: &[String],
        _cursor: Option<&str>,
        _limit: u32,
    ) -> Result<ItemsPage, ConnectorError> {
        Ok(ItemsPage::default())
    }

    async fn me(&self) -> Result<i64, ConnectorError> {
        Ok(GATEWAY_USER)
    }

    fn last_rate_limit(&self) -> Option<RateLimitState> {
        None
    }
}

#[async_trait]
impl NpdApi for Fakes {
    async fn list(
        &self,
        _kind: EntityKind,
        _cursor: Option<&str>,
        _limit: u32,
    ) -> Result<NpdPage, ConnectorError> {
        Ok(NpdPage::default())
    }

    async fn get(
        &self,
        _kind: EntityKind,
        _id: NpdId,
    ) -> Result<Option<NpdRecord>, ConnectorError> {
        Ok(None)
    }

    async fn patch(
        &self,
        _kind: EntityKind,
        id: NpdId,
        fields: &NpdFields,
        idempotency_key: &str,
    ) -> Result<Option<i64>, ConnectorError> {
        self.answer(Call::Patch {
            id,
            fields: fields.clone(),
            key: idempotency_key.to_owned(),
        })?;
        // The fixtures' records start at version 1: each write makes the next version.
        let mut script = self.script();
        script.npd_version += 1;
        Ok(Some(1 + script.npd_version))
    }

    async fn create_contact(
        &self,
        fields: &NpdFields,
        _key: &str,
    ) -> Result<NpdId, ConnectorError> {
        self.answer(Call::CreateContact {
            fields: fields.clone(),
        })?;
        NpdId::parse("0e9f8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f")
            .map_err(|e| ConnectorError::local(Side::Npd, e.to_string()))
    }
}

/// A ledger on a temporary SQLite file, the use cases over it, and the fakes they call.
pub struct Kit {
    /// The clock the Monday budget reads (unix ms): tests move it.
    pub clock: Arc<AtomicI64>,
    pub store: Store,
    pub fakes: Fakes,
    pub ingest: Ingest,
    pub processor: Processor,
    pub dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

impl Kit {
    pub async fn new() -> Kit {
        Kit::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Settings)) -> Kit {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut settings = Settings::default();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        settings.database.url = SecretString::from(url);
        settings.monday.api_token = Some(SecretString::from("fake-token".to_owned()));
        settings.monday.contacts_board_id = Some(CONTACTS_BOARD);
        settings.monday.integration_user_id = Some(GATEWAY_USER);
        settings.npd.api_url = Some("http://npd.invalid".to_owned());
        tweak(&mut settings);
        let settings = Arc::new(settings);
        let store = Store::connect(&settings.database).await.expect("store");
        store.migrate().await.expect("migrations");
        let writer = InboxWriter::spawn(store.clone(), 16, 1, std::time::Duration::from_secs(30));
        let ingest = Ingest::new(Arc::clone(&settings), writer, Arc::default());
        let processor = Processor::new(
            Arc::clone(&settings),
            store.clone(),
            OwnMondayUser::default(),
        );
        let fakes = Fakes::default();
        let remotes = Remotes {
            monday: Some(Arc::new(fakes.clone())),
            npd: Some(Arc::new(fakes.clone())),
        };
        let clock = Arc::new(AtomicI64::new(crate::ledger::now_ms()));
        let read = Arc::clone(&clock);
        let budget = MondayBudget::new(&settings.monday, &store)
            .with_clock(Arc::new(move || read.load(Ordering::SeqCst)));
        let dispatcher = Dispatcher::with_budget(
            Arc::clone(&settings),
            store.clone(),
            remotes,
            "test-worker".into(),
            Arc::new(budget),
        );
        Kit {
            clock,
            store,
            fakes,
            ingest,
            processor,
            dispatcher,
            _dir: dir,
        }
    }

    /// Stores an NPD event (a fixture's body) and processes the inbox.
    pub async fn npd(&self, webhook_id: &str, body: &str) {
        let event = NpdEvent::parse(body.as_bytes()).expect("a valid NPD event");
        let stored = self
            .ingest
            .npd_event(webhook_id, &event, body.as_bytes(), None)
            .await
            .expect("stored");
        assert!(matches!(stored, InsertOutcome::Accepted(_)));
        self.process().await;
    }

    /// Stores a Monday delivery (a fixture's body) and processes the inbox.
    pub async fn monday(&self, body: &str) {
        let Ok(MondayDelivery::Event(event)) = MondayDelivery::parse(body.as_bytes()) else {
            panic!("a Monday event");
        };
        self.ingest
            .monday_event(&event, body.as_bytes(), None)
            .await
            .expect("stored");
        self.process().await;
    }

    pub async fn process(&self) {
        while self.processor.process_batch(50).await.expect("processed") > 0 {}
    }

    /// Claims and runs every runnable job, one at a time, until none is left; the end of each.
    pub async fn dispatch_all(&self) -> Vec<(JobRow, JobEnd)> {
        let mut ends = Vec::new();
        loop {
            let jobs = self.dispatcher.claim(10).await.expect("claimed");
            if jobs.is_empty() {
                return ends;
            }
            for job in jobs {
                let end = self.dispatcher.run(job.clone()).await.expect("ran");
                ends.push((job, end));
            }
        }
    }

    /// Claims every runnable job and runs them as one batch, until none is left; the end of each.
    pub async fn dispatch_batches(&self) -> Vec<(JobRow, JobEnd)> {
        let mut ends = Vec::new();
        loop {
            let jobs = self.dispatcher.claim(100).await.expect("claimed");
            if jobs.is_empty() {
                return ends;
            }
            let batch = self.dispatcher.run_batch(jobs.clone()).await.expect("ran");
            for (id, end) in batch {
                let job = jobs
                    .iter()
                    .find(|j| j.id == id)
                    .cloned()
                    .expect("a claimed job");
                ends.push((job, end));
            }
        }
    }

    /// Every pending job due now (the ledger's clock is the real one; the budget's may be moved).
    pub async fn make_due(&self) {
        let Store::Sqlite(sqlite) = &self.store else {
            panic!("the kit runs on SQLite");
        };
        sqlx::query("update outbox_jobs set next_attempt_at = 0 where state = 'pending'")
            .execute(&sqlite.pool)
            .await
            .expect("due");
    }

    /// Moves the Monday budget's clock by `ms`.
    pub fn advance_clock(&self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    pub async fn entity(&self, npd_id: &str) -> EntityRow {
        let id = NpdId::parse(npd_id).expect("uuid");
        self.store
            .entity_by_npd(EntityKind::Contact, id)
            .await
            .expect("read")
            .expect("the entity exists")
    }
}

/// A fixture's text.
pub fn fixture(path: &str) -> String {
    let full = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}
