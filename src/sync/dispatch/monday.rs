//! Step 2 of Monday jobs, in batches: the npd_id lookups of the creates in one request, then
//! every mutation of the batch in one request (aliases), each spent from the Monday budget.
//!
//! Owns: `Dispatcher::run_monday` and its steps: `look_up` (which unlinked entities already have
//! an item, for every create of the batch in one request: a create whose answer was lost is
//! adopted, never made twice; `look_up_claim` does it once for a whole claim of several batches,
//! so a burst of creates costs one lookup per 500, not one per batch), `plan` (each job's
//! mutation, or what it achieved without one), `send` (one request per chunk of `batch_max`; a
//! single mutation goes as its own document under its job's key, several as aliases under a key
//! derived from the jobs' keys and the request, so a retried batch replays and a re-formed one
//! does not), and the mapping of each alias's answer or error back to its job.
//! May import: std, sha2, crate::{connectors, domain, ledger, sync}.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::connectors::{ConnectorError, FailureClass, FoundItem, MondayApi, Mutation};
use crate::domain::budget::Cost;
use crate::domain::entity::{BoardId, MondayItemId, NpdId, Side};
use crate::domain::job::{Operation, Priority, Sent, Work};
use crate::domain::mapping::FieldValue;
use crate::ledger::LedgerResult;
use crate::ledger::entities;
use crate::ledger::jobs::JobRow;
use crate::sync::dispatch::{Dispatcher, JobEnd, Prepared, not_configured};

/// Complexity points of a query (a lookup).
const QUERY_POINTS: u64 = 100;
/// Most npd_ids one lookup asks for (a page holds at most 500 items).
const LOOKUP_MAX: usize = 500;

/// What a job's answer will mean once its mutation lands.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Created {
        board: BoardId,
    },
    Updated {
        item: MondayItemId,
        board: BoardId,
        adopted: bool,
    },
    Archived {
        item: MondayItemId,
    },
}

/// A job's Monday work: a mutation to send, or what it achieved without one.
enum Plan {
    Done(Result<Sent, ConnectorError>),
    Send(Mutation, Expect),
}

/// The outcome of spending on a request: sent, or not sent because the budget is spent (`D`
/// says for how long, and what waits).
enum Spent<T, D = Duration> {
    Sent(T),
    Deferred(D),
}

/// The jobs that wait, and how long.
type Deferral = (Vec<Prepared>, Duration);

/// What the npd_id lookups found, by job id: the item that already carries the job's entity's
/// npd_id (`None`: no item does), or the lookup's failure.
pub type Found = HashMap<i64, Result<Option<MondayItemId>, ConnectorError>>;

impl Dispatcher {
    /// Runs prepared Monday jobs to their recorded ends: one lookup request for all their
    /// creates (up to 500 npd_ids a request), then one request per `batch_max` mutations. When the
    /// budget is spent, what is left waits (its attempts uncounted).
    pub(super) async fn run_monday(
        &self,
        prepared: Vec<Prepared>,
        claimed: &Found,
    ) -> LedgerResult<Vec<(i64, JobEnd)>> {
        let found = match self.look_up(&prepared, claimed).await? {
            Spent::Sent(found) => found,
            Spent::Deferred(wait) => return self.defer_all(&prepared, wait).await,
        };
        let mut done = Vec::new();
        let mut to_send = Vec::new();
        for p in prepared {
            match self.plan(&p, &found).await {
                Plan::Done(result) => done.push((p, result)),
                Plan::Send(mutation, expect) => to_send.push((p, mutation, expect)),
            }
        }
        let (settled, results): (Vec<Prepared>, Vec<_>) = done.into_iter().unzip();
        let mut ends = self
            .record_all(settled.iter().zip(results).collect())
            .await?;
        let batch_max = self.settings.monday.batch_max.max(1);
        while !to_send.is_empty() {
            let rest = to_send.split_off(batch_max.min(to_send.len()));
            let chunk = std::mem::replace(&mut to_send, rest);
            if let Spent::Deferred((mut waiting, wait)) = self.send(chunk, &mut ends).await? {
                waiting.extend(to_send.drain(..).map(|(p, _, _)| p));
                ends.extend(self.defer_all(&waiting, wait).await?);
            }
        }
        Ok(ends)
    }

