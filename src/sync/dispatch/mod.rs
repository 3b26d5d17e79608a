//! Dispatch: run one claimed outbox job against Monday or NPD and record its outcome.
//!
//! Owns: `Dispatcher` and the three steps of a job, none of which holds a transaction across a
//! remote call, each in its own submodule:
//! 1. `prepare` (one transaction, fenced by the lease token): on the first attempt, compute what
//!    to send from the field states and freeze it in the job, so every retry sends the same thing
//!    under the same idempotency key; record the values as pending before the call, so an echo
//!    arriving before step 3 is recognised;
//! 2. call the remote, answering a typed `Sent`: NPD jobs one by one (`call`), Monday jobs in
//!    batches (`monday`: one lookup request for the creates, or for a whole claim of several
//!    batches (`look_up_claim`), then up to `[monday] batch_max`
//!    mutations per request as aliases, each request spent from the account's Monday budget,
//!    `sync::budget`; when the budget is spent the jobs wait, their attempt uncounted);
//! 3. `outcome` (one transaction, fenced): success (remote ids, confirmed values, follow-up
//!    jobs), retry later (the one retry policy), or dead letter. A worker whose lease was taken
//!    over finds the fence closed and changes nothing.
//!
//! On SQLite, whose writes are serial and shared with ingest and processing, step 1 of a batch's
//! jobs runs in one transaction, and so does step 3 of a Monday batch's (each job still fenced on
//! its own): a batch of 25 creates costs two commits, not fifty. (NPD jobs, called one after the
//! other, record each outcome as it comes.) On PostgreSQL each job keeps its
//! own transactions, so a batch never holds its entities' row locks together.
//!
//! Creates are idempotent beyond Monday's 30-minute key window: before `create_item` the ledger
//! link and an `items_page_by_column_values` lookup on the npd_id column are checked, and the new
//! item id is committed (with the write-back job to NPD) in the same transaction as the job.
//! May import: std, rand, sha2, tracing, crate::{config, domain, metrics, ledger, connectors, sync}.

mod call;
mod monday;

pub use monday::Found;
mod outcome;
mod prepare;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::connectors::{ConnectorError, FailureClass, MondayApi, NpdApi};
use crate::domain::budget::Cost;
use crate::domain::entity::Side;
use crate::domain::job::{Priority, Work};
use crate::domain::mapping::OrgLinks;
use crate::ledger::entities::EntityRow;
use crate::ledger::jobs::JobRow;
use crate::ledger::{LedgerResult, Store};
use crate::metrics::Metrics;
use crate::sync::budget::MondayBudget;
use crate::sync::retry::RetryPolicy;

/// Expired last attempts the reaper settles in one round (the rest wait for the next).
const REAP_BATCH: i64 = 100;

/// The dispatch use case: the clients, the policy, the Monday budget and this worker's name.
#[derive(Clone)]
pub struct Dispatcher {
    settings: Arc<Settings>,
    store: Store,
    monday: Option<Arc<dyn MondayApi>>,
    npd: Option<Arc<dyn NpdApi>>,
    policy: RetryPolicy,
    budget: Arc<MondayBudget>,
    worker: String,
    metrics: Metrics,
}

/// The outbound systems a dispatcher calls (`None`: not configured).
#[derive(Clone, Default)]
pub struct Remotes {
    pub monday: Option<Arc<dyn MondayApi>>,
    pub npd: Option<Arc<dyn NpdApi>>,
}

/// How one job ended, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Done,
    RetryLater(Duration),
    Dead(String),
    /// The lease was taken over: this worker's outcome was refused.
    Fenced,
    /// Not sent: the Monday budget is spent for this long; the job waits, its attempt uncounted.
    Deferred(Duration),
}

/// A claimed job whose work is frozen and marked as going out.
pub(crate) struct Prepared {
    job: JobRow,
    token: i64,
    work: Work,
    entity: EntityRow,
    /// The organizations' items its board_relation values are written as.
    links: OrgLinks,
}

/// The points of a create: room for one lets routine Monday work be claimed.
const CREATE_POINTS: u64 = 10_000;

impl Dispatcher {
    pub fn new(settings: Arc<Settings>, store: Store, remotes: Remotes, worker: String) -> Self {
        let budget = Arc::new(MondayBudget::new(&settings.monday, &store));
        Dispatcher::with_budget(settings, store, remotes, worker, budget)
    }

    /// A dispatcher spending from `budget` (shared by this process's dispatchers and tests).
    pub fn with_budget(
        settings: Arc<Settings>,
        store: Store,
        remotes: Remotes,
        worker: String,
        budget: Arc<MondayBudget>,
    ) -> Self {
        Dispatcher {
            policy: RetryPolicy::from(&settings.sync),
            settings,
            store,
            monday: remotes.monday,
            npd: remotes.npd,
            budget,
            worker,
            metrics: Metrics::default(),
        }
    }

