//! Dispatch: run one claimed outbox job against Monday or NPD and record its outcome.
//!
//! Owns: `Dispatcher` and the three steps of a job, none of which holds a transaction across a
//! remote call, each in its own submodule:
//! 1. `prepare` (one transaction, fenced by the lease token): on the first attempt, compute what
//!    to send from the field states and freeze it in the job, so every retry sends the same thing
//!    under the same idempotency key; record the values as pending before the call, so an echo
//!    arriving before step 3 is recognised;
//! 2. `call` the remote (through `MondayApi` / `NpdApi`) with the job's idempotency key, answering
//!    a typed `Sent`;
//! 3. `outcome` (one transaction, fenced): success (remote ids, confirmed values, follow-up
//!    jobs), retry later (the one retry policy), or dead letter. A worker whose lease was taken
//!    over finds the fence closed and changes nothing.
//!
//! Creates are idempotent beyond Monday's 30-minute key window: before `create_item` the ledger
//! link and an `items_page_by_column_values` lookup on the npd_id column are checked, and the new
//! item id is committed (with the write-back job to NPD) in the same transaction as the job.
//! May import: std, rand, tracing, crate::{config, domain, metrics, ledger, connectors, sync}.

mod call;
mod outcome;
mod prepare;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::connectors::budget::{Budget, Observed, Urgency};
use crate::connectors::{MondayApi, NpdApi};
use crate::domain::job::Priority;
use crate::ledger::jobs::JobRow;
use crate::ledger::{LedgerResult, Store};
use crate::metrics::Metrics;
use crate::sync::retry::RetryPolicy;

/// The dispatch use case: the clients, the policy, the Monday budget and this worker's name.
#[derive(Clone)]
pub struct Dispatcher {
    settings: Arc<Settings>,
    store: Store,
    monday: Option<Arc<dyn MondayApi>>,
    npd: Option<Arc<dyn NpdApi>>,
    policy: RetryPolicy,
    budget: Arc<Budget>,
    worker: String,
    metrics: Metrics,
}

/// The outbound systems a dispatcher calls (`None`: not configured).
#[derive(Clone, Default)]
pub struct Remotes {
    pub monday: Option<Arc<dyn MondayApi>>,
    pub npd: Option<Arc<dyn NpdApi>>,
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
    pub fn new(settings: Arc<Settings>, store: Store, remotes: Remotes, worker: String) -> Self {
        let policy = RetryPolicy::from(&settings.sync);
        let budget = Arc::new(Budget::new(
            settings.monday.requests_per_minute,
            settings.monday.complexity_per_minute,
        ));
        Dispatcher {
            settings,
            store,
            monday: remotes.monday,
            npd: remotes.npd,
            policy,
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

    /// The Monday budget this dispatcher spends (read-only use: `/metrics`).
    pub fn budget(&self) -> Arc<Budget> {
        Arc::clone(&self.budget)
    }

    /// Claims up to `limit` jobs for this worker. Monday jobs are claimed only while the Monday
    /// budget has room (admin pushes only, when only the reserve is left), so a job never sits
    /// on its lease waiting for the budget.
    pub async fn claim(&self, limit: i64) -> LedgerResult<Vec<JobRow>> {
        let lease_ms = i64::try_from(self.settings.sync.lease_ms).unwrap_or(i64::MAX);
        // Room for a whole job: at most a lookup and a create.
        let monday_floor = match self.budget.room(2, QUERY_POINTS + CREATE_POINTS) {
            Some(Urgency::Routine) => Some(Priority::Backfill),
            Some(Urgency::Admin) => Some(Priority::Admin),
            None => None,
        };
        self.store
            .claim_jobs(&self.worker, lease_ms, limit, monday_floor)
            .await
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

    /// Spends Monday budget for one call (waits if this process is over it).
    async fn spend(&self, points: u64, job: &JobRow) {
        let urgency = match job.priority {
            Priority::Admin => Urgency::Admin,
            Priority::Live | Priority::Drift | Priority::Backfill => Urgency::Routine,
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
    fn observe(&self, monday: &dyn MondayApi) {
        if let Some(rl) = monday.last_rate_limit() {
            self.budget.observe(Observed {
                requests_remaining: rl.minute_remaining,
                points_remaining: rl.complexity_remaining,
                reset_in: rl.reset_in,
            });
        }
    }
}
