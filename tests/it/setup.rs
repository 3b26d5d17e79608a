//! `monday setup` as an operator runs it: from an empty board to a synced one, against a running
//! gateway that answers Monday's challenges and the Monday simulator, which then delivers the
//! board's changes to the webhooks `monday setup` registered (and nowhere else).

use std::process::Output;
use std::time::Duration;

use npd_monday_gateway::demo::{CONTACTS_BOARD, Sims, World};
use npd_monday_gateway::sim::monday::MondaySimConfig;
use serde_json::json;

use crate::helpers::{Backend, TestDatabase, created_contact, settle_world};
use crate::store_tests;

store_tests!(an_empty_board_is_set_up_once_and_then_syncs_through_the_registered_webhooks);

const TOKEN: &str = "setup-path-token-0123456789";

/// A gateway (path token set) and simulators whose contacts board starts with `columns`; the
/// simulator delivers only to registered webhooks. Also the environment of a CLI run.
async fn world(
    db: &TestDatabase,
    columns: &[(&str, &str, &str)],
) -> (World, Vec<(String, String)>) {
    let columns: Vec<_> = columns
        .iter()
        .map(|(id, t, title)| npd_monday_gateway::sim::monday::SimColumn::new(id, t, title))
        .collect();
    let sims = Sims::start_with(|c: &mut MondaySimConfig| c.boards[0].columns = columns)
        .await
        .expect("simulators");
    let (mut env, _) = sims.process_config(&db.url, "127.0.0.1:0", 10_000, 3_000);
    let world = World::with_sims(sims, &db.url, |s| {
        s.monday.webhook_token = Some(TOKEN.to_owned().into());
    })
    .await
    .expect("world");
    world.monday.set_webhook_target(None, None);
    env.push((
        "GATEWAY_PUBLIC_URL".into(),
        format!("http://{}", world.addr),
    ));
    env.push(("MONDAY_WEBHOOK_TOKEN".into(), TOKEN.into()));
    env.push(("GATEWAY_LOG".into(), "warn".into()));
    (world, env)
}

/// Runs `monday setup --kind contacts` (with `extra` arguments) as a separate process.
async fn setup(env: &[(String, String)], extra: &[&str]) -> (Output, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_npd-monday-gateway"))
        .args(["monday", "setup", "--kind", "contacts"])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .expect("run monday setup");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        !stdout.contains(TOKEN),
        "the path token was printed:\n{stdout}"
    );
    (output, stdout)
}

fn mutations(world: &World) -> Vec<String> {
    let calls = world.monday.calls().into_iter();
    let mutations = calls.filter(|c| c.query.trim_start().starts_with("mutation"));
    mutations.map(|c| c.operation).collect()
}

async fn an_empty_board_is_set_up_once_and_then_syncs_through_the_registered_webhooks(
    backend: Backend,
) {
    let db = TestDatabase::create(&backend).await;
    let (world, env) = world(&db, &[]).await;

    let (dry, plan) = setup(&env, &["--dry-run"]).await;
    assert!(dry.status.success(), "{plan}");
    let url = format!(
        "http://{}/webhooks/monday/{{MONDAY_WEBHOOK_TOKEN}}",
        world.addr
    );
    for line in [
        "contacts board 4100000001 (dry run: nothing is changed)".to_owned(),
        "column npd_id (text): create".into(),
        "column phone (phone): create".into(),
        format!("webhook item_restored: register at {url}"),
        "11 changes to make, 0 failed, 0 problems".into(),
    ] {
        assert!(plan.contains(&line), "missing `{line}` in:\n{plan}");
    }
    assert!(mutations(&world).is_empty(), "a dry run changes nothing");

    let (run, done) = setup(&env, &[]).await;
    assert!(run.status.success(), "{done}");
    assert!(
        done.contains("11 changes made, 0 failed, 0 problems"),
        "{done}"
    );
    let columns = world.monday.columns(CONTACTS_BOARD);
    let ids: Vec<(&str, &str)> = columns
        .iter()
        .map(|c| (c.id.as_str(), c.column_type.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("npd_id", "text"),
            ("email", "email"),
            ("notes", "long_text"),
            ("phone", "phone"),
            ("role_title", "text"),
        ]
    );
    let hooks = world.monday.registered_webhooks(CONTACTS_BOARD);
    let events: Vec<&str> = hooks.iter().map(|w| w.event.as_str()).collect();
    assert_eq!(
        events,
        npd_monday_gateway::sync::setup::WEBHOOK_EVENTS.to_vec()
    );
    let token_url = format!("http://{}/webhooks/monday/{TOKEN}", world.addr);
    assert!(hooks.iter().all(|w| w.url == token_url), "{hooks:?}");

    world.monday.clear_calls();
    let (again, unchanged) = setup(&env, &[]).await;
    assert!(again.status.success(), "{unchanged}");
    assert!(
        unchanged.contains("0 changes made, 0 failed, 0 problems"),
        "{unchanged}"
    );
    assert!(
        unchanged.contains("webhook change_name: present (id "),
        "{unchanged}"
    );
    assert_eq!(
        mutations(&world),
        Vec::<String>::new(),
        "a second run changes nothing"
    );

    a_person_s_edit_reaches_npd(&world).await;
    world.stop().await;
}

/// The board syncs: a person's edit reaches NPD through the registered webhook.
async fn a_person_s_edit_reaches_npd(world: &World) {
    let (id, item) = created_contact(world).await;
    world
        .monday
        .user_change_column(item, "role_title", json!("Chief Engineer"))
        .await;
    settle_world(world, Duration::from_secs(30)).await;
    let contact = world.npd.contact(id).expect("the contact");
    assert_eq!(contact.role_title.as_deref(), Some("Chief Engineer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_of_the_wrong_type_is_reported_and_left_alone() {
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let (world, env) = world(&db, &[("email", "text", "E-mail")]).await;
    let (run, out) = setup(&env, &[]).await;
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(
        out.contains("column email: PROBLEM: it is of type text, the mapping says email"),
        "{out}"
    );
    assert!(
        out.contains("10 changes made, 0 failed, 1 problems"),
        "{out}"
    );
    let email = world.monday.columns(CONTACTS_BOARD);
    assert_eq!(
        (
            email[0].id.as_str(),
            email[0].column_type.as_str(),
            email[0].title.as_str()
        ),
        ("email", "text", "E-mail"),
        "never changed"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_without_a_public_url_is_a_usage_error() {
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let (world, mut env) = world(&db, &[]).await;
    env.retain(|(k, _)| k != "GATEWAY_PUBLIC_URL");
    let (run, _) = setup(&env, &[]).await;
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("GATEWAY_PUBLIC_URL is not set"), "{stderr}");
    assert!(mutations(&world).is_empty());
    world.stop().await;
}
