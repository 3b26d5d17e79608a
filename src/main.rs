//! The `npd-monday-gateway` command line: `serve`, `migrate`, `demo`, `push-contact`,
//! `backfill` (with its progress bar), `admin-token create|list|revoke`, `check-config`,
//! `monday setup`.
//!
//! Parses the command line, loads the settings, calls `startup` (which builds the store and the
//! clients) and the use cases, and prints the outcome. Builds nothing itself.
//!
//! Exit codes: 0 success, 2 bad usage or configuration, 1 any other failure.
//! May import: clap, anyhow, indicatif, tokio, the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use npd_monday_gateway::auth::admin_token;
use npd_monday_gateway::config::Settings;
use npd_monday_gateway::domain::entity::{BoardId, EntityKind, NpdId};
use npd_monday_gateway::domain::mapping::EntityMapping;
use npd_monday_gateway::domain::scan::{RunStatus, Scope, Summary};
use npd_monday_gateway::http::admin::dto::rfc3339;
use npd_monday_gateway::ledger::scans::RunRow;
use npd_monday_gateway::startup::{self, Application};
use npd_monday_gateway::sync::push::{PushError, Requester};
use npd_monday_gateway::sync::scan::ScanError;
use npd_monday_gateway::sync::setup::{self, SetupError, Step};
use npd_monday_gateway::worker;

#[derive(Debug, Parser)]
#[command(
    name = "npd-monday-gateway",
    version,
    about = "Keeps NPD contacts and organizations in sync with Monday.com boards"
)]
struct Cli {
    /// A TOML config file (see fixtures/gateway.example.toml); environment variables override it.
    #[arg(long, global = true, env = "GATEWAY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: HTTP ingress for NPD events and Monday webhooks (SQLite in ./data by default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and print what it amounts to (secrets never printed); when
    /// Monday is configured, also check that the mapped boards and columns exist.
    CheckConfig,
    /// Run the gateway with Monday and NPD simulators on loopback and print a scripted round trip.
    Demo,
    /// Queue a forced push of one NPD contact to Monday, as the admin endpoint does (a running
    /// `serve` sends it).
    PushContact {
        /// The contact's NPD id (a UUID).
        contact_id: String,
    },
    /// Sync existing data for the first time: read the board and NPD's list, match records with
    /// items (npd_id column, NPD's monday_id, email, phone; one-to-one, ambiguous ones to the
    /// review queue), link them, give them their first values and create what is missing in
    /// Monday, then send what was queued. With SQLite, stop `serve` first (one process per
    /// database file) or use `POST /api/v1/backfills`.
    Backfill {
        /// Which records: contacts, organizations or all.
        #[arg(long, default_value = "all", value_parser = parse_scope)]
        kind: Scope,
        /// Read, match and count only: nothing is written or sent.
        #[arg(long)]
        dry_run: bool,
    },
    /// Manage admin tokens.
    AdminToken {
        #[command(subcommand)]
        command: AdminTokenCommand,
    },
    /// Work on the Monday boards.
    Monday {
        #[command(subcommand)]
        command: MondayCommand,
    },
}

#[derive(Debug, Subcommand)]
enum MondayCommand {
    /// Make a board ready: create the mapped columns it lacks (with the mapping's ids and types)
    /// and register the gateway's webhooks at GATEWAY_PUBLIC_URL; prints the plan. A column that
    /// exists with another type is reported, never changed. A second run changes nothing. Run it
    /// while `serve` is reachable there: Monday sends each new webhook's URL a challenge.
    Setup {
        /// Which board.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Print the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KindArg {
    Contacts,
    Organizations,
}

impl From<KindArg> for EntityKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Contacts => EntityKind::Contact,
            KindArg::Organizations => EntityKind::Organization,
        }
    }
}

