//! Validation of loaded settings: ranges, formats and cross-field rules, one check per section.
//!
//! Owns: `Settings::problems`. Each problem is a sentence naming the key (its environment
//! variable where it has one) and never a secret value.
//! May import: std, secrecy, url, tracing-subscriber (to parse the log filter), crate::config,
//! crate::domain, crate::auth.

use secrecy::ExposeSecret;

use super::{
    ConsoleSettings, DatabaseSettings, HttpSettings, LogSettings, MondaySettings, NpdSettings,
    Settings, SyncSettings,
};
use crate::auth::standard_webhooks::WebhookSecret;
use crate::domain::entity::EntityKind;

impl Settings {
    /// Every problem with these settings, as sentences naming the key. Empty when valid.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        self.database.check_backend(&mut problems);
        self.http.check(&mut problems);
        self.log.check(&mut problems);
        self.database.check(&mut problems);
        self.npd.check(&mut problems);
        self.monday.check(&mut problems);
        self.sync.check(&mut problems);
        self.console.check(&mut problems);
        self.check_mapping_and_conflicts(&mut problems);
        problems
    }

    fn check_mapping_and_conflicts(&self, problems: &mut Vec<String>) {
        for kind in EntityKind::ALL {
            problems.extend(self.mapping.for_kind(kind).problems(kind));
            for field in self.conflicts.for_kind(kind).keys() {
                if !kind.fields().contains(&field.as_str()) {
                    problems.push(format!(
                        "conflicts.{} names unknown {kind} field `{field}` (known: {})",
                        kind.plural(),
                        kind.fields().join(", ")
                    ));
                }
            }
        }
    }
}

impl ConsoleSettings {
    fn check(&self, problems: &mut Vec<String>) {
        if self.session_idle.is_zero() || self.session_max.is_zero() {
            problems.push("console.session_idle and console.session_max must be positive".into());
        }
        if self.session_idle > self.session_max {
            problems
                .push("console.session_idle must not be longer than console.session_max".into());
        }
    }
}

impl HttpSettings {
    fn check(&self, problems: &mut Vec<String>) {
        if let Some(url) = &self.public_url
            && !is_http_url(url)
        {
            problems.push(
                "GATEWAY_PUBLIC_URL must be an absolute http(s) URL such as https://gateway.example.com"
                    .into(),
            );
        }
        if self.body_limit_bytes == 0 {
            problems.push("gateway.body_limit_bytes must be positive".into());
        }
        if self.header_read_timeout_ms == 0 || self.request_timeout_ms == 0 {
            problems.push("gateway timeouts must be positive".into());
        }
        if !(1..=1_000_000).contains(&self.max_concurrent_requests) {
            problems.push("gateway.max_concurrent_requests must be between 1 and 1000000".into());
        }
    }
}

impl DatabaseSettings {
    fn check_backend(&self, problems: &mut Vec<String>) {
        if let Err(e) = self.backend() {
            problems.push(e);
        }
    }

    fn check(&self, problems: &mut Vec<String>) {
        if self.max_connections == 0 {
            problems.push("gateway.database_max_connections must be positive".into());
        }
        if self.ingest_timeout_ms == 0 {
            problems.push("gateway.ingest_timeout_ms must be positive".into());
        }
        if self.ingest_batch_max == 0 || self.ingest_writers == 0 {
            problems.push(
                "gateway.ingest_batch_max and gateway.ingest_writers must be positive".into(),
            );
        }
    }
}

impl LogSettings {
    /// An unreadable filter is refused, never quietly replaced by `info`.
    fn check(&self, problems: &mut Vec<String>) {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.filter) {
            problems.push(format!(
                "GATEWAY_LOG `{}` is not a tracing filter ({e}); e.g. `info` or `npd_monday_gateway=debug,info`",
                self.filter
            ));
        }
    }
}

