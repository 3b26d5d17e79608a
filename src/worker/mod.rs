//! Long-running loops over the `sync` use cases: the processors (inbox to decisions and jobs;
//! `[sync] processors` tasks on PostgreSQL, each claiming its own lanes, one on SQLite), the
//! dispatcher (jobs to Monday and NPD, several at once, each side in its own slots), the lease
//! reaper, the retention pruner (every `[retention] prune_interval`, off at `0s`), and the scan
//! loop (scheduled drift scans by `[drift] interval`, and runs whose process died resumed).
//!
//! Owns: `Workers` (spawning, waking, graceful stop), `WorkerSettings`, and when the dispatcher
//! claims (`claim_limit`: while a Monday batch is in flight, partial batches wait to fill for up
//! to `[monday] batch_fill_wait_ms`, admin pushes excepted). On stop the dispatcher
//! claims nothing new, lets in-flight jobs finish within the grace period, and releases the leases
//! of any it had to abandon so another worker (or this one after a restart) picks them up at once.
//! May import: std, tokio, tokio-util, tracing, crate::{config, domain, ledger, sync}.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, OnceCell};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseBackend, RetentionSettings};
use crate::domain::entity::Side;
use crate::domain::job::Priority;
use crate::domain::scan::ScanKind;
use crate::ledger::jobs::JobRow;
use crate::ledger::{LedgerResult, Store};
use crate::sync::dispatch::{Dispatcher, Found};
use crate::sync::process::Processor;
use crate::sync::scan::Scans;

/// Inbox events processed per transaction: large enough to amortise commits, small enough that
/// ingest (which shares SQLite's single writer) never waits long behind processing.
const PROCESS_BATCH: i64 = 50;

/// Wakes workers early when new work exists (they also poll), and holds processing while an
/// operator (or a test that needs two deliveries to meet in the inbox) pauses it.
#[derive(Debug, Clone, Default)]
pub struct Wake {
    pub process: Arc<Notify>,
    pub dispatch: Arc<Notify>,
    processing_paused: Arc<AtomicBool>,
    /// Held (shared) by every processing task for the length of one batch.
    in_batch: Arc<tokio::sync::RwLock<()>>,
    dispatch_paused: Arc<AtomicBool>,
}

impl Wake {
    /// Holds inbox processing (ingress keeps accepting; dispatch keeps sending what is queued),
    /// and returns once no batch is running: a batch begun before the pause has committed, so
    /// nothing that arrives from now on is processed until `resume_processing`.
    pub async fn pause_processing(&self) {
        self.processing_paused.store(true, Ordering::SeqCst);
        drop(self.in_batch.write().await);
    }

    pub fn resume_processing(&self) {
        self.processing_paused.store(false, Ordering::SeqCst);
        self.process.notify_one();
    }

    /// Holds the claiming of outbox jobs (what is in flight finishes; processing keeps queueing),
    /// so that a test can let several jobs meet in the outbox before one claim takes them all.
    pub fn pause_dispatch(&self) {
        self.dispatch_paused.store(true, Ordering::SeqCst);
    }

    pub fn resume_dispatch(&self) {
        self.dispatch_paused.store(false, Ordering::SeqCst);
        self.dispatch.notify_one();
    }

    fn processing_paused(&self) -> bool {
        self.processing_paused.load(Ordering::SeqCst)
    }
}

/// The running loops.
pub struct Workers {
    tasks: JoinSet<()>,
}

/// How the loops run (from `[sync]` and the HTTP shutdown grace).
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Dispatch tasks run at once for each side (a Monday task sends one batch, an NPD task one
    /// job).
    pub concurrency: usize,
    /// Processing tasks (one on SQLite, whose writes are serial).
    pub processors: usize,
    /// How often idle loops look for work.
    pub poll: Duration,
    /// A claimed job's lease; the reaper frees expired ones.
    pub lease: Duration,
    /// How long in-flight jobs may take to finish on stop.
    pub grace: Duration,
    /// What is pruned, and how often.
    pub retention: RetentionSettings,
}