#[derive(Debug, Subcommand)]
enum AdminTokenCommand {
    /// Create a token and print it once; only its SHA-256 is stored.
    Create {
        /// A unique name for the token (it appears in the audit log).
        #[arg(long)]
        name: String,
    },
    /// List the tokens: name, created, last used, revoked (never the token or its hash).
    List,
    /// Revoke a token: from then on it gets 401.
    Revoke {
        /// The token's name.
        #[arg(long)]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut log = settings.log.clone();
    if matches!(cli.command, Command::Demo) && std::env::var("GATEWAY_LOG").is_err() {
        // The demo prints its own account; the gateway's routine logs would drown it.
        log.filter = "warn".into();
    }
    startup::init_tracing(&log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::CheckConfig => check_config(settings).await,
            Command::Demo => npd_monday_gateway::demo::run_demo()
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::PushContact { contact_id } => push_contact(settings, &contact_id).await,
            Command::Backfill { kind, dry_run } => backfill(settings, kind, dry_run).await,
            Command::AdminToken { command } => admin_token_command(settings, command).await,
            Command::Monday {
                command: MondayCommand::Setup { kind, dry_run },
            } => monday_setup(settings, kind.into(), dry_run).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, "{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    let app = Application::build(settings).await?;
    let stop = app.shutdown_token();
    tokio::spawn(async move {
        startup::shutdown_signal().await;
        stop.cancel();
    });
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

async fn migrate(settings: Settings) -> anyhow::Result<ExitCode> {
    startup::migrate(&settings).await?;
    println!("migrations applied to {}", settings.database.redacted_url());
    Ok(ExitCode::SUCCESS)
}

async fn push_contact(settings: Settings, contact_id: &str) -> anyhow::Result<ExitCode> {
    let Ok(id) = NpdId::parse(contact_id) else {
        eprintln!("error: `{contact_id}` is not a UUID");
        return Ok(ExitCode::from(2));
    };
    let settings = Arc::new(settings);
    let store = startup::open_store(&settings).await?;
    let pusher = startup::cli_pusher(settings, &store);
    let by = Requester {
        actor: "cli",
        request_id: None,
    };
    let result = pusher.push(EntityKind::Contact, id, by).await;
    store.close().await;
    match result {
        Ok(q) => {
            println!("contact {id}: {}", q.message);
            if let Some(job) = q.job_id {
                println!(
                    "queued as job {job}; a running `serve` sends it (see GET /api/v1/contacts/{id}/sync)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(PushError::NotConfigured(m)) => {
            eprintln!("error: {m}");
            Ok(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn admin_token_command(
    settings: Settings,
    command: AdminTokenCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        AdminTokenCommand::Create { name } => create_admin_token(settings, &name).await,
        AdminTokenCommand::List => list_admin_tokens(settings).await,
        AdminTokenCommand::Revoke { name } => revoke_admin_token(settings, name.trim()).await,
    }
}

async fn list_admin_tokens(settings: Settings) -> anyhow::Result<ExitCode> {
    let store = startup::open_store(&settings).await?;
    let tokens = store.admin_tokens().await;
    store.close().await;
    let when = |ms: Option<i64>| ms.and_then(rfc3339).unwrap_or_else(|| "-".to_owned());
    println!(
        "{:<24} {:<26} {:<26} revoked",
        "name", "created", "last used"
    );
    for t in tokens? {
        let created = when(Some(t.created_at));
        let (used, revoked) = (when(t.last_used_at), when(t.revoked_at));
        println!("{:<24} {created:<26} {used:<26} {revoked}", t.name);
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke_admin_token(settings: Settings, name: &str) -> anyhow::Result<ExitCode> {
    let store = startup::open_store(&settings).await?;
    let revoked = store.revoke_admin_token(name).await;
    store.close().await;
    if revoked? {
        println!("admin token `{name}` revoked: it now gets 401");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: no live admin token is named `{name}`");
        Ok(ExitCode::FAILURE)
    }
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse::<Scope>()
        .map_err(|_| "expected contacts, organizations or all".to_owned())
}

async fn backfill(settings: Settings, scope: Scope, dry_run: bool) -> anyhow::Result<ExitCode> {
    let settings = Arc::new(settings);
    let store = startup::open_store(&settings).await?;
    let (scans, dispatcher) = startup::cli_scans(Arc::clone(&settings), &store);
    let id = match scans.start_backfill(scope, dry_run).await {
        Ok(id) => id,
        Err(ScanError::NotConfigured(m)) => {
            eprintln!("error: {m}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    // Routine sync may spend four fifths of the minute's requests: the pace creates go at.
    let per_minute = (settings.monday.requests_per_minute * 4 / 5).max(1);
    let progress = BackfillProgress::new(dry_run, per_minute);
    let task = tokio::spawn({
        let scans = scans.clone();
        async move { scans.run_backfill(id).await }
    });
    while !task.is_finished() {
        if let Some(run) = scans.backfill_status(id).await? {
            progress.show(&run);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = task.await??;
    progress.show(&run);
    if run.status == RunStatus::Done && !dry_run {
        let concurrency = settings.sync.dispatch_concurrency;
        let drain = worker::drain_outbox(&dispatcher, concurrency, settings.sync.poll_interval());
        tokio::pin!(drain);
        loop {
            tokio::select! {
                done = &mut drain => { done?; break; }
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    if let Some(run) = scans.backfill_status(id).await? {
                        progress.show(&run);
                    }
                }
            }
        }
    }
    let run = scans.backfill_status(id).await?.unwrap_or(run);
    progress.finish(&run);
    store.close().await;
    Ok(if run.status == RunStatus::Done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A backfill's progress: a bar on a terminal, plain lines (when something changed) otherwise.
struct BackfillProgress {
    bar: Option<ProgressBar>,
    last: std::sync::Mutex<String>,
    dry_run: bool,
    per_minute: u64,
}

impl BackfillProgress {
    fn new(dry_run: bool, per_minute: u64) -> Self {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        BackfillProgress {
            bar,
            last: std::sync::Mutex::new(String::new()),
            dry_run,
            per_minute,
        }
    }

    fn line(&self, run: &RunRow) -> String {
        let Summary::Backfill(c) = &run.summary else {
            return String::new();
        };
        let matched = c.matched.npd_id + c.matched.monday_id + c.matched.email + c.matched.phone;
        let left = 2 * c.to_create_in_monday.saturating_sub(c.created_in_monday);
        let eta = (left * 60).div_ceil(self.per_minute.max(1));
        format!(
            "backfill {} {}: scanned {} NPD / {} Monday, matched {matched}, linked {}, created {}/{}, review {}, Monday-only {}, ~{} Monday calls{}",
            run.id,
            run.status,
            c.scanned.npd,
            c.scanned.monday,
            c.linked,
            c.created_in_monday,
            c.to_create_in_monday,
            c.to_review,
            c.unmatched_in_monday,
            c.estimated_monday_calls,
            if self.dry_run || left == 0 {
                String::new()
            } else {
                format!(", ETA ~{eta}s at {}/min", self.per_minute)
            },
        )
    }

    fn show(&self, run: &RunRow) {
        let line = self.line(run);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if *last == line {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_message(line.clone()),
            None => println!("{line}"),
        }
        *last = line;
    }

    fn finish(&self, run: &RunRow) {
        self.show(run);
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        if let Some(error) = &run.error {
            eprintln!("error: {error}");
        }
    }
}

async fn create_admin_token(settings: Settings, name: &str) -> anyhow::Result<ExitCode> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        eprintln!("error: --name must be 1 to 100 characters");
        return Ok(ExitCode::from(2));
    }
    let store = startup::open_store(&settings).await?;
    let token = admin_token::generate();
    let created = store
        .insert_admin_token(name, &admin_token::hash(&token))
        .await?;
    store.close().await;
    if !created {
        eprintln!("error: an admin token named `{name}` exists already");
        return Ok(ExitCode::FAILURE);
    }
    println!("{token}");
    eprintln!("admin token `{name}` created; it is shown this once, only its SHA-256 is stored");
    Ok(ExitCode::SUCCESS)
}

/// `monday setup`: reads the board, prints the plan and (unless `dry_run`) applies it. Exit 0
/// when the board is ready, 1 when a step failed or a column has the wrong type, 2 when the
/// configuration lacks what set-up needs.
async fn monday_setup(
    settings: Settings,
    kind: EntityKind,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let usage = |m: &str| {
        eprintln!("error: {m}");
        Ok(ExitCode::from(2))
    };
    let Some(client) = startup::monday_client(&settings) else {
        return usage("MONDAY_API_TOKEN is not set");
    };
    let Some(board) = settings.board_for(kind) else {
        return usage(&format!(
            "MONDAY_{}_BOARD_ID is not set",
            kind.plural().to_uppercase()
        ));
    };
    let url = match setup::webhook_url(&settings) {
        Ok(url) => url,
        Err(e) => return usage(&e.to_string()),
    };
    let mapping = settings.mapping.for_kind(kind);
    let plan = match setup::read_plan(&client, kind, board, mapping).await {
        Ok(plan) => plan,
        Err(e @ SetupError::BoardNotFound(_)) => return usage(&e.to_string()),
        Err(e) => anyhow::bail!(e),
    };
    let mode = if dry_run {
        " (dry run: nothing is changed)"
    } else {
        ""
    };
    println!("{} board {board}{mode}", kind.plural());
    for step in &plan.steps {
        println!("  {}", step.describe(&url.shown));
    }
    let mut failed = 0;
    if !dry_run {
        for (step, result) in setup::apply(&client, &plan, &url).await {
            let line = step.describe(&url.shown);
            match result {
                Ok(()) => println!("  done: {line}"),
                Err(e) => {
                    failed += 1;
                    println!("  FAILED: {line}: {e}");
                }
            }
        }
        if failed > 0 {
            println!(
                "  (Monday sends each new webhook's URL a challenge: `serve` must be running and \
                 reachable at GATEWAY_PUBLIC_URL)"
            );
        }
    }
    let verb = if dry_run { "to make" } else { "made" };
    println!(
        "{} changes {verb}, {} failed, {} problems",
        plan.changes() - failed,
        failed,
        plan.problems()
    );
    Ok(if failed + plan.problems() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn check_config(settings: Settings) -> anyhow::Result<ExitCode> {
    print_config_report(&settings);
    let Some(client) = startup::monday_client(&settings) else {
        return Ok(ExitCode::SUCCESS);
    };
    let (mut ok, mut unreachable) = (true, false);
    for kind in EntityKind::ALL {
        let Some(board) = settings.board_for(kind) else {
            continue;
        };
        let problems = match client.board_columns(board).await {
            Ok(None) => vec![format!(
                "{} board {board} does not exist on Monday",
                kind.plural()
            )],
            Ok(Some(columns)) => {
                let mapping = settings.mapping.for_kind(kind);
                let mut problems = column_problems(mapping, &columns, kind, board);
                match client.board_column_labels(board).await {
                    Ok(labels) => problems.extend(label_problems(
                        mapping,
                        &labels.unwrap_or_default(),
                        kind,
                        board,
                    )),
                    Err(e) => {
                        unreachable = true;
                        problems.push(format!(
                            "cannot read the column labels of board {board}: {e}"
                        ));
                    }
                }
                problems
            }
            Err(e) => {
                unreachable = true;
                vec![format!(
                    "cannot read {} board {board} from Monday: {e}",
                    kind.plural()
                )]
            }
        };
        for problem in &problems {
            println!("problem: {problem}");
        }
        ok &= problems.is_empty();
        // As before: once any board had a problem, later boards' all-clear lines are not printed.
        if ok {
            println!(
                "  {} board {board}: every mapped column exists with its type",
                kind.plural()
            );
        }
    }
    // A board that is missing or mapped wrongly is a configuration problem (2); a Monday that
    // could not be asked is a failure (1): the configuration may well be right.
    Ok(match (ok, unreachable) {
        (true, _) => ExitCode::SUCCESS,
        (false, true) => ExitCode::FAILURE,
        (false, false) => ExitCode::from(2),
    })
}

/// What is wrong with `columns` (id, type) of `board` for `mapping`: missing mapped columns, and
/// columns of another type than the mapping says.
fn column_problems(
    mapping: &EntityMapping,
    columns: &[(String, String)],
    kind: EntityKind,
    board: BoardId,
) -> Vec<String> {
    let plan = setup::plan(kind, board, mapping, columns, &[]);
    let kinds = kind.plural();
    plan.steps
        .iter()
        .filter_map(|step| match step {
            Step::CreateColumn { id, .. } => {
                Some(format!("column `{id}` is missing on {kinds} board {board}"))
            }
            Step::ColumnMistyped { id, found, wanted } => Some(format!(
                "column `{id}` on {kinds} board {board} is of type {found}, the mapping says {wanted}"
            )),
            _ => None,
        })
        .collect()
}

/// The Monday labels a status or dropdown field's `labels` names that its column does not have
/// (`labels` of the column's `settings_str`, by column id). A field with `create_labels` may name
/// new ones: Monday creates them.
fn label_problems(
    mapping: &EntityMapping,
    labels: &std::collections::BTreeMap<String, Vec<String>>,
    kind: EntityKind,
    board: BoardId,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (field, column) in &mapping.fields {
        if !column.column_type.has_labels() || column.create_labels {
            continue;
        }
        let known = labels.get(&column.column).cloned().unwrap_or_default();
        for label in column.labels.values() {
            if !known.contains(label) {
                problems.push(format!(
                    "{field}: label `{label}` is not a label of column `{}` on {} board {board} (its labels: {})",
                    column.column,
                    kind.plural(),
                    known.join(", ")
                ));
            }
        }
    }
    problems
}

fn print_config_report(s: &Settings) {
    let set = |b: bool| if b { "set" } else { "not set" };
    println!("configuration is valid");
    println!("  listen:            {}", s.http.listen);
    println!("  store:             {}", s.database.redacted_url());
    println!(
        "  public url:        {}",
        s.http.public_url.as_deref().unwrap_or("not set")
    );
    println!("  admin token:       {}", set(s.admin.token.is_some()));
    println!(
        "  NPD webhook secret: {}",
        set(s.npd.webhook_secret.is_some())
    );
    println!(
        "  NPD API:           {}",
        s.npd.api_url.as_deref().unwrap_or("not set")
    );
    println!(
        "  Monday API:        {} (version {})",
        s.monday.api_url, s.monday.api_version
    );
    println!("  Monday token:      {}", set(s.monday.api_token.is_some()));
    println!(
        "  Monday signing:    {}",
        set(s.monday.signing_secret.is_some())
    );
    println!(
        "  Monday path token: {}",
        set(s.monday.webhook_token.is_some())
    );
    for kind in EntityKind::ALL {
        let mapping = s.mapping.for_kind(kind);
        let board = s
            .board_for(kind)
            .map_or_else(|| "no board".to_owned(), |b| format!("board {b}"));
        println!(
            "  {}: {board}; item name <- {}",
            kind.plural(),
            mapping.item_name.join(" + \" \" + ")
        );
        println!("    {:<14} <- npd id", mapping.npd_id_column);
        for (field, column) in &mapping.fields {
            println!(
                "    {:<14} <- {field} ({}, conflicts: {})",
                column.column,
                column.column_type,
                s.conflicts.policy(kind, field)
            );
        }
    }
    if s.npd.webhook_secret.is_none() {
        println!("warning: NPD_WEBHOOK_SECRET is not set: NPD events will be refused with 401");
    }
    if s.monday.signing_secret.is_none() && s.monday.webhook_token.is_none() {
        println!(
            "warning: neither MONDAY_SIGNING_SECRET nor MONDAY_WEBHOOK_TOKEN is set: Monday deliveries will be refused with 401"
        );
    }
    if !s.monday_configured() {
        println!(
            "note: Monday is not configured (MONDAY_API_TOKEN and a board id are needed to write to Monday)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_problems_name_missing_and_mistyped_columns() {
        let mapping = EntityMapping::default_for(EntityKind::Contact);
        let board = BoardId(4_100_000_001);
        let columns = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(id, t)| ((*id).to_owned(), (*t).to_owned()))
                .collect()
        };
        let all = [
            ("npd_id", "text"),
            ("email", "email"),
            ("phone", "phone"),
            ("role_title", "text"),
            ("notes", "long_text"),
        ];
        type Case<'a> = (&'a str, Vec<(String, String)>, &'a [&'a str]);
        let cases: [Case<'_>; 3] = [
            ("every column, right types", columns(&all), &[]),
            (
                "npd_id missing",
                columns(&all[1..]),
                &["column `npd_id` is missing on contacts board 4100000001"],
            ),
            (
                "email is text",
                columns(&[all[0], ("email", "text"), all[2], all[3], all[4]]),
                &[
                    "column `email` on contacts board 4100000001 is of type text, the mapping says email",
                ],
            ),
        ];
        for (name, board_columns, expected) in cases {
            let problems = column_problems(&mapping, &board_columns, EntityKind::Contact, board);
            assert_eq!(problems, expected, "{name}");
        }
    }
}