    /// Gives every job back for later: the budget is spent for `wait`.
    async fn defer_all(
        &self,
        prepared: &[Prepared],
        wait: Duration,
    ) -> LedgerResult<Vec<(i64, JobEnd)>> {
        let until =
            crate::ledger::now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
        let mut ends = Vec::with_capacity(prepared.len());
        for p in prepared {
            self.store.defer(p.job.id, p.token, until).await?;
            ends.push((p.job.id, JobEnd::Deferred(wait)));
        }
        tracing::info!(
            jobs = ends.len(),
            wait_ms = wait.as_millis() as u64,
            "Monday budget spent: jobs wait"
        );
        Ok(ends)
    }

    /// Spends the budget for one request of `cost` at the highest priority among `prepared`.
    async fn spend(
        &self,
        cost: Cost,
        prepared: &[&Prepared],
    ) -> LedgerResult<Result<(), Duration>> {
        let priority = prepared
            .iter()
            .map(|p| p.job.priority)
            .max()
            .unwrap_or(Priority::Live);
        let waited = self
            .budget
            .acquire(cost, priority, crate::sync::budget::MAX_WAIT_ON_LEASE)
            .await?;
        if let Ok(w) = waited
            && w > Duration::from_millis(100)
        {
            tracing::info!(
                waited_ms = w.as_millis() as u64,
                "waited for the Monday budget"
            );
        }
        Ok(waited.map(drop))
    }

    /// Takes in what Monday said of the budget with its answer.
    async fn observe(
        &self,
        monday: &dyn MondayApi,
        complexity: Option<(u64, Duration)>,
    ) -> LedgerResult<()> {
        if let Some(rl) = monday.last_rate_limit() {
            self.budget
                .observe(rl.minute_remaining, rl.complexity_remaining, rl.reset_in)
                .await?;
        }
        if let Some((left, reset)) = complexity {
            self.budget.observe(None, Some(left), Some(reset)).await?;
        }
        Ok(())
    }

    /// The items that already carry the npd_id of each unlinked entity about to be created, by job
    /// id: one request per board (and per 500 ids), for the creates `claimed` (what
    /// `look_up_claim` found for the whole claim) does not answer. A failed lookup fails its jobs.
    async fn look_up(&self, prepared: &[Prepared], claimed: &Found) -> LedgerResult<Spent<Found>> {
        let mut found = Found::new();
        let mut groups: BTreeMap<(BoardId, String), Vec<&Prepared>> = BTreeMap::new();
        for p in prepared {
            if let Some(known) = claimed.get(&p.job.id) {
                found.insert(p.job.id, known.clone());
                continue;
            }
            if let (Work::PushItem { .. }, Some((board, column, _))) =
                (&p.work, self.create_of(&p.entity))
            {
                groups.entry((board, column)).or_default().push(p);
            }
        }
        let Some(monday) = self.monday.as_deref() else {
            return Ok(Spent::Sent(found));
        };
        for ((board, column), group) in groups {
            for chunk in group.chunks(LOOKUP_MAX) {
                if let Err(wait) = self.spend(Cost::request(QUERY_POINTS), chunk).await? {
                    return Ok(Spent::Deferred(wait));
                }
                let ids = chunk.iter().filter_map(|p| p.entity.npd_id).collect();
                let jobs = chunk.iter().map(|p| p.job.id).collect();
                found.extend(self.ask(monday, board, &column, jobs, ids).await?);
            }
        }
        Ok(Spent::Sent(found))
    }

