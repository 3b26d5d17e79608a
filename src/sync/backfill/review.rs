//! The review queue: records a backfill found more than one candidate item for, listed and
//! resolved by an admin (link to a chosen candidate, create a new item, or ignore).
//!
//! Owns: `ReviewChoice`, `ReviewError`, `Scans::reviews`, `Scans::resolve_review`. A resolution
//! reads the record from NPD and the chosen item from Monday first (outside any transaction), so
//! it links what the two sides hold now, then goes through the same link or create as the
//! backfill, at admin priority.
//! May import: std, crate::{connectors, domain, ledger, sync}.

use crate::connectors::ConnectorError;
use crate::domain::entity::MondayItemId;
use crate::domain::scan::{MatchStatus, StagedItem};
use crate::domain::state::HistoryKind;
use crate::ledger::scans::{self, ReviewRow};
use crate::ledger::{LedgerError, LedgerResult, entities};
use crate::sync::history::{Cause, record};
use crate::sync::push::Requester;
use crate::sync::scan::{ScanError, Scans, staged_item};

/// What an admin decided for a record in review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewChoice {
    /// Link the record to this candidate item.
    Link(MondayItemId),
    /// Create a new item for it.
    Create,
    /// Leave it alone.
    Ignore,
}

/// Why a review could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no review {0}")]
    NotFound(i64),
    #[error("review {0} is already resolved")]
    AlreadyResolved(i64),
    #[error("Monday item {0} is not one of the record's candidates")]
    NotACandidate(MondayItemId),
    #[error("{0}")]
    Gone(String),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<ConnectorError> for ReviewError {
    fn from(error: ConnectorError) -> Self {
        ReviewError::Scan(ScanError::Remote {
            what: "the record or the item".into(),
            error,
        })
    }
}

impl Scans {
    /// Reviews in `status`, oldest first, with ids above `after`.
    pub async fn reviews(
        &self,
        status: MatchStatus,
        after: i64,
        limit: i64,
    ) -> LedgerResult<Vec<ReviewRow>> {
        self.store.reviews(status, after, limit).await
    }

    /// Resolves review `id` as `choice` on behalf of `by`; the closed review.
    pub async fn resolve_review(
        &self,
        id: i64,
        choice: ReviewChoice,
        by: Requester<'_>,
    ) -> Result<ReviewRow, ReviewError> {
        let review = self.open_review(id).await?;
        let kind = review.entity_kind;
        let (_, monday, npd) = self.remotes_for(kind)?;
        let fetched = match choice {
            ReviewChoice::Ignore => None,
            _ => Some(npd.get(kind, review.npd_id).await?.ok_or_else(|| {
                ReviewError::Gone(format!("{kind} {} is gone from NPD", review.npd_id))
            })?),
        };
        let item: Option<StagedItem> = match choice {
            ReviewChoice::Link(item) => {
                if !review.candidates.0.iter().any(|c| c.monday_item_id == item) {
                    return Err(ReviewError::NotACandidate(item));
                }
                let found = monday.get_item(item).await?.filter(|i| i.state == "active");
                let found = found.ok_or_else(|| {
                    ReviewError::Gone(format!("Monday item {item} is gone from the board"))
                })?;
                Some(staged_item(self.settings.mapping.for_kind(kind), &found))
            }
            _ => None,
        };
        let cause = Cause::review(by.request_id);
        let mut tx = self.store.begin().await?;
        let status = match choice {
            ReviewChoice::Link(_) => MatchStatus::Linked,
            ReviewChoice::Create => MatchStatus::Created,
            ReviewChoice::Ignore => MatchStatus::Ignored,
        };
        let chosen = item.as_ref().map(|i| i.id);
        if !scans::close_review(&mut tx, id, status, chosen, by.actor).await? {
            tx.rollback().await?;
            return Err(ReviewError::AlreadyResolved(id));
        }
        match (fetched, item) {
            (Some(record), Some(item)) => {
                self.link_pair(&mut tx, kind, &record, &item, None, &cause)
                    .await?
            }
            (Some(record), None) => {
                self.queue_create(&mut tx, kind, None, &record, &cause)
                    .await?
            }
            _ => {}
        }
        if let Some(entity) = entities::find_by_npd(&mut tx, kind, review.npd_id).await? {
            let text = format!("review {id} resolved by {}: {status}", by.actor);
            record(
                &mut tx,
                entity.id,
                &cause,
                HistoryKind::Resolved,
                text,
                None,
            )
            .await?;
        }
        let closed = scans::find_review(&mut tx, id).await?;
        tx.commit().await?;
        closed.ok_or(ReviewError::NotFound(id))
    }

    async fn open_review(&self, id: i64) -> Result<ReviewRow, ReviewError> {
        let mut tx = self.store.begin_read().await?;
        let review = scans::find_review(&mut tx, id).await;
        tx.rollback().await?;
        match review? {
            None => Err(ReviewError::NotFound(id)),
            Some(r) if r.status != MatchStatus::Review => Err(ReviewError::AlreadyResolved(id)),
            Some(r) => Ok(r),
        }
    }
}
