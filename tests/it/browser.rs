//! The admin console driven in headless Chromium through WebDriver (chromedriver + fantoccini):
//! sign in, resolve a conflict, replay a dead letter, search a contact, open it, see a push
//! without its CSRF token refused, push it to Monday, see the push in its timeline, sign out.
//! Screenshots of each step are written under `target/console-screenshots/`.
//!
//! Without `chromedriver` on the PATH the test passes after printing why it did not run, unless
//! `GATEWAY_TEST_REQUIRE_BROWSER=1` (CI sets it, and installs `chromium` and `chromium-driver`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use npd_monday_gateway::demo::World;
use npd_monday_gateway::domain::reconcile::ConflictPolicy;
use npd_monday_gateway::domain::state::ConflictStatus;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{
    Backend, TestDatabase, contact_monday_refuses, created_contact, edit_email_on_both_sides,
    settle_world,
};

/// What WebDriver may take for one step (a page load, an element to appear).
const STEP: Duration = Duration::from_secs(30);

/// The first executable named `name` on the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// chromedriver on a free port, started and answering (its "started successfully" line read).
async fn start_chromedriver(binary: &PathBuf) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let started = tokio::time::timeout(STEP, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("started successfully") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(started, Ok(true), "chromedriver did not start");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

/// A headless Chromium session with the flags CI uses and a fresh profile.
async fn chromium(port: u16, profile: &std::path::Path) -> Client {
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        "--window-size=1280,1000".to_owned(),
    ];
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut options = json!({ "args": args });
    if let Some(binary) = on_path("chromium") {
        options["binary"] = json!(binary);
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session")
}

/// Saves a screenshot of the current page as `target/console-screenshots/{name}.png`.
async fn screenshot(browser: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_settles_a_conflict_and_a_dead_letter_then_pushes_a_contact() {
    let required = std::env::var("GATEWAY_TEST_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let Some(driver) = on_path("chromedriver") else {
        assert!(
            !required,
            "GATEWAY_TEST_REQUIRE_BROWSER=1 but chromedriver is not on the PATH"
        );
        println!(
            "SKIPPED: chromedriver is not on the PATH (apt-get install chromium chromium-driver)"
        );
        return;
    };
    // Arrange: a synced contact with a manual conflict on its email, a contact Monday refuses
    // (a dead letter); chromedriver and a fresh Chromium profile.
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let world = World::start(&db.url, |s| s.conflicts.default = ConflictPolicy::Manual)
        .await
        .expect("world");
    let (id, item) = created_contact(&world).await;
    edit_email_on_both_sides(&world, (id, item), "npd@example.com", "monday@example.com").await;
    contact_monday_refuses(&world).await;
    settle_world(&world, STEP).await;
    let (_driver, port) = start_chromedriver(&driver).await;
    let profile = tempfile::tempdir().expect("profile");
    let browser = chromium(port, profile.path()).await;
    let result = drive(&browser, &world, (id.to_string(), item.to_string())).await;
    browser.close().await.expect("close the session");
    result.expect("the walk through the console");
    // The resolution reached NPD.
    settle_world(&world, STEP).await;
    let email = world.npd.contact(id).and_then(|c| c.email);
    assert_eq!(email.as_deref(), Some("monday@example.com"));
    let open = world.store.conflicts(ConflictStatus::Open, 10).await;
    assert!(open.expect("conflicts").is_empty());
}

/// The walk itself; the first failed expectation, or Ok.
async fn drive(
    browser: &Client,
    world: &World,
    (id, item): (String, String),
) -> Result<(), String> {
    sign_in(browser, world).await?;
    // Resolve the conflict (take Monday's value) and replay the dead letter.
    act_on_first_row(browser, world, "conflicts").await?;
    act_on_first_row(browser, world, "dead-letters").await?;
    open_by_search(browser, world, &id, &item).await?;
    a_form_without_its_csrf_token_is_refused(browser).await?;
    push_and_see_it_in_the_timeline(browser).await?;
    sign_out(browser, world).await
}

async fn goto(browser: &Client, world: &World, path: &str) -> Result<(), String> {
    browser
        .goto(&world.url(path))
        .await
        .map_err(|e| format!("{path}: {e}"))
}

async fn click(browser: &Client, css: &str) -> Result<(), String> {
    let element = browser
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("{css}: {e}"))?;
    element.click().await.map_err(|e| format!("{css}: {e}"))
}

/// Types `keys` into the element `css`.
async fn type_into(browser: &Client, css: &str, keys: &[&str]) -> Result<(), String> {
    let element = browser
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("{css}: {e}"))?;
    for k in keys {
        element
            .send_keys(k)
            .await
            .map_err(|e| format!("{css}: {e}"))?;
    }
    Ok(())
}

