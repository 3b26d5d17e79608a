//! Tests of loading (defaults, file, environment), validation and the example file.

use std::collections::HashMap;
use std::io::Write;

use super::*;
use crate::domain::mapping::{ColumnType, Direction};

fn load(env: &[(&str, &str)], file: Option<&str>) -> Result<Settings, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let tmp = file.map(|text| {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write config");
        f
    });
    Settings::load_with(tmp.as_ref().map(|f| f.path()), |k| env.get(k).cloned())
}

fn problems(env: &[(&str, &str)], file: Option<&str>) -> String {
    match load(env, file) {
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    }
}

#[test]
fn defaults_match_the_contract() {
    let s = load(&[], None).expect("defaults are valid");
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.database.url.expose_secret(), "sqlite://data/gateway.db");
    assert_eq!(s.database.backend(), Ok(DatabaseBackend::Sqlite));
    assert_eq!(s.monday.api_url, "https://api.monday.com/v2");
    assert_eq!(s.monday.api_version, "2026-10");
    assert_eq!(s.log.filter, "info");
    assert_eq!(s.http.body_limit_bytes, 256 * 1024);
    assert_eq!(
        s.conflicts.policy(EntityKind::Contact, "email"),
        ConflictPolicy::LatestWins
    );
    assert!(!s.monday_configured());
    assert!(s.npd.verifier().is_none());
}

#[test]
fn environment_overrides_the_file() {
    let s = load(
        &[
            ("GATEWAY_LISTEN", "0.0.0.0:9000"),
            ("MONDAY_CONTACTS_BOARD_ID", "4100000001"),
            ("MONDAY_API_TOKEN", "tok"),
        ],
        Some("[gateway]\nlisten = \"127.0.0.1:7000\"\n[monday]\norganizations_board_id = 4100000002\n"),
    )
    .expect("valid");
    assert_eq!(s.http.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(
        s.board_for(EntityKind::Contact),
        Some(BoardId(4_100_000_001))
    );
    assert_eq!(
        s.kind_for_board(BoardId(4_100_000_002)),
        Some(EntityKind::Organization)
    );
    assert!(s.monday_configured());
}

#[test]
fn empty_environment_variables_count_as_unset() {
    let s = load(&[("MONDAY_API_TOKEN", ""), ("GATEWAY_LISTEN", " ")], None).expect("valid");
    assert!(s.monday.api_token.is_none());
    assert_eq!(s.http.listen.port(), 8080);
}

#[test]
fn file_sets_mapping_and_conflict_policies() {
    let s = load(
        &[],
        Some(
            r#"
[conflicts]
default = "npd_wins"
[conflicts.contacts]
email = "manual"
[mapping.organizations]
item_name = ["name"]
npd_id_column = "npd_ref"
[mapping.organizations.fields]
website = { column = "site", type = "link" }
"#,
        ),
    )
    .expect("valid");
    assert_eq!(
        s.conflicts.policy(EntityKind::Contact, "email"),
        ConflictPolicy::Manual
    );
    assert_eq!(
        s.conflicts.policy(EntityKind::Contact, "phone"),
        ConflictPolicy::NpdWins
    );
    assert_eq!(s.mapping.organizations.npd_id_column, "npd_ref");
    assert_eq!(
        s.mapping.organizations.field_for_column("site"),
        Some("website")
    );
}

#[test]
fn invalid_settings_are_refused_with_the_key_named() {
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
    let cases: &[Case<'_>] = &[
        (&[("GATEWAY_LISTEN", "nowhere")], None, "GATEWAY_LISTEN"),
        (
            &[("GATEWAY_DATABASE_URL", "mysql://x")],
            None,
            "GATEWAY_DATABASE_URL",
        ),
        (
            &[("GATEWAY_PUBLIC_URL", "gateway.example.com")],
            None,
            "GATEWAY_PUBLIC_URL",
        ),
        (&[("GATEWAY_LOG_FORMAT", "xml")], None, "GATEWAY_LOG_FORMAT"),
        (
            &[("NPD_WEBHOOK_SECRET", "whsec_!!!")],
            None,
            "NPD_WEBHOOK_SECRET",
        ),
        (
            &[("MONDAY_API_VERSION", "2023")],
            None,
            "MONDAY_API_VERSION",
        ),
        (
            &[("MONDAY_CONTACTS_BOARD_ID", "abc")],
            None,
            "MONDAY_CONTACTS_BOARD_ID",
        ),
        (
            &[("MONDAY_WEBHOOK_TOKEN", "short")],
            None,
            "MONDAY_WEBHOOK_TOKEN",
        ),
        (
            &[],
            Some("[conflicts]\ndefault = \"coin_flip\"\n"),
            "unknown conflict policy `coin_flip`",
        ),
        (
            &[],
            Some("[conflicts.contacts]\nshoe_size = \"manual\"\n"),
            "unknown contact field `shoe_size`",
        ),
        (
            &[],
            Some("[conflicts.contacts]\nemail = \"loudest\"\n"),
            "conflicts.contacts.email",
        ),
        (
            &[],
            Some("[gateway]\nlisten_port = 1\n"),
            "unknown field `listen_port`",
        ),
        (
            &[],
            Some(
                "[mapping.contacts]\nitem_name = [\"first_name\"]\nnpd_id_column = \"npd_id\"\n[mapping.contacts.fields]\nemail = { column = \"email\", type = \"board\" }\n",
            ),
            "unknown variant `board`",
        ),
    ];
    for (env, file, expected) in cases {
        let msg = problems(env, *file);
        assert!(msg.contains(expected), "expected `{expected}` in: {msg}");
    }
}

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let s = load(
        &[
            ("NPD_WEBHOOK_SECRET", secret),
            ("MONDAY_API_TOKEN", "monday-token-SECRET1"),
            ("MONDAY_SIGNING_SECRET", "signing-SECRET2"),
            ("GATEWAY_ADMIN_TOKEN", "admin-SECRET3"),
            (
                "GATEWAY_DATABASE_URL",
                "postgres://u:db-SECRET4@localhost/db",
            ),
        ],
        None,
    )
    .expect("valid");
    let debug = format!("{s:?}");
    for needle in [secret, "SECRET1", "SECRET2", "SECRET3", "SECRET4"] {
        assert!(!debug.contains(needle), "Debug leaks {needle}");
    }
    assert!(!s.database.redacted_url().contains("SECRET4"));
    // A broken secret in a file: the parse error names the line, not its content.
    let msg = problems(&[], Some("[npd]\nwebhook_secret = \"whsec_LEAK\" oops\n"));
    assert!(msg.contains("line 2"), "{msg}");
    assert!(!msg.contains("LEAK"), "{msg}");
    let msg = problems(&[("NPD_WEBHOOK_SECRET", "whsec_LEAK!!")], None);
    assert!(!msg.contains("LEAK"), "{msg}");
}