    /// The lookups of a claim that holds more creates than one batch: every create's npd_id,
    /// asked once for the whole claim (one request per board and 500 ids) before its batches
    /// run, each of which would otherwise look its own creates up. Only what the budget has room
    /// for now (it never waits here); the rest, and a claim of one batch, the batches look up.
    pub async fn look_up_claim(&self, jobs: &[JobRow]) -> LedgerResult<Found> {
        let mut found = Found::new();
        let pushes: Vec<&JobRow> = jobs
            .iter()
            .filter(|j| j.operation == Operation::PushItem)
            .collect();
        let Some(monday) = self.monday.as_deref() else {
            return Ok(found);
        };
        if pushes.len() <= self.batch_max() {
            return Ok(found);
        }
        let mut groups: BTreeMap<(BoardId, String), Vec<(&JobRow, NpdId)>> = BTreeMap::new();
        let mut tx = self.store.begin_read().await?;
        for job in pushes {
            if let Some(entity) = entities::find_by_id(&mut tx, job.entity_id).await?
                && let Some((board, column, npd_id)) = self.create_of(&entity)
            {
                groups
                    .entry((board, column))
                    .or_default()
                    .push((job, npd_id));
            }
        }
        tx.rollback().await?;
        for ((board, column), group) in groups {
            for chunk in group.chunks(LOOKUP_MAX) {
                let priority = chunk.iter().map(|(j, _)| j.priority).max();
                let cost = Cost::request(QUERY_POINTS);
                if self
                    .budget
                    .try_spend(cost, priority.unwrap_or(Priority::Live))
                    .await?
                    .is_err()
                {
                    return Ok(found);
                }
                let jobs = chunk.iter().map(|(j, _)| j.id).collect();
                let ids = chunk.iter().map(|(_, id)| *id).collect();
                found.extend(self.ask(monday, board, &column, jobs, ids).await?);
            }
        }
        Ok(found)
    }

    /// An unlinked entity with an npd_id, about to be created: its board and npd_id column.
    fn create_of(&self, entity: &entities::EntityRow) -> Option<(BoardId, String, NpdId)> {
        let npd_id = entity.npd_id.filter(|_| entity.monday_item_id.is_none())?;
        let board = entity
            .board_id
            .or_else(|| self.settings.board_for(entity.kind))?;
        let column = self
            .settings
            .mapping
            .for_kind(entity.kind)
            .npd_id_column
            .clone();
        Some((board, column, npd_id))
    }

    /// One lookup request: what it found for each of `jobs`, whose entities carry `ids`.
    async fn ask(
        &self,
        monday: &dyn MondayApi,
        board: BoardId,
        column: &str,
        jobs: Vec<i64>,
        ids: Vec<NpdId>,
    ) -> LedgerResult<Found> {
        let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let answer = find(monday, board, column, &texts).await;
        self.observe(monday, None).await?;
        Ok(jobs
            .into_iter()
            .zip(&texts)
            .map(|(job, npd_id)| {
                let item = answer
                    .as_ref()
                    .map(|items| pick(items, npd_id, texts.len() == 1));
                (job, item.map_err(Clone::clone))
            })
            .collect())
    }

    fn board_of(&self, p: &Prepared) -> Option<BoardId> {
        p.entity
            .board_id
            .or_else(|| self.settings.board_for(p.entity.kind))
    }

    /// What one job sends.
    async fn plan(
        &self,
        p: &Prepared,
        found: &HashMap<i64, Result<Option<MondayItemId>, ConnectorError>>,
    ) -> Plan {
        if self.monday.is_none() {
            return Plan::Done(Err(not_configured(Side::Monday, "MONDAY_API_TOKEN")));
        }
        match &p.work {
            Work::PushItem {
                values,
                all,
                npd_id,
            } => {
                let found = match found.get(&p.job.id) {
                    Some(Err(e)) => return Plan::Done(Err(e.clone())),
                    Some(Ok(item)) => *item,
                    None => None,
                };
                // A push of every field, or one asked to (a backfill's link), writes the npd_id
                // column too.
                self.plan_push(p, values, *all || *npd_id, found).await
            }
            Work::ArchiveItem => match p.entity.monday_item_id {
                Some(item) => Plan::Send(Mutation::Archive { item }, Expect::Archived { item }),
                None => Plan::Done(Ok(Sent::Archived { item_id: None })),
            },
            _ => Plan::Done(Ok(Sent::Nothing)),
        }
    }