impl Workers {
    /// Starts the processor, the dispatcher (with `concurrency` jobs at once) and the reaper.
    pub fn spawn(
        processor: Processor,
        dispatcher: Dispatcher,
        wake: Wake,
        settings: WorkerSettings,
        shutdown: CancellationToken,
    ) -> Workers {
        let WorkerSettings {
            concurrency,
            processors,
            poll,
            lease,
            grace,
            retention,
        } = settings;
        let mut tasks = JoinSet::new();
        let processors = match processor.store().backend() {
            DatabaseBackend::Sqlite => 1,
            DatabaseBackend::Postgres => processors.max(1),
        };
        for _ in 0..processors {
            tasks.spawn(process_loop(
                processor.clone(),
                wake.clone(),
                poll,
                shutdown.clone(),
            ));
        }
        tasks.spawn(dispatch_loop(
            dispatcher.clone(),
            wake,
            concurrency,
            poll,
            grace,
            shutdown.clone(),
        ));
        if !retention.prune_interval.is_zero() {
            let store = dispatcher.store().clone();
            tasks.spawn(prune_loop(store, retention, shutdown.clone()));
        }
        tasks.spawn(reap_loop(dispatcher, lease, shutdown));
        Workers { tasks }
    }

    /// Adds the scan loop: it resumes backfills and drift scans whose process died, and starts a
    /// drift scan every `interval` (zero: never), counted from the last scan's start, so a
    /// restart does not scan again early and replicas do not scan side by side.
    pub fn spawn_scans(&mut self, scans: Scans, interval: Duration, shutdown: CancellationToken) {
        self.tasks.spawn(scan_loop(scans, interval, shutdown));
    }

    /// Waits for every loop to end (they end when the shutdown token is cancelled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn process_loop(
    processor: Processor,
    wake: Wake,
    poll: Duration,
    shutdown: CancellationToken,
) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let batch = {
            let _in_batch = wake.in_batch.read().await;
            if wake.processing_paused() {
                Ok(0)
            } else {
                processor.process_batch(PROCESS_BATCH).await
            }
        };
        match batch {
            Ok(0) => {}
            Ok(n) => {
                wake.dispatch.notify_one();
                if n >= usize::try_from(PROCESS_BATCH).unwrap_or(usize::MAX) {
                    // A full batch: more is waiting, so a sibling task joins in (other lanes).
                    wake.process.notify_one();
                }
                continue;
            }
            Err(e) => tracing::warn!(error = %e, "processing failed; will retry"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.process.notified() => {},
            () = tokio::time::sleep(poll) => {},
        }
    }
}

/// A dispatch task's jobs (all to one side) and when it started.
struct Task {
    jobs: Vec<JobRow>,
    since: tokio::time::Instant,
}

impl Task {
    fn side(&self) -> Option<Side> {
        self.jobs.first().map(|j| j.target)
    }
}

/// The dispatcher's tasks in flight, by task id.
type InFlight = HashMap<tokio::task::Id, Task>;

async fn dispatch_loop(
    dispatcher: Dispatcher,
    wake: Wake,
    concurrency: usize,
    poll: Duration,
    grace: Duration,
    shutdown: CancellationToken,
) {
    let mut running: JoinSet<()> = JoinSet::new();
    let mut in_flight = InFlight::new();
    let batch_max = dispatcher.batch_max();
    let fill_wait = dispatcher.batch_fill_wait();
    loop {
        while let Some(done) = running.try_join_next_with_id() {
            forget(&mut in_flight, done);
            // A job finished: the next job of its entity may be runnable now.
            wake.dispatch.notify_one();
        }
        if shutdown.is_cancelled() {
            break;
        }
        // Each side has its own `concurrency` slots: jobs stuck on a slow or failing side never
        // take the other side's (an NPD outage does not stop Monday writes, nor the reverse).
        let mut claimed = 0;
        if !wake.dispatch_paused.load(Ordering::SeqCst) {
            for side in Side::ALL {
                let sending = filling(&in_flight, side, fill_wait);
                let free = concurrency.saturating_sub(busy(&in_flight, side));
                if free == 0 {
                    continue;
                }
                let limit = match claim_limit(&dispatcher, side, free, batch_max, sending).await {
                    Ok(0) => continue,
                    Ok(limit) => limit,
                    Err(e) => {
                        tracing::warn!(error = %e, "counting ready jobs failed; will retry");
                        continue;
                    }
                };
                match dispatcher.claim_to(Some(side), limit).await {
                    Ok(jobs) => {
                        claimed += jobs.len();
                        spawn_claim(&dispatcher, jobs, batch_max, &mut running, &mut in_flight);
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed; will retry"),
                }
            }
        }
        let room = Side::ALL
            .into_iter()
            .any(|side| busy(&in_flight, side) < concurrency);
        if claimed > 0 && room {
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => {},
            () = wake.dispatch.notified() => {},
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                forget(&mut in_flight, done);
                wake.dispatch.notify_one();
            },
            () = tokio::time::sleep(next_look(&in_flight, fill_wait, poll)) => {},
        }
    }
    // Graceful stop: in-flight calls get the grace period, then their leases are released.
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = running.join_next_with_id() => match next {
                Some(done) => forget(&mut in_flight, done),
                None => return,
            },
            () = &mut deadline => break,
        }
    }
    running.abort_all();
    let store = dispatcher.store().clone();
    for job in in_flight.into_values().flat_map(|task| task.jobs) {
        if let Some(token) = job.lease_token
            && let Err(e) = store.release_lease(job.id, token).await
        {
            tracing::warn!(job.id = job.id, error = %e, "could not release a lease; it will expire");
        }
    }
}

