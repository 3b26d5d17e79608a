//! In-process Prometheus metrics: what `/metrics` answers besides the few cheap ledger gauges.
//!
//! Owns: `Metrics`, one registry per running gateway (so several gateways in one process, as in
//! the tests, never mix their counts), every metric's name, labels and buckets, the one-line ways
//! to count (`event_processed`, `sync_latency`, `monday_request`, `drift_repaired`, ...), and
//! `render` (Prometheus text format 0.0.4). Counters count what this process did since it started;
//! Prometheus sums them over replicas. Gauges are set at scrape time by whoever reads them (the
//! ledger's queue depths, the Monday budget). Counting never fails and never blocks on I/O.
//! May import: std, prometheus, crate::domain.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::domain::entity::Side;
use crate::domain::state::{InboxOutcome, JobState};

/// Buckets of request durations, in seconds: a webhook is answered in milliseconds.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of sync latency, in seconds: from a fraction of a second to half an hour of backlog.
const SYNC_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// A gauge read from the ledger at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerGauge {
    /// Inbox rows not processed yet.
    InboxUnprocessed,
    /// Seconds since the oldest unprocessed inbox row was accepted (0 when none).
    InboxOldestUnprocessedSeconds,
    /// Outbox jobs in a state (`dead` are the dead letters).
    OutboxJobs(JobState),
    /// Seconds the most overdue pending job is past its due time (0 when none is due).
    OutboxOldestDueSeconds,
    /// Conflicts waiting for an admin.
    ConflictsOpen,
}

/// A request being served; counted in flight until dropped.
pub struct InFlight(Metrics);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.0.http_in_flight.dec();
    }
}

/// The gateway's metrics. Cheap to clone: clones share the registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    http_duration: HistogramVec,
    http_in_flight: IntGauge,
    http_shed: IntCounter,
    sync_latency: HistogramVec,
    monday_requests: IntCounterVec,
    budget_remaining: GaugeVec,
    events_processed: IntCounterVec,
    echoes: IntCounterVec,
    drift_repairs: IntCounterVec,
    conflicts_opened: IntCounter,
    conflicts_resolved: IntCounter,
    dead_letters: IntCounterVec,
    ledger: GaugeVec,
    ledger_jobs: GaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Registers `metric` with `registry`. Names are constants of this module and distinct (a test
/// builds the registry), so registration cannot fail at run time.
fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are distinct and valid");
    metric
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str], b: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(b.to_vec());
    register(r, HistogramVec::new(opts, labels).expect("valid histogram"))
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        r,
        GaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"),
    )
}