    /// The create of an unlinked entity's item, or the update of its (linked or adopted) item.
    async fn plan_push(
        &self,
        p: &Prepared,
        values: &BTreeMap<String, FieldValue>,
        all: bool,
        found: Option<MondayItemId>,
    ) -> Plan {
        let Some(board) = self.board_of(p) else {
            return Plan::Done(Err(not_configured(Side::Monday, "the board id")));
        };
        let npd_id = p.entity.npd_id.map(|id| id.to_string()).unwrap_or_default();
        let mapping = self.settings.mapping.for_kind(p.entity.kind);
        let item_name = mapping.item_name(&self.name_values(p, values).await);
        let values = &mapping.with_org_items(values, &p.links);
        let (item, adopted) = match (p.entity.monday_item_id, found) {
            (Some(item), _) => (item, false),
            (None, Some(item)) => (item, true),
            (None, None) => {
                let filled: BTreeMap<String, FieldValue> = values
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .map(|(f, v)| (f.clone(), v.clone()))
                    .collect();
                // What cannot be written is left out (and recorded when the write lands).
                let columns = mapping.monday_column_values(&filled, Some(&npd_id)).columns;
                let create = Mutation::Create {
                    board,
                    item_name,
                    columns,
                };
                return Plan::Send(create, Expect::Created { board });
            }
        };
        let mut columns = mapping
            .monday_column_values(values, (all || adopted).then_some(npd_id.as_str()))
            .columns;
        if adopted || mapping.item_name.iter().any(|f| values.contains_key(f)) {
            columns.set_item_name(&item_name);
        }
        let expect = Expect::Updated {
            item,
            board,
            adopted,
        };
        if columns.is_empty() {
            return Plan::Done(Ok(sent(expect, item)));
        }
        Plan::Send(
            Mutation::Update {
                board,
                item,
                columns,
            },
            expect,
        )
    }

    /// The values of the item-name fields: the ones being sent, else what NPD holds.
    async fn name_values(
        &self,
        p: &Prepared,
        values: &BTreeMap<String, FieldValue>,
    ) -> BTreeMap<String, FieldValue> {
        let mut out = values.clone();
        let mapping = self.settings.mapping.for_kind(p.entity.kind);
        if mapping.item_name.iter().all(|f| values.contains_key(f)) {
            return out;
        }
        if let Ok(mut tx) = self.store.begin_read().await {
            if let Ok(fields) = entities::load_fields(&mut tx, p.entity.id).await {
                for f in &mapping.item_name {
                    out.entry(f.clone())
                        .or_insert_with(|| fields.get(f).and_then(|s| s.npd.clone()));
                }
            }
            let _ = tx.rollback().await;
        }
        out
    }

    /// Sends one chunk of mutations in one request and records each job's end in `ends`.
    /// Deferred: the budget is spent; the chunk's jobs wait.
    async fn send(
        &self,
        chunk: Vec<(Prepared, Mutation, Expect)>,
        ends: &mut Vec<(i64, JobEnd)>,
    ) -> LedgerResult<Spent<(), Deferral>> {
        let jobs: Vec<&Prepared> = chunk.iter().map(|(p, _, _)| p).collect();
        let points = chunk.iter().map(|(_, m, _)| m.points()).sum();
        if let Err(wait) = self.spend(Cost::request(points), &jobs).await? {
            let waiting: Vec<Prepared> = chunk.into_iter().map(|(p, _, _)| p).collect();
            return Ok(Spent::Deferred((waiting, wait)));
        }
        let results = self.request(&chunk).await?;
        let mut outcomes = Vec::with_capacity(chunk.len());
        for ((p, _, expect), result) in chunk.iter().zip(results) {
            let sent = match (result, expect) {
                (Ok(item), expect) => Ok(sent(*expect, item)),
                // Already gone: nothing left to archive.
                (Err(e), Expect::Archived { .. }) if e.class == FailureClass::NotFound => {
                    Ok(Sent::Archived { item_id: None })
                }
                (Err(e), _) => Err(e),
            };
            outcomes.push((p, sent));
        }
        ends.extend(self.record_all(outcomes).await?);
        Ok(Spent::Sent(()))
    }