/// Fails unless `/admin` now sends the browser to the sign-in page (`when` says after what).
async fn admin_asks_to_sign_in(browser: &Client, world: &World, when: &str) -> Result<(), String> {
    goto(browser, world, "/admin").await?;
    let url = browser.current_url().await.map_err(|e| e.to_string())?;
    if url.path().ends_with("/admin/login") {
        Ok(())
    } else {
        Err(format!("{when} /admin went to {url}"))
    }
}

async fn sign_in(browser: &Client, world: &World) -> Result<(), String> {
    admin_asks_to_sign_in(browser, world, "without a session").await?;
    type_into(browser, "#token", &[&world.admin_token]).await?;
    screenshot(browser, "1-sign-in").await;
    click(browser, "#sign-in").await?;
    // Only a signed-in page has the sign-out button: waiting for it waits for the new page.
    text_of(browser, "#sign-out").await;
    let heading = text_of(browser, "main h1").await;
    if heading != "Overview" {
        return Err(format!("after signing in: {heading}"));
    }
    screenshot(browser, "2-overview").await;
    Ok(())
}

/// Searches the contact by name and opens its page, which must show its item.
async fn open_by_search(
    browser: &Client,
    world: &World,
    id: &str,
    item: &str,
) -> Result<(), String> {
    goto(browser, world, "/admin").await?;
    type_into(browser, "header input[name=q]", &["lovelace", "\u{E007}"]).await?;
    let link = browser
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css(&format!(
            "#results a[href='/admin/contacts/{id}']"
        )))
        .await
        .map_err(|e| format!("the contact in the results: {e}"))?;
    screenshot(browser, "4-search").await;
    link.click().await.map_err(|e| e.to_string())?;
    let monday = text_of(browser, "#monday-id").await;
    if monday != item {
        return Err(format!(
            "the contact's page shows item {monday}, not {item}"
        ));
    }
    Ok(())
}

/// On the contact's page: the push form stripped of its CSRF token is refused with 403; then
/// back to the page, reloaded.
async fn a_form_without_its_csrf_token_is_refused(browser: &Client) -> Result<(), String> {
    let strip = "document.querySelector('#push').form.querySelector('[name=csrf_token]').remove()";
    browser
        .execute(strip, vec![])
        .await
        .map_err(|e| format!("strip the token: {e}"))?;
    click(browser, "#push").await?;
    // Only an error page has `p.error`.
    text_of(browser, "p.error").await;
    let refused = text_of(browser, "main h1").await;
    if !refused.starts_with("403") {
        return Err(format!("a push without its csrf_token: {refused}"));
    }
    screenshot(browser, "5-no-csrf").await;
    browser.back().await.map_err(|e| e.to_string())?;
    browser.refresh().await.map_err(|e| e.to_string())
}

async fn push_and_see_it_in_the_timeline(browser: &Client) -> Result<(), String> {
    click(browser, "#push").await?;
    let notice = text_of(browser, "p.notice").await;
    if !notice.contains("Push queued") {
        return Err(format!("after the push: {notice}"));
    }
    let timeline = text_of(browser, "#timeline").await;
    if !timeline.contains("requested") {
        return Err(format!("the push is not in the timeline: {timeline}"));
    }
    screenshot(browser, "6-pushed").await;
    Ok(())
}

/// Signs out: the console asks to sign in again.
async fn sign_out(browser: &Client, world: &World) -> Result<(), String> {
    click(browser, "#sign-out").await?;
    browser
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css("#sign-in"))
        .await
        .map_err(|e| e.to_string())?;
    admin_asks_to_sign_in(browser, world, "after signing out").await
}

/// Opens the list page `conflicts` or `dead-letters`, clicks its first row's action (take
/// Monday's value, replay) and reads the page's notice.
async fn act_on_first_row(browser: &Client, world: &World, list: &str) -> Result<(), String> {
    goto(browser, world, &format!("/admin/{list}")).await?;
    let (button, said) = match list {
        "conflicts" => ("button[id^='take-monday-']", "Conflict resolved"),
        _ => ("button[id^='replay-']", "Dead letter replayed"),
    };
    let action = browser
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css(button))
        .await
        .map_err(|e| format!("{list}: {e}"))?;
    screenshot(browser, &format!("3-{list}")).await;
    action.click().await.map_err(|e| e.to_string())?;
    let notice = text_of(browser, "p.notice").await;
    if notice.contains(said) {
        Ok(())
    } else {
        Err(format!("after the {list} action: {notice}"))
    }
}