#[test]
fn an_unreadable_log_filter_is_refused_with_the_reason() {
    let msg = problems(&[("GATEWAY_LOG", "npd_monday_gateway=loud")], None);
    assert!(
        msg.contains("GATEWAY_LOG `npd_monday_gateway=loud`"),
        "{msg}"
    );
    for fine in ["info", "warn,npd_monday_gateway=debug", "off"] {
        assert!(
            load(&[("GATEWAY_LOG", fine)], None).is_ok(),
            "`{fine}` is a filter"
        );
    }
}

#[test]
fn redacted_urls_hold_no_password_in_any_form() {
    let cases = [
        (
            "postgres://u:pw-SECRET@db:5432/gw",
            "postgres://u:REDACTED@db:5432/gw",
        ),
        (
            "postgres://u@db/gw?password=pw-SECRET&sslmode=require",
            "postgres://u@db/gw?password=REDACTED&sslmode=require",
        ),
        (
            "postgresql://db/gw?user=u&PassWord=pw%20SECRET&sslpassword=key-SECRET",
            "postgresql://db/gw?user=u&PassWord=REDACTED&sslpassword=REDACTED",
        ),
        ("postgres://u@db/gw", "postgres://u@db/gw"),
        ("sqlite://data/gateway.db", "sqlite://data/gateway.db"),
        ("postgres://u:pw-SECRET@[::1", "[unparseable database url]"),
    ];
    for (url, expected) in cases {
        let settings = DatabaseSettings {
            url: SecretString::from(url.to_owned()),
            ..DatabaseSettings::default()
        };
        let redacted = settings.redacted_url();
        assert!(!redacted.contains("SECRET"), "{url} -> {redacted}");
        assert_eq!(redacted, expected, "{url}");
    }
}