/// What the lookups of the whole claim found, asked once by the first batch that needs them (NPD
/// batches never wait for them). A failed read leaves each batch to look up its own.
async fn claim_lookups<'a>(
    dispatcher: &Dispatcher,
    jobs: &[JobRow],
    lookup: &'a OnceCell<Found>,
    claim: &[JobRow],
) -> &'a Found {
    static NONE: std::sync::LazyLock<Found> = std::sync::LazyLock::new(Found::new);
    if jobs.iter().all(|j| j.target != Side::Monday) {
        return &NONE;
    }
    lookup
        .get_or_init(|| async {
            dispatcher.look_up_claim(claim).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the claim's lookups failed; each batch looks up its own");
                Found::new()
            })
        })
        .await
}

/// The tasks in flight to `side` (a task's jobs all go to one side).
fn busy(in_flight: &InFlight, side: Side) -> usize {
    in_flight
        .values()
        .filter(|t| t.side() == Some(side))
        .count()
}

/// The tasks in flight to `side` that the next partial batch waits for: those sent within
/// `wait` (`[monday] batch_fill_wait_ms`: a request that hangs holds no one back for long).
fn filling(in_flight: &InFlight, side: Side, wait: Duration) -> usize {
    in_flight
        .values()
        .filter(|t| t.side() == Some(side) && t.since.elapsed() < wait)
        .count()
}

/// When the dispatcher looks for work again if nothing wakes it: after `poll`, or as soon as a
/// Monday task in flight stops holding partial batches back (`filling`), whichever comes first.
fn next_look(in_flight: &InFlight, wait: Duration, poll: Duration) -> Duration {
    in_flight
        .values()
        .filter(|t| t.side() == Some(Side::Monday))
        .map(|t| wait.saturating_sub(t.since.elapsed()))
        .filter(|left| !left.is_zero())
        .fold(poll, Duration::min)
}

/// How many jobs to claim to `side` into `free` slots while `sending` of its tasks are in flight.
/// Monday follows Nagle's rule: while one of its batches is in flight only full batches are
/// claimed (unless an admin's job is ready: it goes at once), so work that trickles in fills the
/// next batch instead of costing a request per few jobs; with nothing in flight whatever is ready
/// goes at once, so an idle gateway never waits to fill a batch.
async fn claim_limit(
    dispatcher: &Dispatcher,
    side: Side,
    free: usize,
    batch_max: usize,
    sending: usize,
) -> LedgerResult<i64> {
    let limit = i64::try_from(free * per_task(side, batch_max)).unwrap_or(i64::MAX);
    if side == Side::Npd || sending == 0 || batch_max == 1 {
        return Ok(limit);
    }
    let (ready, top) = dispatcher.ready_to(side, limit).await?;
    if top == Some(Priority::Admin) {
        return Ok(limit);
    }
    let full = i64::try_from(batch_max).unwrap_or(i64::MAX);
    Ok(ready / full * full)
}

/// The jobs one task to `side` runs: a Monday task sends a batch, an NPD task one job (a task of
/// several sequential NPD calls could outlast its leases when NPD is slow).
fn per_task(side: Side, batch_max: usize) -> usize {
    match side {
        Side::Monday => batch_max.max(1),
        Side::Npd => 1,
    }
}

/// Runs one side's claim: Monday jobs in batches of `batch_max` (one request each), NPD jobs one
/// task each. A claim of several Monday batches looks all its creates up in one request: the first
/// of its batches to start asks, the others wait for that answer.
fn spawn_claim(
    dispatcher: &Dispatcher,
    jobs: Vec<JobRow>,
    batch_max: usize,
    running: &mut JoinSet<()>,
    in_flight: &mut InFlight,
) {
    let lookup: Arc<OnceCell<Found>> = Arc::default();
    let claim = Arc::new(jobs.clone());
    let Some(side) = jobs.first().map(|j| j.target) else {
        return;
    };
    for group in jobs
        .chunks(per_task(side, batch_max))
        .map(<[JobRow]>::to_vec)
    {
        let d = dispatcher.clone();
        let ids: Vec<i64> = group.iter().map(|j| j.id).collect();
        let jobs = group.clone();
        let (lookup, claim) = (Arc::clone(&lookup), Arc::clone(&claim));
        let handle = running.spawn(async move {
            let found = claim_lookups(&d, &jobs, &lookup, &claim).await;
            if let Err(e) = d.run_batch_with(jobs, found).await {
                tracing::warn!(job.ids = ?ids, error = %e, "recording job outcomes failed; their leases will expire");
            }
        });
        let since = tokio::time::Instant::now();
        in_flight.insert(handle.id(), Task { jobs: group, since });
    }
}