impl NpdSettings {
    fn check(&self, problems: &mut Vec<String>) {
        if let Some(secret) = &self.webhook_secret
            && let Err(e) = WebhookSecret::parse_list(secret.expose_secret())
        {
            problems.push(format!("NPD_WEBHOOK_SECRET: {e}"));
        }
        if !(1..=3600).contains(&self.timestamp_tolerance_secs) {
            problems.push("npd.timestamp_tolerance_secs must be between 1 and 3600".into());
        }
        if let Some(url) = &self.api_url
            && !is_http_url(url)
        {
            problems.push("NPD_API_URL must be an absolute http(s) URL".into());
        }
    }
}

impl MondaySettings {
    fn check(&self, problems: &mut Vec<String>) {
        if !is_http_url(&self.api_url) {
            problems.push("MONDAY_API_URL must be an absolute http(s) URL".into());
        }
        if !is_api_version(&self.api_version) {
            problems.push(format!(
                "MONDAY_API_VERSION `{}` is not a Monday API version (YYYY-01|04|07|10, or dev)",
                self.api_version
            ));
        }
        if let Some(token) = &self.webhook_token
            && !is_url_safe_token(token.expose_secret())
        {
            problems.push(
                "MONDAY_WEBHOOK_TOKEN must be at least 16 URL-safe characters (letters, digits, - or _)"
                    .into(),
            );
        }
        if self.requests_per_minute == 0 || self.complexity_per_minute == 0 {
            problems.push(
                "monday.requests_per_minute and monday.complexity_per_minute must be positive"
                    .into(),
            );
        }
        if !(1..=100).contains(&self.batch_max) {
            problems.push("monday.batch_max must be between 1 and 100".into());
        }
        if self.batch_fill_wait_ms > 60_000 {
            problems.push("monday.batch_fill_wait_ms must be at most 60000".into());
        }
        if !(0..=10).contains(&self.jwt_leeway_secs) {
            problems.push("monday.jwt_leeway_secs must be between 0 and 10".into());
        }
        if self.contacts_board_id.is_some() && self.contacts_board_id == self.organizations_board_id
        {
            problems.push(
                "MONDAY_CONTACTS_BOARD_ID and MONDAY_ORGANIZATIONS_BOARD_ID must differ".into(),
            );
        }
    }
}

impl SyncSettings {
    fn check(&self, problems: &mut Vec<String>) {
        if self.retry_base_ms == 0 || self.retry_cap_ms < self.retry_base_ms {
            problems
                .push("sync.retry_base_ms must be positive and at most sync.retry_cap_ms".into());
        }
        if self.max_attempts < 1 {
            problems.push("sync.max_attempts must be at least 1".into());
        }
        if self.lease_ms < 1_000 || self.lease_ms <= self.monday_timeout_ms.max(self.npd_timeout_ms)
        {
            problems.push(
                "sync.lease_ms must exceed the Monday and NPD call timeouts (a lease must outlive its call)".into(),
            );
        }
        if self.dispatch_concurrency == 0
            || self.processors == 0
            || self.poll_interval_ms == 0
            || self.admin_requests_per_minute == 0
            || self.admin_auth_failures_per_minute == 0
        {
            problems.push(
                "sync.dispatch_concurrency, sync.processors, sync.poll_interval_ms, sync.admin_requests_per_minute and sync.admin_auth_failures_per_minute must be positive"
                    .into(),
            );
        }
        if self.monday_timeout_ms == 0
            || self.monday_timeout_ms > 60_000
            || self.npd_timeout_ms == 0
        {
            problems.push(
                "sync.monday_timeout_ms must be 1..=60000 and sync.npd_timeout_ms positive".into(),
            );
        }
    }
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false)
}

fn is_api_version(v: &str) -> bool {
    if v == "dev" {
        return true;
    }
    let b = v.as_bytes();
    b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && matches!(&v[5..], "01" | "04" | "07" | "10")
}

/// At least 16 characters, each a letter, a digit, `-` or `_`.
fn is_url_safe_token(t: &str) -> bool {
    t.len() >= 16
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