#[test]
fn the_example_file_is_valid_as_shipped_and_with_every_commented_key_enabled() {
    let example = include_str!("../../fixtures/gateway.example.toml");
    let shipped = load(&[], Some(example)).expect("the example file loads as shipped");
    assert_eq!(shipped.http.listen.to_string(), "127.0.0.1:8080");
    // Uncomment every `# key = value` line: each must name a real key with a valid value.
    let enabled: String = example
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| !k.contains(' ')) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let s = load(&[], Some(&enabled)).expect("every documented key is valid");
    assert!(s.npd.webhook_secret.is_some() && s.monday.webhook_token.is_some());
    assert_eq!(
        s.board_for(EntityKind::Contact),
        Some(BoardId(4_100_000_001))
    );
    assert_eq!(
        s.conflicts.policy(EntityKind::Contact, "email"),
        ConflictPolicy::Manual
    );
    assert_eq!(
        s.conflicts.policy(EntityKind::Organization, "website"),
        ConflictPolicy::NpdWins
    );
    assert_eq!(
        s.http.public_url.as_deref(),
        Some("https://gateway.example.com")
    );
    let contacts = &s.mapping.contacts.fields;
    assert_eq!(contacts["stage"].labels["customer"], "Done");
    assert!(contacts["tags"].create_labels);
    assert_eq!(contacts["birthday"].direction, Direction::ToMonday);
    assert_eq!(contacts["score"].direction, Direction::ToNpd);
    assert_eq!(contacts["stage"].direction, Direction::Both);
    for (field, column_type) in [
        ("stage", ColumnType::Status),
        ("tags", ColumnType::Dropdown),
        ("birthday", ColumnType::Date),
        ("score", ColumnType::Numbers),
        ("vip", ColumnType::Checkbox),
        ("country", ColumnType::Country),
        ("organization_id", ColumnType::BoardRelation),
    ] {
        assert_eq!(contacts[field].column_type, column_type, "{field}");
    }
    for kind in EntityKind::ALL {
        assert_eq!(
            s.mapping
                .for_kind(kind)
                .default_phone_country
                .map(|c| c.to_string()),
            Some("US".to_owned()),
            "{kind}: the section's phone country reaches the kind's mapping"
        );
    }
}

#[test]
fn a_default_phone_country_that_is_not_iso_alpha_2_is_refused_by_name() {
    for bad in ["usa", "us", "ZZ", "1"] {
        let file = format!("[mapping]\ndefault_phone_country = \"{bad}\"\n");
        let err = load(&[], Some(&file)).expect_err(bad).to_string();
        assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        assert!(err.contains("ISO 3166 alpha-2"), "{bad}: {err}");
    }
}

#[test]
fn monday_audience_is_built_from_the_public_url() {
    let s = load(
        &[("GATEWAY_PUBLIC_URL", "https://gateway.example.com/")],
        None,
    )
    .expect("valid");
    assert_eq!(
        s.http.monday_audience().as_deref(),
        Some("https://gateway.example.com/webhooks/monday")
    );
}

#[test]
fn bad_file_values_are_refused_with_their_key_and_line() {
    let cases = [
        (
            "[gateway]\nlog = \"info\"\nlisten = \"nowhere\"\n",
            "gateway: listen:",
        ),
        (
            "[gateway]\nlog_format = \"xml\"\n",
            "log_format: `xml` must be `text` or `json`",
        ),
        (
            "[gateway]\ndatabase_max_connections = -1\n",
            "database_max_connections:",
        ),
        (
            "\n[monday]\ncontacts_board_id = 0\n",
            "line 3: monday.contacts_board_id: must be a positive",
        ),
        (
            "[monday]\norganizations_board_id = \"abc\"\n",
            "monday.organizations_board_id:",
        ),
        (
            "[sync]\nlease_ms = \"soon\"\n",
            "line 2: sync.lease_ms: invalid type",
        ),
        (
            "[conflicts]\ndefault = \"coin_flip\"\n",
            "conflicts.default: unknown conflict policy",
        ),
        (
            "[backfill]\ninitial_winner = \"coin\"\n",
            "backfill.initial_winner: unknown initial winner `coin`",
        ),
        (
            "[drift]\ninterval = \"often\"\n",
            "drift.interval: `often` is not a duration",
        ),
    ];
    for (file, expected) in cases {
        let msg = problems(&[], Some(file));
        assert!(msg.contains(expected), "expected `{expected}` in: {msg}");
        assert!(!msg.ends_with('\n'), "{msg:?}");
    }
}