fn plain_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(r, IntCounter::new(name, help).expect("valid counter"))
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let inner = Inner {
            http_duration: histogram(
                &r,
                "gateway_http_request_duration_seconds",
                "HTTP requests by route template and status, from the first byte read to the answer.",
                &["route", "status"],
                HTTP_BUCKETS,
            ),
            http_in_flight: register(
                &r,
                IntGauge::new(
                    "gateway_http_requests_in_flight",
                    "Requests being served now (counted against max_concurrent_requests).",
                )
                .expect("valid gauge"),
            ),
            http_shed: plain_counter(
                &r,
                "gateway_http_requests_shed_total",
                "Requests answered 503 at once because max_concurrent_requests were being served.",
            ),
            sync_latency: histogram(
                &r,
                "gateway_sync_latency_seconds",
                "From an event's acceptance (its inbox row) to the other side acknowledging the write it caused.",
                &["direction"],
                SYNC_BUCKETS,
            ),
            monday_requests: counter(
                &r,
                "gateway_monday_requests_total",
                "Requests to Monday's API by root field and outcome (ok, retryable, permanent, not_found).",
                &["operation", "outcome"],
            ),
            budget_remaining: gauge(
                &r,
                "gateway_monday_budget_remaining",
                "What is left of this process's Monday budget: requests this minute, complexity points this minute, calls today (+Inf without a daily cap).",
                &["kind"],
            ),
            events_processed: counter(
                &r,
                "gateway_events_processed_total",
                "Inbox events processed, by source and outcome.",
                &["source", "outcome"],
            ),
            echoes: counter(
                &r,
                "gateway_echoes_total",
                "Events recognised as the echo of the gateway's own write, by source.",
                &["source"],
            ),
            drift_repairs: counter(
                &r,
                "gateway_drift_repairs_total",
                "Differences found by drift scans and queued for repair, by direction.",
                &["direction"],
            ),
            conflicts_opened: plain_counter(
                &r,
                "gateway_conflicts_opened_total",
                "Conflicts opened for an admin (manual policy).",
            ),
            conflicts_resolved: plain_counter(
                &r,
                "gateway_conflicts_resolved_total",
                "Conflicts an admin resolved.",
            ),
            dead_letters: counter(
                &r,
                "gateway_dead_letters_total",
                "Jobs moved to the dead letters, by target.",
                &["target"],
            ),
            ledger: gauge(
                &r,
                "gateway_queue",
                "Ledger readings at scrape time: inbox_unprocessed, inbox_oldest_unprocessed_seconds, outbox_oldest_due_seconds, conflicts_open.",
                &["reading"],
            ),
            ledger_jobs: gauge(
                &r,
                "gateway_outbox_jobs",
                "Outbox jobs by state at scrape time (pending, leased, dead = the dead letters).",
                &["state"],
            ),
            registry: r,
        };
        Metrics(Arc::new(inner))
    }

    /// One answered HTTP request on `route` (the route template, never the raw path).
    pub fn http_request(&self, route: &str, status: u16, elapsed: Duration) {
        self.0
            .http_duration
            .with_label_values(&[route, &status.to_string()])
            .observe(elapsed.as_secs_f64());
    }

    /// A request let in past the concurrency cap: in `gateway_http_requests_in_flight` until the
    /// guard is dropped.
    pub fn request_started(&self) -> InFlight {
        self.0.http_in_flight.inc();
        InFlight(self.clone())
    }

    /// A request shed at the concurrency cap.
    pub fn request_shed(&self) {
        self.0.http_shed.inc();
    }

    /// A write to `target` acknowledged `elapsed` after the event behind it was accepted.
    pub fn sync_latency(&self, target: Side, elapsed: Duration) {
        self.0
            .sync_latency
            .with_label_values(&[direction(target)])
            .observe(elapsed.as_secs_f64());
    }

    /// One request to Monday's API: its root field and `outcome` (`ok` or a failure class).
    pub fn monday_request(&self, operation: &str, outcome: &str) {
        self.0
            .monday_requests
            .with_label_values(&[operation, outcome])
            .inc();
    }

    /// What is left of the Monday budget (`f64::INFINITY` for a limit that is not set).
    pub fn set_budget_remaining(&self, minute: f64, complexity: f64, daily: f64) {
        for (kind, value) in [
            ("minute", minute),
            ("complexity", complexity),
            ("daily", daily),
        ] {
            self.0
                .budget_remaining
                .with_label_values(&[kind])
                .set(value);
        }
    }

    /// One inbox event processed (and committed) with `outcome`; echoes are also counted alone.
    pub fn event_processed(&self, source: Side, outcome: InboxOutcome) {
        self.0
            .events_processed
            .with_label_values(&[source.as_str(), outcome.as_str()])
            .inc();
        if outcome == InboxOutcome::Echo {
            self.0.echoes.with_label_values(&[source.as_str()]).inc();
        }
    }

    /// One difference found by a drift scan and queued to be written to `to`.
    pub fn drift_repaired(&self, to: Side) {
        let label = match to {
            Side::Monday => "to_monday",
            Side::Npd => "to_npd",
        };
        self.0.drift_repairs.with_label_values(&[label]).inc();
    }

    pub fn conflicts_opened(&self, n: u64) {
        self.0.conflicts_opened.inc_by(n);
    }

    pub fn conflict_resolved(&self) {
        self.0.conflicts_resolved.inc();
    }

    /// One job of `target` moved to the dead letters.
    pub fn dead_lettered(&self, target: Side) {
        self.0
            .dead_letters
            .with_label_values(&[target.as_str()])
            .inc();
    }

    /// Sets a ledger reading taken at scrape time.
    pub fn set_ledger(&self, reading: LedgerGauge, value: f64) {
        let (vec, label) = match reading {
            LedgerGauge::OutboxJobs(state) => (&self.0.ledger_jobs, state.as_str()),
            LedgerGauge::InboxUnprocessed => (&self.0.ledger, "inbox_unprocessed"),
            LedgerGauge::InboxOldestUnprocessedSeconds => {
                (&self.0.ledger, "inbox_oldest_unprocessed_seconds")
            }
            LedgerGauge::OutboxOldestDueSeconds => (&self.0.ledger, "outbox_oldest_due_seconds"),
            LedgerGauge::ConflictsOpen => (&self.0.ledger, "conflicts_open"),
        };
        vec.with_label_values(&[label]).set(value);
    }

    /// Every metric in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a family it cannot encode is left out.
        let _ = TextEncoder::new().encode(&self.0.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The `direction` label of a write to `target`.
fn direction(target: Side) -> &'static str {
    match target {
        Side::Monday => "npd_to_monday",
        Side::Npd => "monday_to_npd",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name{labels}` in `text` (labels in the encoder's order: by name).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_metric_is_rendered_with_its_labels_and_values() {
        let m = Metrics::new();
        m.http_request("/api/v1/npd/events", 202, Duration::from_millis(3));
        m.sync_latency(Side::Monday, Duration::from_millis(700));
        m.sync_latency(Side::Npd, Duration::from_secs(2));
        m.monday_request("create_item", "ok");
        m.monday_request("create_item", "ok");
        m.set_budget_remaining(99.0, 4_990_000.0, f64::INFINITY);
        m.event_processed(Side::Monday, InboxOutcome::Echo);
        m.event_processed(Side::Npd, InboxOutcome::Applied);
        m.drift_repaired(Side::Npd);
        m.conflicts_opened(2);
        m.conflict_resolved();
        m.dead_lettered(Side::Monday);
        m.set_ledger(LedgerGauge::OutboxJobs(JobState::Dead), 1.0);
        m.set_ledger(LedgerGauge::InboxUnprocessed, 4.0);
        let text = m.render();
        let expected: &[(&str, f64)] = &[
            (
                r#"gateway_http_request_duration_seconds_count{route="/api/v1/npd/events",status="202"}"#,
                1.0,
            ),
            (
                r#"gateway_sync_latency_seconds_bucket{direction="npd_to_monday",le="1"}"#,
                1.0,
            ),
            (
                r#"gateway_sync_latency_seconds_bucket{direction="monday_to_npd",le="1"}"#,
                0.0,
            ),
            (
                r#"gateway_monday_requests_total{operation="create_item",outcome="ok"}"#,
                2.0,
            ),
            (r#"gateway_monday_budget_remaining{kind="minute"}"#, 99.0),
            (
                r#"gateway_monday_budget_remaining{kind="daily"}"#,
                f64::INFINITY,
            ),
            (r#"gateway_echoes_total{source="monday"}"#, 1.0),
            (
                r#"gateway_events_processed_total{outcome="applied",source="npd"}"#,
                1.0,
            ),
            (r#"gateway_drift_repairs_total{direction="to_npd"}"#, 1.0),
            ("gateway_conflicts_opened_total", 2.0),
            ("gateway_conflicts_resolved_total", 1.0),
            (r#"gateway_dead_letters_total{target="monday"}"#, 1.0),
            (r#"gateway_outbox_jobs{state="dead"}"#, 1.0),
            (r#"gateway_queue{reading="inbox_unprocessed"}"#, 4.0),
        ];
        for (series, value) in expected {
            assert_eq!(sample(&text, series), Some(*value), "{series} in\n{text}");
        }
    }

    #[test]
    fn two_gateways_in_one_process_keep_their_own_counts() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.conflict_resolved();
        assert_eq!(
            sample(&a.render(), "gateway_conflicts_resolved_total"),
            Some(1.0)
        );
        assert_eq!(
            sample(&b.render(), "gateway_conflicts_resolved_total"),
            Some(0.0)
        );
        let clone = a.clone();
        clone.conflict_resolved();
        assert_eq!(
            sample(&a.render(), "gateway_conflicts_resolved_total"),
            Some(2.0)
        );
    }
}