fn forget(in_flight: &mut InFlight, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
    let id = match done {
        Ok((id, ())) => id,
        Err(e) => e.id(),
    };
    in_flight.remove(&id);
}

/// Runs every job of the outbox until none is open (jobs waiting for a retry are waited for),
/// `concurrency` tasks a side at a time, Monday jobs in batches of `[monday] batch_max`: what the
/// `backfill` command does after queuing its writes, so it works without a running `serve`.
pub async fn drain_outbox(
    dispatcher: &Dispatcher,
    concurrency: usize,
    poll: Duration,
) -> crate::ledger::LedgerResult<()> {
    let batch_max = dispatcher.batch_max();
    loop {
        // Like the dispatch loop: each side claims into its own slots, Monday jobs in batches.
        let mut running = JoinSet::new();
        let mut in_flight = InFlight::new();
        for side in Side::ALL {
            let slots = concurrency.max(1) * per_task(side, batch_max);
            let jobs = dispatcher
                .claim_to(Some(side), i64::try_from(slots).unwrap_or(1))
                .await?;
            spawn_claim(dispatcher, jobs, batch_max, &mut running, &mut in_flight);
        }
        if running.is_empty() {
            if dispatcher.store().open_job_count().await? == 0 {
                return Ok(());
            }
            // A job leased by a process that died comes back once its lease is over.
            dispatcher.reap().await?;
            tokio::time::sleep(poll).await;
            continue;
        }
        while running.join_next().await.is_some() {}
    }
}

/// How often the scan loop looks for abandoned runs and due scans.
const SCAN_POLL: Duration = Duration::from_secs(15);

async fn scan_loop(scans: Scans, interval: Duration, shutdown: CancellationToken) {
    let started = crate::ledger::now_ms();
    loop {
        for scan in [ScanKind::Backfill, ScanKind::Drift] {
            if let Err(e) = scans.resume_abandoned(scan).await {
                tracing::warn!(error = %e, scan = %scan, "resuming an abandoned run failed");
            }
        }
        if !interval.is_zero() {
            match drift_due(&scans, interval, started).await {
                Ok(Some(scope)) => match scans.start_drift(scope).await {
                    Ok(id) => drop(scans.run_drift(id).await),
                    Err(e) => tracing::warn!(error = %e, "a scheduled drift scan could not start"),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot tell whether a drift scan is due"),
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SCAN_POLL.min(interval.max(Duration::from_secs(1)))) => {},
        }
    }
}

/// The scope of a drift scan when one is due: none running, and the last one started at least
/// `interval` ago (with none yet, `interval` after this process started).
async fn drift_due(
    scans: &Scans,
    interval: Duration,
    process_started: i64,
) -> crate::ledger::LedgerResult<Option<crate::domain::scan::Scope>> {
    let last = scans.store().runs(ScanKind::Drift, i64::MAX, 1).await?;
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    let since = |at: i64| crate::ledger::now_ms().saturating_sub(at) >= interval_ms;
    let due = match last.first() {
        None => since(process_started),
        Some(run) => run.status != crate::domain::scan::RunStatus::Running && since(run.started_at),
    };
    Ok(if due { scans.drift_scope() } else { None })
}

async fn reap_loop(dispatcher: Dispatcher, lease: Duration, shutdown: CancellationToken) {
    let every = (lease / 4).max(Duration::from_millis(200));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {},
        }
        match dispatcher.reap().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "expired leases returned to the queue"),
            Err(e) => tracing::warn!(error = %e, "lease reaper failed"),
        }
    }
}

/// Prunes at start and then every `prune_interval`, until stopped.
async fn prune_loop(store: Store, retention: RetentionSettings, shutdown: CancellationToken) {
    loop {
        if let Err(e) = crate::sync::retention::prune_all(&store, &retention).await {
            tracing::warn!(error = %e, "pruning failed; will retry at the next interval");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(retention.prune_interval) => {},
        }
    }
}