#[test]
fn unknown_keys_are_refused_in_every_table() {
    for (file, key) in [
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\nlisten_port = 1\n",
            "listen_port",
        ),
        ("[npd]\nsecret = \"x\"\n", "secret"),
        ("[monday]\nboard_id = 1\n", "board_id"),
        ("[mapping]\ndeals = {}\n", "deals"),
        ("[conflicts]\nfallback = \"manual\"\n", "fallback"),
        ("[sync]\nleash_ms = 1\n", "leash_ms"),
        ("[backfill]\nwinner = \"npd\"\n", "winner"),
        ("[drift]\nevery = \"1h\"\n", "every"),
        ("[retries]\nbase_ms = 1\n", "retries"),
    ] {
        let msg = problems(&[], Some(file));
        assert!(
            msg.contains(&format!("unknown field `{key}`")),
            "{file}: {msg}"
        );
    }
}

#[test]
fn backfill_and_drift_take_a_winner_and_an_interval() {
    let s = load(
        &[],
        Some("[backfill]\ninitial_winner = \"manual\"\n\n[drift]\ninterval = \"0s\"\n"),
    )
    .expect("valid");
    assert_eq!(
        s.backfill.initial_winner,
        crate::domain::scan::InitialWinner::Manual
    );
    assert_eq!(s.drift.interval, std::time::Duration::ZERO);
    let d = Settings::default();
    assert_eq!(d.drift.interval, std::time::Duration::from_secs(6 * 3600));
    assert_eq!(
        d.backfill.initial_winner,
        crate::domain::scan::InitialWinner::Npd
    );
}

#[test]
fn console_sessions_take_an_idle_timeout_and_an_absolute_maximum() {
    let s = load(
        &[],
        Some("[console]\nsession_idle = \"5m\"\nsession_max = \"1h\"\n"),
    )
    .expect("valid");
    assert_eq!(s.console.session_idle, std::time::Duration::from_secs(300));
    assert_eq!(s.console.session_max, std::time::Duration::from_secs(3600));
    for (toml, problem) in [
        ("[console]\nsession_idle = \"0s\"\n", "must be positive"),
        (
            "[console]\nsession_idle = \"2h\"\nsession_max = \"1h\"\n",
            "must not be longer",
        ),
        (
            "[console]\nsession_idle = \"soon\"\n",
            "console.session_idle: `soon`",
        ),
        ("[console]\ntimeout = \"1h\"\n", "timeout"),
    ] {
        let e = load(&[], Some(toml)).expect_err(toml).to_string();
        assert!(e.contains(problem), "{toml}: {e}");
    }
}

#[test]
fn a_board_id_may_be_a_number_or_a_string_of_digits() {
    let s = load(
        &[],
        Some("[monday]\ncontacts_board_id = 4100000001\norganizations_board_id = \"4100000002\"\n"),
    )
    .expect("valid");
    assert_eq!(
        s.board_for(EntityKind::Contact),
        Some(BoardId(4_100_000_001))
    );
    assert_eq!(
        s.board_for(EntityKind::Organization),
        Some(BoardId(4_100_000_002))
    );
}

#[test]
fn the_example_file_as_shipped_states_the_defaults() {
    // Every key the example sets, it sets to its default: loading it changes nothing.
    let example = include_str!("../../fixtures/gateway.example.toml");
    let shipped = load(&[], Some(example)).expect("the example file loads as shipped");
    assert_eq!(format!("{shipped:?}"), format!("{:?}", Settings::default()));
}
