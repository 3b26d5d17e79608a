//! Wiring: builds the store, the clients, the writers, the state and the router, binds the
//! listener, runs until stopped. The only place where concrete implementations are chosen, for
//! `serve` and for the one-shot commands of the CLI alike.
//!
//! Owns: `Application`, the pieces the CLI's commands use (`open_store`, `migrate`,
//! `monday_client`, `npd_client`, `cli_pusher`, `cli_scans`, `cli_dispatcher`), logging set-up,
//! signal handling.
//! May import: everything in the crate.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings, Settings};
use crate::connectors::monday::MondayClient;
use crate::connectors::npd::NpdClient;
use crate::connectors::{MondayApi, NpdApi};
use crate::http::{self, AppState};
use crate::ledger::Store;
use crate::ledger::group_commit::InboxWriter;
use crate::metrics::Metrics;
use crate::sync::dispatch::{Dispatcher, Remotes};
use crate::sync::ingest::Ingest;
use crate::sync::process::{OwnMondayUser, Processor};
use crate::sync::push::Pusher;
use crate::sync::scan::Scans;
use crate::worker::{Wake, WorkerSettings, Workers};

/// A built gateway, bound to its port, not yet serving.
pub struct Application {
    settings: Arc<Settings>,
    store: Store,
    listener: TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
    processor: Processor,
    dispatcher: Dispatcher,
    wake: Wake,
    scans: Scans,
}

impl Application {
    /// Connects the store, applies migrations, starts the ingest writers and binds the listener
    /// (port 0 picks a free one: see `local_addr`).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let settings = Arc::new(settings);
        let store = Store::connect(&settings.database).await.with_context(|| {
            format!(
                "cannot open the store at {}",
                settings.database.redacted_url()
            )
        })?;
        store.migrate().await.context("cannot apply migrations")?;
        let writer = InboxWriter::spawn(
            store.clone(),
            settings.database.ingest_batch_max,
            settings.database.ingest_writers,
            settings.database.ingest_timeout(),
        );
        let wake = Wake::default();
        let ingest = Ingest::new(Arc::clone(&settings), writer, Arc::clone(&wake.process));
        let metrics = Metrics::new();
        let remotes = remotes(&settings, &metrics);
        let own_monday_user = OwnMondayUser::default();
        let processor = Processor::new(
            Arc::clone(&settings),
            store.clone(),
            own_monday_user.clone(),
        )
        .with_metrics(metrics.clone());
        let shutdown = CancellationToken::new();
        if let Some(client) = remotes.monday.clone()
            && own_monday_user.get().is_none()
        {
            tokio::spawn(learn_own_monday_user(
                client,
                own_monday_user.clone(),
                shutdown.clone(),
            ));
        }
        let pusher = Pusher::new(processor.clone(), remotes.npd.clone());
        let (monday, npd) = (remotes.monday.clone(), remotes.npd.clone());
        let dispatcher =
            Dispatcher::new(Arc::clone(&settings), store.clone(), remotes, worker_name())
                .with_metrics(metrics.clone());
        let scans = Scans::new(
            processor.clone(),
            monday,
            npd,
            Arc::clone(dispatcher.budget()),
        );
        let state = AppState::new(
            Arc::clone(&settings),
            store.clone(),
            ingest,
            pusher,
            wake.clone(),
            scans.clone(),
        )
        .with_budget(Arc::clone(dispatcher.budget()))
        .with_metrics(metrics);
        warn_about_refused_sources(&state);
        let router = http::router(state);
        let listener = TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.http.listen))?;
        Ok(Application {
            settings,
            store,
            listener,
            router,
            shutdown,
            processor,
            dispatcher,
            wake,
            scans,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The handle that wakes (and pauses) this application's workers.
    pub fn wake(&self) -> Wake {
        self.wake.clone()
    }

    /// Cancelling this token stops the application as SIGTERM would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains in-flight requests (within the
    /// configured grace) and closes the store.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(
            listen = %addr,
            store = ?self.store.backend(),
            database = %self.settings.database.redacted_url(),
            "npd-monday-gateway listening"
        );
        let workers = self.settings.sync.run_workers.then(|| {
            let mut workers = Workers::spawn(
                self.processor,
                self.dispatcher,
                self.wake,
                worker_settings(&self.settings),
                self.shutdown.clone(),
            );
            let interval = self.settings.drift.interval;
            workers.spawn_scans(self.scans.clone(), interval, self.shutdown.clone());
            workers
        });
        if workers.is_none() {
            tracing::info!(
                "[sync] run_workers = false: ingress only, other replicas process and dispatch"
            );
        }
        // HTTP and the workers drain side by side within the same grace period.
        tokio::join!(
            http::server::serve(
                self.listener,
                self.router,
                self.settings.http.header_read_timeout(),
                self.shutdown.clone(),
                self.settings.http.shutdown_grace(),
            ),
            async {
                if let Some(workers) = workers {
                    workers.join().await;
                }
            },
        );
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The clients of Monday and NPD the settings configure (`None` where they do not); the Monday
/// client counts its requests in `metrics`.
pub fn remotes(settings: &Settings, metrics: &Metrics) -> Remotes {
    Remotes {
        monday: monday_client(settings)
            .map(|c| Arc::new(c.with_metrics(metrics.clone())) as Arc<dyn MondayApi>),
        npd: npd_client(settings).map(|c| Arc::new(c) as Arc<dyn NpdApi>),
    }
}

/// Connects the store and applies pending migrations (for the CLI's one-shot commands).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    Ok(store)
}

