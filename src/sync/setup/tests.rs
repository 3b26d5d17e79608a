//! `monday setup`: the plan over board states, the webhook URL over configurations, and applying
//! a plan against the in-memory Monday (a second run plans nothing).

use secrecy::SecretString;

use super::*;
use crate::sync::testkit::{CONTACTS_BOARD, Call, Fakes};

const EVERY_COLUMN: &[(&str, &str)] = &[
    ("npd_id", "text"),
    ("email", "email"),
    ("notes", "long_text"),
    ("phone", "phone"),
    ("role_title", "text"),
];

fn contacts() -> EntityMapping {
    EntityMapping::default_for(EntityKind::Contact)
}

fn columns(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(id, t)| ((*id).to_owned(), (*t).to_owned()))
        .collect()
}

fn webhook(id: &str, event: &str, config: Option<&str>) -> BoardWebhook {
    BoardWebhook {
        id: id.to_owned(),
        event: event.to_owned(),
        config: config.map(str::to_owned),
    }
}

fn described(plan: &Plan) -> Vec<String> {
    plan.steps.iter().map(|s| s.describe("URL")).collect()
}

#[test]
fn an_empty_board_gets_every_mapped_column_and_every_webhook() {
    let plan = plan(EntityKind::Contact, CONTACTS_BOARD, &contacts(), &[], &[]);
    assert_eq!(
        described(&plan),
        [
            "column npd_id (text): create",
            "column email (email): create",
            "column notes (long_text): create",
            "column phone (phone): create",
            "column role_title (text): create",
            "webhook create_item: register at URL",
            "webhook change_column_value: register at URL",
            "webhook change_name: register at URL",
            "webhook item_archived: register at URL",
            "webhook item_deleted: register at URL",
            "webhook item_restored: register at URL",
        ]
    );
    assert_eq!((plan.changes(), plan.problems()), (11, 0));
    let titles: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateColumn { title, .. } => Some(title.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(titles, ["NPD id", "Email", "Notes", "Phone", "Role title"]);
}

#[test]
fn a_ready_board_needs_nothing_and_a_mistyped_column_is_only_reported() {
    let hooks: Vec<BoardWebhook> = WEBHOOK_EVENTS
        .iter()
        .enumerate()
        .map(|(i, e)| webhook(&i.to_string(), e, None))
        .collect();
    let ready = plan(
        EntityKind::Contact,
        CONTACTS_BOARD,
        &contacts(),
        &columns(EVERY_COLUMN),
        &hooks,
    );
    assert_eq!((ready.changes(), ready.problems()), (0, 0));
    let mut mistyped = columns(EVERY_COLUMN);
    mistyped[1].1 = "text".into();
    let report = plan(
        EntityKind::Contact,
        CONTACTS_BOARD,
        &contacts(),
        &mistyped,
        &hooks,
    );
    assert_eq!((report.changes(), report.problems()), (0, 1));
    assert_eq!(
        described(&report)[1],
        "column email: PROBLEM: it is of type text, the mapping says email; not changed (fix \
         the board or the mapping)"
    );
}

#[test]
fn a_webhook_with_a_config_does_not_count_as_the_plain_event() {
    let hooks = [
        webhook(
            "7",
            "change_column_value",
            Some("{\"columnId\":\"status\"}"),
        ),
        webhook("8", "create_item", Some("")),
    ];
    let plan = plan(
        EntityKind::Contact,
        CONTACTS_BOARD,
        &contacts(),
        &[],
        &hooks,
    );
    let webhooks: Vec<&Step> = plan.steps.iter().skip(5).take(2).collect();
    assert_eq!(
        webhooks,
        [
            &Step::WebhookPresent {
                event: "create_item",
                id: "8".into()
            },
            &Step::CreateWebhook {
                event: "change_column_value"
            },
        ]
    );
}

fn settings(public: Option<&str>, token: Option<&str>, signing: bool) -> Settings {
    let mut s = Settings::default();
    s.http.public_url = public.map(str::to_owned);
    s.monday.webhook_token = token.map(|t| SecretString::from(t.to_owned()));
    s.monday.signing_secret = signing.then(|| SecretString::from("signing".to_owned()));
    s
}

#[test]
fn the_webhook_url_uses_the_token_route_and_never_shows_the_token() {
    type Case<'a> = (Option<&'a str>, Option<&'a str>, bool, (&'a str, &'a str));
    let cases: [Case<'_>; 4] = [
        (
            Some("https://gw.example.com"),
            Some("tok123"),
            true,
            (
                "https://gw.example.com/webhooks/monday/tok123",
                "https://gw.example.com/webhooks/monday/{MONDAY_WEBHOOK_TOKEN}",
            ),
        ),
        (
            Some("https://gw.example.com/sync/"),
            None,
            true,
            (
                "https://gw.example.com/sync/webhooks/monday",
                "https://gw.example.com/sync/webhooks/monday",
            ),
        ),
        (
            Some("http://127.0.0.1:8080"),
            Some("a b/c"),
            false,
            (
                "http://127.0.0.1:8080/webhooks/monday/a%20b%2Fc",
                "http://127.0.0.1:8080/webhooks/monday/{MONDAY_WEBHOOK_TOKEN}",
            ),
        ),
        (
            Some("https://gw.example.com"),
            Some("tok123"),
            false,
            (
                "https://gw.example.com/webhooks/monday/tok123",
                "https://gw.example.com/webhooks/monday/{MONDAY_WEBHOOK_TOKEN}",
            ),
        ),
    ];
    for (public, token, signing, (secret, shown)) in cases {
        let url = webhook_url(&settings(public, token, signing)).expect("a URL");
        assert_eq!((url.secret.as_str(), url.shown.as_str()), (secret, shown));
    }
}

#[test]
fn a_webhook_url_that_cannot_work_is_refused_with_the_reason() {
    let long = format!("https://{}.example.com", "a".repeat(250));
    let cases = [
        (
            settings(None, Some("t"), true),
            "GATEWAY_PUBLIC_URL is not set",
        ),
        (settings(Some("not a url"), Some("t"), true), "is not a URL"),
        (
            settings(Some("https://gw.example.com"), None, false),
            "neither MONDAY_WEBHOOK_TOKEN",
        ),
        (
            settings(Some(&long), Some("t"), true),
            "longer than Monday's 255",
        ),
    ];
    for (settings, expected) in cases {
        let error = webhook_url(&settings).expect_err(expected).to_string();
        assert!(error.contains(expected), "{error}");
    }
}

#[tokio::test]
async fn applying_a_plan_creates_each_thing_once_and_a_second_run_plans_nothing() {
    let fakes = Fakes::default();
    fakes.set_board(&[("email", "email"), ("name", "name")]);
    let url = WebhookUrl {
        secret: "https://gw.example.com/webhooks/monday/tok".into(),
        shown: "shown".into(),
    };
    let first = read_plan(&fakes, EntityKind::Contact, CONTACTS_BOARD, &contacts())
        .await
        .expect("plan");
    assert_eq!(first.changes(), 10, "{:?}", described(&first));
    let applied = apply(&fakes, &first, &url).await;
    assert!(applied.iter().all(|(_, r)| r.is_ok()), "{applied:?}");
    let calls = fakes.calls();
    let keys: std::collections::BTreeSet<String> = calls
        .iter()
        .filter_map(|c| match c {
            Call::CreateColumn { key, .. } | Call::CreateWebhook { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 10, "one idempotency key per step");
    assert!(calls.iter().all(|c| match c {
        Call::CreateWebhook { url, .. } => url == "https://gw.example.com/webhooks/monday/tok",
        _ => true,
    }));
    let second = read_plan(&fakes, EntityKind::Contact, CONTACTS_BOARD, &contacts())
        .await
        .expect("plan");
    assert_eq!((second.changes(), second.problems()), (0, 0));
}

#[tokio::test]
async fn a_board_that_does_not_exist_is_named() {
    let error = read_plan(
        &Fakes::default(),
        EntityKind::Contact,
        CONTACTS_BOARD,
        &contacts(),
    )
    .await
    .expect_err("no board");
    assert!(matches!(error, SetupError::BoardNotFound(b) if b == CONTACTS_BOARD));
}