    /// The request of one chunk: a single mutation as its own document under its job's key,
    /// several as aliases under a key derived from the request. One result per mutation.
    async fn request(
        &self,
        chunk: &[(Prepared, Mutation, Expect)],
    ) -> LedgerResult<Vec<Result<MondayItemId, ConnectorError>>> {
        let Some(monday) = self.monday.as_deref() else {
            let e = not_configured(Side::Monday, "MONDAY_API_TOKEN");
            return Ok(chunk.iter().map(|_| Err(e.clone())).collect());
        };
        if let [(p, mutation, _)] = chunk {
            let result = single(monday, p, mutation).await;
            self.observe(monday, None).await?;
            return Ok(vec![result]);
        }
        let mutations: Vec<Mutation> = chunk.iter().map(|(_, m, _)| m.clone()).collect();
        let key = batch_key(chunk);
        let answer = monday.mutate(&mutations, &key).await;
        let complexity = answer.as_ref().ok().and_then(|a| a.complexity_left);
        self.observe(monday, complexity).await?;
        Ok(match answer {
            Ok(batched) => batched.results,
            Err(e) => chunk.iter().map(|_| Err(e.clone())).collect(),
        })
    }
}

/// What a job achieved once its mutation answered `item`.
fn sent(expect: Expect, item: MondayItemId) -> Sent {
    match expect {
        Expect::Created { board } => Sent::Item {
            item_id: item,
            board_id: board,
            created: true,
            adopted: false,
        },
        Expect::Updated {
            item,
            board,
            adopted,
        } => Sent::Item {
            item_id: item,
            board_id: board,
            created: false,
            adopted,
        },
        Expect::Archived { item } => Sent::Archived {
            item_id: Some(item),
        },
    }
}

/// One job's key per mutation: stable across the job's retries, and distinct between the create
/// and the update a retried create may turn into (an item adopted by its npd_id), since Monday
/// answers a reused key with the first answer whatever the request.
fn key_of(job_key: &str, mutation: &Mutation) -> String {
    format!("{job_key}:{}", mutation.operation())
}

/// A batch's key: the same jobs (under their current keys) sending the same mutations get the
/// same key, so a retried batch replays Monday's first answer; any other batch gets another.
fn batch_key(chunk: &[(Prepared, Mutation, Expect)]) -> String {
    let mut hash = Sha256::new();
    for (p, mutation, _) in chunk {
        hash.update(key_of(&p.job.idempotency_key, mutation));
        hash.update(format!("{mutation:?}"));
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("npd-monday-gateway:batch:{hex}")
}

/// One mutation as its own document.
async fn single(
    monday: &dyn MondayApi,
    p: &Prepared,
    mutation: &Mutation,
) -> Result<MondayItemId, ConnectorError> {
    let key = key_of(&p.job.idempotency_key, mutation);
    match mutation {
        Mutation::Create {
            board,
            item_name,
            columns,
        } => monday.create_item(*board, item_name, columns, &key).await,
        Mutation::Update {
            board,
            item,
            columns,
        } => monday
            .change_multiple_column_values(*board, *item, columns, &key)
            .await
            .map(|()| *item),
        Mutation::Archive { item } => monday.archive_item(*item, &key).await.map(|()| *item),
    }
}

/// The items carrying `ids` in `column` (one id: the single lookup, active items first).
async fn find(
    monday: &dyn MondayApi,
    board: BoardId,
    column: &str,
    ids: &[String],
) -> Result<Vec<FoundItem>, ConnectorError> {
    if let [id] = ids {
        let items = monday.find_items_by_column(board, column, id).await?;
        return Ok(items
            .into_iter()
            .map(|item| FoundItem {
                id: item,
                text: Some(id.clone()),
                active: true,
            })
            .collect());
    }
    monday.find_items_by_column_values(board, column, ids).await
}

/// The item for `npd_id` among `items`: an active one before an archived one.
fn pick(items: &[FoundItem], npd_id: &str, only: bool) -> Option<MondayItemId> {
    let mine = |i: &&FoundItem| {
        only || i
            .text
            .as_deref()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(npd_id))
    };
    items
        .iter()
        .filter(mine)
        .find(|i| i.active)
        .or_else(|| items.iter().find(mine))
        .map(|i| i.id)
}