/// Applies pending migrations and closes the store (`migrate`).
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    store.close().await;
    Ok(())
}

/// The Monday client, when Monday's API token is configured.
pub fn monday_client(settings: &Settings) -> Option<MondayClient> {
    MondayClient::new(&settings.monday, settings.sync.monday_timeout())
}

/// The NPD client, when NPD's API is configured.
pub fn npd_client(settings: &Settings) -> Option<NpdClient> {
    NpdClient::new(&settings.npd, settings.sync.npd_timeout())
}

/// A pusher for `push-contact`: it queues the push in `store` (a running `serve` sends it). The
/// gateway's Monday user is not learned for one command.
pub fn cli_pusher(settings: Arc<Settings>, store: &Store) -> Pusher {
    let npd = remotes(&settings, &Metrics::default()).npd;
    let processor = Processor::new(settings, store.clone(), OwnMondayUser::default());
    Pusher::new(processor, npd)
}

/// The scans (backfill, reviews, drift) for the CLI, over `store`, with a dispatcher that sends
/// what they queue without a running `serve`; both spend one Monday budget.
pub fn cli_scans(settings: Arc<Settings>, store: &Store) -> (Scans, Dispatcher) {
    let remotes = remotes(&settings, &Metrics::default());
    let processor = Processor::new(
        Arc::clone(&settings),
        store.clone(),
        OwnMondayUser::default(),
    );
    let (monday, npd) = (remotes.monday.clone(), remotes.npd.clone());
    let dispatcher = Dispatcher::new(settings, store.clone(), remotes, worker_name());
    let scans = Scans::new(processor, monday, npd, Arc::clone(dispatcher.budget()));
    (scans, dispatcher)
}

/// This process's name on the jobs it leases: unique per process and start.
fn worker_name() -> String {
    format!(
        "gw-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn worker_settings(settings: &Settings) -> WorkerSettings {
    WorkerSettings {
        concurrency: settings.sync.dispatch_concurrency,
        processors: settings.sync.processors,
        poll: settings.sync.poll_interval(),
        lease: settings.sync.lease(),
        grace: settings.http.shutdown_grace(),
        retention: settings.retention,
    }
}

/// Asks Monday which user the API token acts as (retrying every 30 s until it answers), so that
/// webhooks of the gateway's own writes are known as such.
async fn learn_own_monday_user(
    client: Arc<dyn MondayApi>,
    own: OwnMondayUser,
    shutdown: CancellationToken,
) {
    loop {
        match client.me().await {
            Ok(id) => {
                own.set(id);
                tracing::info!(
                    monday.user_id = id,
                    "the gateway writes to Monday as this user"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot learn the gateway's Monday user yet; retrying in 30 s")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {},
        }
    }
}

/// Says at start-up which deliveries will be refused, and why, so nobody has to guess from 401s.
fn warn_about_refused_sources(state: &AppState) {
    if state.npd_verifier.is_none() {
        tracing::warn!("NPD_WEBHOOK_SECRET is not set: every NPD event will be refused with 401");
    }
    match (
        state.monday_jwt.is_some(),
        state.monday_path_token.is_some(),
    ) {
        (false, false) => tracing::warn!(
            "neither MONDAY_SIGNING_SECRET nor MONDAY_WEBHOOK_TOKEN is set: every Monday delivery will be refused with 401"
        ),
        (false, true) => tracing::info!(
            "MONDAY_SIGNING_SECRET is not set: Monday deliveries are accepted only on /webhooks/monday/{{token}}"
        ),
        _ => {}
    }
}

/// Installs the global tracing subscriber (text or JSON lines). Safe to call more than once.
/// The filter was validated with the settings; one that still does not parse logs nothing.
pub fn init_tracing(log: &LogSettings) {
    let filter = EnvFilter::try_new(&log.filter).unwrap_or_else(|_| EnvFilter::new("off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never in files or log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
