//! The `npd-monday-gateway` command line: `serve`, `migrate`, `check-config`.
//!
//! Exit codes: 0 success, 2 bad usage or configuration, 1 any other failure.
//! May import: clap, anyhow, tokio, the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use npd_monday_gateway::config::Settings;
use npd_monday_gateway::domain::entity::EntityKind;
use npd_monday_gateway::ledger::Store;
use npd_monday_gateway::startup::{self, Application};

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
    /// Validate the configuration and print what it amounts to (secrets never printed).
    CheckConfig,
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
    if let Command::CheckConfig = cli.command {
        print_config_report(&settings);
        return ExitCode::SUCCESS;
    }
    startup::init_tracing(&settings.log);
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
            Command::CheckConfig => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, "{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let stop = app.shutdown_token();
    tokio::spawn(async move {
        startup::shutdown_signal().await;
        stop.cancel();
    });
    app.run_until_stopped().await
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    store.close().await;
    println!("migrations applied to {}", settings.database.redacted_url());
    Ok(())
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
