//! The Monday budget the dispatcher spends from: one for the whole account.
//!
//! Owns: `MondayBudget`. On PostgreSQL the state lives in the ledger (`ledger::budget`) and every
//! replica spends from it under its row lock; on SQLite (one process) it lives in memory. The
//! rules are `domain::budget`'s; the clock is injectable so tests can cross midnight.
//! May import: std, tokio, tracing, crate::{config, domain, ledger}.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::MondaySettings;
use crate::domain::budget::{BudgetLimits, BudgetState, Cost, Remaining};
use crate::domain::job::Priority;
use crate::ledger::{LedgerResult, Store, now_ms};

/// The clock the budget reads: unix milliseconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Where the budget's state is kept.
enum Book {
    /// This process only (SQLite).
    Local(Mutex<BudgetState>),
    /// Every replica (PostgreSQL).
    Shared(Store),
}

/// Monday's budget for the account, with the priorities' shares.
pub struct MondayBudget {
    limits: BudgetLimits,
    book: Book,
    clock: Clock,
}

impl std::fmt::Debug for MondayBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MondayBudget")
            .field("limits", &self.limits)
            .field("shared", &matches!(self.book, Book::Shared(_)))
            .finish()
    }
}

/// A short wait for the window to turn is worth holding a lease for; a longer one is not.
pub const MAX_WAIT_ON_LEASE: Duration = Duration::from_secs(5);

impl MondayBudget {
    /// The budget of `settings`, shared through `store` when it is PostgreSQL.
    pub fn new(settings: &MondaySettings, store: &Store) -> Self {
        let book = match store {
            Store::Sqlite(_) => Book::Local(Mutex::default()),
            Store::Postgres(_) => Book::Shared(store.clone()),
        };
        MondayBudget {
            limits: BudgetLimits {
                requests_per_minute: settings.requests_per_minute.max(1),
                points_per_minute: settings.complexity_per_minute.max(1),
                calls_per_day: settings.calls_per_day,
            },
            book,
            clock: Arc::new(now_ms),
        }
    }

    /// The same budget read through another clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn limits(&self) -> BudgetLimits {
        self.limits
    }

    /// Runs `decide` on the state as it is now (more than once on PostgreSQL when another
    /// replica spent meanwhile).
    async fn with_state<R>(&self, decide: impl Fn(&mut BudgetState, i64) -> R) -> LedgerResult<R> {
        let now = (self.clock)();
        match &self.book {
            Book::Local(state) => {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                Ok(decide(&mut state, now))
            }
            Book::Shared(store) => store.with_monday_budget(|state| decide(state, now)).await,
        }
    }

    /// Spends `cost` for `priority` if it fits now; else how long until it might.
    pub async fn try_spend(
        &self,
        cost: Cost,
        priority: Priority,
    ) -> LedgerResult<Result<(), Duration>> {
        let limits = self.limits;
        self.with_state(|state, now| state.try_spend(&limits, cost, priority, now))
            .await
    }

    /// Spends `cost`, waiting for it to fit as long as the wait is at most `max_wait`. `Err` with
    /// the wait when it is longer (the caller gives its work back instead of waiting).
    pub async fn acquire(
        &self,
        cost: Cost,
        priority: Priority,
        max_wait: Duration,
    ) -> LedgerResult<Result<Duration, Duration>> {
        let started = tokio::time::Instant::now();
        loop {
            match self.try_spend(cost, priority).await? {
                Ok(()) => return Ok(Ok(started.elapsed())),
                Err(wait) if started.elapsed() + wait > max_wait => return Ok(Err(wait)),
                Err(wait) => tokio::time::sleep(wait.max(Duration::from_millis(5))).await,
            }
        }
    }

    /// The lowest priority that may spend `cost` now (`None`: nobody). Spends nothing.
    pub async fn room(&self, cost: Cost) -> LedgerResult<Option<Priority>> {
        let limits = self.limits;
        let now = (self.clock)();
        Ok(self.read().await?.room(&limits, cost, now))
    }

    /// The state as it is now, without writing.
    async fn read(&self) -> LedgerResult<BudgetState> {
        match &self.book {
            Book::Local(state) => Ok(state.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            Book::Shared(store) => store.monday_budget_state().await,
        }
    }

    /// Takes in Monday's report of what remains (`RateLimit` header, `complexity` answer).
    pub async fn observe(
        &self,
        requests_left: Option<u64>,
        points_left: Option<u64>,
        reset_in: Option<Duration>,
    ) -> LedgerResult<()> {
        if requests_left.is_none() && points_left.is_none() {
            return Ok(());
        }
        self.with_state(|state, now| state.observe(requests_left, points_left, reset_in, now))
            .await
    }

    /// What remains now, per kind.
    pub async fn remaining(&self) -> LedgerResult<Remaining> {
        let now = (self.clock)();
        Ok(self.read().await?.remaining(&self.limits, now))
    }
}
