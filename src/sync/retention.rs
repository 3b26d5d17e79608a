//! Retention: prune what the ledger no longer needs, as `[retention]` says.
//!
//! Owns: `prune_all`. Each prunable kind is deleted in batches of `BATCH` rows, one short
//! transaction each, yielding between batches, so ingest never waits long behind pruning; an
//! inbox row is kept at least `dedupe_window` whatever `processed_events` says.
//! May import: std, tokio, tracing, crate::{config, ledger}.

use std::time::Duration;

use crate::config::RetentionSettings;
use crate::ledger::retention::Prunable;
use crate::ledger::{LedgerResult, Store, now_ms};

/// Rows deleted per transaction.
pub const BATCH: i64 = 500;

/// How long `what` is kept.
fn window(retention: &RetentionSettings, what: Prunable) -> Duration {
    match what {
        Prunable::ProcessedEvents => retention.processed_events.max(retention.dedupe_window),
        Prunable::History => retention.history,
        Prunable::FinishedJobs => retention.finished_jobs,
        Prunable::Audit => retention.audit,
    }
}

/// Prunes everything older than its window; how many rows of each kind were deleted.
pub async fn prune_all(
    store: &Store,
    retention: &RetentionSettings,
) -> LedgerResult<Vec<(Prunable, u64)>> {
    let now = now_ms();
    let mut report = Vec::new();
    for what in Prunable::ALL {
        let keep_ms = i64::try_from(window(retention, what).as_millis()).unwrap_or(i64::MAX);
        let before = now.saturating_sub(keep_ms);
        let mut total = 0;
        loop {
            let deleted = store.prune(what, before, BATCH).await?;
            total += deleted;
            if deleted < BATCH.unsigned_abs() {
                break;
            }
            tokio::task::yield_now().await;
        }
        if total > 0 {
            tracing::info!(retention.kind = what.as_str(), rows = total, "pruned");
        }
        report.push((what, total));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbox_row_is_kept_at_least_the_dedupe_window() {
        let retention = RetentionSettings {
            processed_events: Duration::from_secs(60),
            dedupe_window: Duration::from_secs(3_600),
            ..RetentionSettings::default()
        };
        assert_eq!(
            window(&retention, Prunable::ProcessedEvents),
            Duration::from_secs(3_600)
        );
        let longer = RetentionSettings {
            processed_events: Duration::from_secs(7_200),
            ..retention
        };
        assert_eq!(
            window(&longer, Prunable::ProcessedEvents),
            Duration::from_secs(7_200)
        );
    }
}