    /// Counts this dispatcher's outcomes (sync latency, dead letters) in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn budget(&self) -> &Arc<MondayBudget> {
        &self.budget
    }

    /// Most Monday mutations one request carries.
    pub fn batch_max(&self) -> usize {
        self.settings.monday.batch_max.max(1)
    }

    /// How long a partial Monday batch waits for the batches in flight (`[monday]
    /// batch_fill_wait_ms`).
    pub fn batch_fill_wait(&self) -> Duration {
        Duration::from_millis(self.settings.monday.batch_fill_wait_ms)
    }

    /// Claims up to `limit` jobs for this worker. Monday jobs are claimed only at priorities the
    /// Monday budget has room for (none at all while it is spent), so a job never sits on its
    /// lease waiting for the budget.
    pub async fn claim(&self, limit: i64) -> LedgerResult<Vec<JobRow>> {
        self.claim_to(None, limit).await
    }

    /// `claim` for the jobs to one side only (`None`: both).
    pub async fn claim_to(&self, side: Option<Side>, limit: i64) -> LedgerResult<Vec<JobRow>> {
        let lease_ms = i64::try_from(self.settings.sync.lease_ms).unwrap_or(i64::MAX);
        let monday_floor = self.floor(side).await?;
        self.store
            .claim_jobs_to(side, &self.worker, lease_ms, limit, monday_floor)
            .await
    }

    /// What `claim_to(Some(side), limit)` would claim now: how many jobs, and their highest
    /// priority (nothing is leased).
    pub async fn ready_to(&self, side: Side, limit: i64) -> LedgerResult<(i64, Option<Priority>)> {
        self.store
            .ready_jobs_to(side, limit, self.floor(Some(side)).await?)
            .await
    }

    /// The lowest priority of Monday jobs the budget has room for (`None`: none at all). A claim
    /// to NPD alone takes no Monday job, so it does not ask the budget.
    async fn floor(&self, side: Option<Side>) -> LedgerResult<Option<Priority>> {
        Ok(match side {
            Some(Side::Npd) => None,
            _ => self.budget.room(Cost::request(CREATE_POINTS)).await?,
        })
    }

    /// The lease reaper: jobs whose lease expired go back to the queue; a job whose expired lease
    /// was its last attempt is settled as that attempt's failure (the dead letters, its entity
    /// failed), so `attempts` never passes `max_attempts`. How many leases it ended.
    pub async fn reap(&self) -> LedgerResult<u64> {
        let mut reaped = self.store.reap_expired_leases().await?;
        for job in self.store.expired_last_attempts(REAP_BATCH).await? {
            let Some(token) = job.lease_token else {
                continue;
            };
            let Some((work, entity, links)) = self.prepare(&job, token).await? else {
                continue;
            };
            let p = Prepared {
                job,
                token,
                work,
                entity,
                links,
            };
            let lost = ConnectorError {
                system: p.job.target,
                class: FailureClass::Retryable,
                status: None,
                code: None,
                message: "the lease expired during the last attempt: its outcome is unknown".into(),
                retry_after: None,
            };
            let end = self.record(&p, Err(lost)).await?;
            if !matches!(end, JobEnd::Fenced) {
                log_end(p.job.id, &end);
                reaped += 1;
            }
        }
        Ok(reaped)
    }

    /// Runs one claimed job to its recorded outcome.
    pub async fn run(&self, job: JobRow) -> LedgerResult<JobEnd> {
        let id = job.id;
        let ends = self.run_batch(vec![job]).await?;
        Ok(ends
            .into_iter()
            .find(|(j, _)| *j == id)
            .map_or(JobEnd::Fenced, |(_, end)| end))
    }

    /// Runs claimed jobs to their recorded outcomes: NPD jobs one call each, Monday jobs batched
    /// (lookups and mutations, `[monday] batch_max` per request). The end of each, by job id.
    #[tracing::instrument(skip_all, fields(jobs = jobs.len()))]
    pub async fn run_batch(&self, jobs: Vec<JobRow>) -> LedgerResult<Vec<(i64, JobEnd)>> {
        self.run_batch_with(jobs, &Found::new()).await
    }

    /// `run_batch` with what `look_up_claim` already found for the claim these jobs are part of.
    pub async fn run_batch_with(
        &self,
        jobs: Vec<JobRow>,
        claimed: &Found,
    ) -> LedgerResult<Vec<(i64, JobEnd)>> {
        let (prepared, fenced) = self.prepare_all(jobs).await?;
        let mut ends: Vec<(i64, JobEnd)> =
            fenced.into_iter().map(|id| (id, JobEnd::Fenced)).collect();
        let (monday, npd): (Vec<Prepared>, Vec<Prepared>) = prepared
            .into_iter()
            .partition(|p| p.job.target == Side::Monday);
        // Each NPD call's outcome is recorded as soon as it answers: the calls run one after the
        // other, and holding outcomes until the last one would let a slow NPD run the group's
        // leases out before anything is recorded.
        for p in &npd {
            let result = self.call_npd(&p.job, &p.entity, &p.work).await;
            ends.push((p.job.id, self.record(p, result).await?));
        }
        ends.extend(self.run_monday(monday, claimed).await?);
        for (id, end) in &ends {
            log_end(*id, end);
        }
        Ok(ends)
    }
}

fn log_end(job: i64, end: &JobEnd) {
    match end {
        JobEnd::Done => tracing::info!(job.id = job, "job done"),
        JobEnd::RetryLater(d) => {
            tracing::warn!(
                job.id = job,
                retry_in_ms = d.as_millis() as u64,
                "job will be retried"
            )
        }
        JobEnd::Dead(e) => {
            tracing::warn!(job.id = job, error = %e, "job moved to the dead letters")
        }
        JobEnd::Fenced => {
            tracing::warn!(job.id = job, "lease lost: outcome refused by the fence")
        }
        JobEnd::Deferred(d) => {
            tracing::info!(
                job.id = job,
                wait_ms = d.as_millis() as u64,
                "job waits for the Monday budget"
            )
        }
    }
}

/// A call that cannot be made: `what` is not configured.
fn not_configured(system: Side, what: &str) -> ConnectorError {
    ConnectorError::local(system, format!("{what} is not configured"))
}
