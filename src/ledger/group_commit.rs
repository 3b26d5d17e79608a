//! Group commit for the inbox: concurrent requests share one transaction and one fsync.
//!
//! Owns: `InboxWriter`, the only path by which ingress stores deliveries. A request hands its row
//! to a writer task and waits; the writer takes every row waiting at that moment (up to
//! `batch_max`), inserts them with one statement in one transaction, commits, and only then answers
//! each request. Durability is unchanged (nobody is answered before the commit that holds its row);
//! what changes is that N concurrent requests cost one commit instead of N. If a batch fails, its
//! rows are retried one by one so a single bad row cannot fail its neighbours, unless the store
//! itself is unavailable (then every row of the batch fails at once: retrying each would hold the
//! queue for a connect timeout per row).
//! Backpressure: a request waits at most `timeout` for its commit, and a full queue answers at
//! once; both are `LedgerError::NotCommitted` (503 at ingress), never an unbounded wait.
//! May import: std, tokio, sqlx, tracing, crate::ledger.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::ledger::inbox::{
    InsertOutcome, NewInboxEvent, insert_batch_postgres, insert_batch_sqlite,
};
use crate::ledger::{LedgerError, LedgerResult, Store};

type Reply = oneshot::Sender<LedgerResult<InsertOutcome>>;

/// Hands inbox rows to the group-commit writers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct InboxWriter {
    queue: mpsc::Sender<(NewInboxEvent, Reply)>,
    /// The longest a request waits for its commit.
    timeout: Duration,
}

impl InboxWriter {
    /// Starts `writers` writer tasks (one on SQLite, which has a single writer anyway). They stop
    /// when every `InboxWriter` clone is dropped, after answering what is queued. A request waits
    /// at most `timeout` for its commit.
    pub fn spawn(store: Store, batch_max: usize, writers: usize, timeout: Duration) -> InboxWriter {
        let writers = match store {
            Store::Sqlite(_) => 1,
            Store::Postgres(_) => writers.max(1),
        };
        let batch_max = batch_max.max(1);
        let (tx, rx) = mpsc::channel(batch_max * writers * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers {
            tokio::spawn(run_writer(store.clone(), Arc::clone(&rx), batch_max));
        }
        InboxWriter { queue: tx, timeout }
    }

    /// Stores one delivery and returns once it is committed (or known to be a duplicate); a full
    /// queue, or no commit within the timeout, is `NotCommitted`.
    pub async fn insert(&self, event: NewInboxEvent) -> LedgerResult<InsertOutcome> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send((event, reply)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(LedgerError::NotCommitted("the commit queue is full"));
            }
            Err(TrySendError::Closed(_)) => return Err(LedgerError::WriterStopped),
        }
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(answered) => answered.map_err(|_| LedgerError::WriterStopped)?,
            Err(_) => Err(LedgerError::NotCommitted(
                "the commit did not complete within the ingest timeout",
            )),
        }
    }
}

async fn run_writer(
    store: Store,
    queue: Arc<Mutex<mpsc::Receiver<(NewInboxEvent, Reply)>>>,
    batch_max: usize,
) {
    let mut batch = Vec::with_capacity(batch_max);
    loop {
        {
            // One writer at a time gathers a batch: whatever is waiting right now, never waiting
            // for more (waiting would add latency without adding durability).
            let mut rx = queue.lock().await;
            if rx.recv_many(&mut batch, batch_max).await == 0 {
                return;
            }
        }
        let (events, replies): (Vec<_>, Vec<_>) = std::mem::take(&mut batch).into_iter().unzip();
        match commit_batch(&store, &events).await {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for reply in replies {
                    let _ = reply.send(answer_of(outcomes.next()));
                }
            }
            Err(e) if events.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(e @ LedgerError::Unavailable(_)) => {
                // Not a bad row: the store is gone, and each row alone would fail the same way.
                tracing::warn!(error = %e, batch.size = events.len(), "group commit failed: the store is unavailable");
                for reply in replies {
                    let _ = reply.send(Err(LedgerError::NotCommitted("the store is unavailable")));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batch.size = events.len(), "group commit failed; retrying its rows one by one");
                for (event, reply) in events.into_iter().zip(replies) {
                    let result = commit_batch(&store, std::slice::from_ref(&event))
                        .await
                        .and_then(|mut o| answer_of(o.pop()));
                    let _ = reply.send(result);
                }
            }
        }
        batch = Vec::with_capacity(batch_max);
    }
}

/// A request's answer from its row's outcome. A batch that answered no outcome for a row gives
/// no promise that the row is stored: that is an error (503, the sender retries), never a
/// "duplicate" (a 2xx).
fn answer_of(outcome: Option<InsertOutcome>) -> LedgerResult<InsertOutcome> {
    outcome.ok_or_else(|| {
        LedgerError::Corrupt("the group commit returned no outcome for a row".into())
    })
}

/// One transaction for the whole batch; SQLite takes its write lock up front (`BEGIN IMMEDIATE`)
/// so the commit cannot fail on a lock upgrade.
async fn commit_batch(store: &Store, events: &[NewInboxEvent]) -> LedgerResult<Vec<InsertOutcome>> {
    match store {
        Store::Sqlite(sqlite) => {
            let _turn = sqlite.ingest_turn().await;
            let mut tx = sqlite.pool.begin_with("begin immediate").await?;
            let outcomes = insert_batch_sqlite(&mut tx, events).await?;
            tx.commit().await?;
            Ok(outcomes)
        }
        Store::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let outcomes = insert_batch_postgres(&mut tx, events).await?;
            tx.commit().await?;
            Ok(outcomes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_batch_result_is_an_error_never_a_duplicate() {
        assert!(matches!(answer_of(None), Err(LedgerError::Corrupt(_))));
        assert_eq!(
            answer_of(Some(InsertOutcome::Accepted(7))).ok(),
            Some(InsertOutcome::Accepted(7))
        );
        assert_eq!(
            answer_of(Some(InsertOutcome::Duplicate)).ok(),
            Some(InsertOutcome::Duplicate)
        );
    }
}
