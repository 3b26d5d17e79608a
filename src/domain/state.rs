//! The states the ledger records, each one enum: an entity's sync status, an outbox job's state,
//! what became of an inbox event, a conflict's status and resolution, and the kinds of history
//! entries.
//!
//! Owns: `EntityStatus`, `JobState`, `InboxOutcome`, `ConflictStatus`, `Resolution`,
//! `HistoryKind` and `HistoryDetail`, `AuditOutcome`. Their names are the values the migrations' `check` constraints allow.
//! May import: std, serde, crate::domain.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::job::Sent;
use crate::domain::names::named_enum;

named_enum! {
    /// Sync status of an entity, as shown to admins.
    pub enum EntityStatus ("entity status") {
        /// Known, waiting for its first successful write.
        Pending = "pending",
        /// Both sides hold what the ledger expects.
        Synced = "synced",
        /// A write went to the dead letters; `last_error` says why.
        Failed = "failed",
        /// A field waits for an admin to settle a conflict.
        Conflict = "conflict",
        /// Deleted in NPD (and archived in Monday).
        Deleted = "deleted",
        /// A Monday item with no NPD record, or an NPD record whose item is gone.
        Unlinked = "unlinked",
        /// `sync_enabled: false` in NPD.
        Disabled = "disabled",
    }
}

named_enum! {
    /// Where an outbox job is in its life.
    pub enum JobState ("job state") {
        /// Waiting for its turn (due at `next_attempt_at`).
        Pending = "pending",
        /// Claimed by a worker until `lease_until`.
        Leased = "leased",
        Done = "done",
        /// In the dead letters: a permanent error, or attempts exhausted.
        Dead = "dead",
    }
}

impl JobState {
    /// Pending or leased: the job still has work to do.
    pub fn is_open(self) -> bool {
        matches!(self, JobState::Pending | JobState::Leased)
    }
}

named_enum! {
    /// What became of one inbox event.
    pub enum InboxOutcome ("inbox outcome") {
        /// Its changes were merged (and their writes queued).
        Applied = "applied",
        /// The gateway's own write came back.
        Echo = "echo",
        /// Older than what the ledger already applied.
        Stale = "stale",
        /// Nothing to sync (an unmapped board, sync disabled, ...).
        Ignored = "ignored",
        /// A field waits for an admin.
        Conflict = "conflict",
        /// It could not be processed; the detail says why.
        Failed = "failed",
    }
}

named_enum! {
    /// Whether a conflict still waits for an admin.
    pub enum ConflictStatus ("conflict status") {
        Open = "open",
        Resolved = "resolved",
    }
}

named_enum! {
    /// Which value settled a conflict.
    pub enum Resolution ("conflict resolution") {
        Npd = "npd",
        Monday = "monday",
        /// A value the admin gave.
        Value = "value",
    }
}

named_enum! {
    /// The kind of one history entry of an entity.
    pub enum HistoryKind ("history kind") {
        /// An event about the entity arrived (or NPD was asked about it).
        Received = "received",
        /// The merge decided what to write.
        Decided = "decided",
        /// A write landed.
        Sent = "sent",
        /// A write failed and will be retried.
        Failed = "failed",
        /// A write went to the dead letters.
        Dead = "dead",
        Echo = "echo",
        Stale = "stale",
        Conflict = "conflict",
        /// The entity got its Monday item.
        Linked = "linked",
        /// The entity lost its Monday item.
        Unlinked = "unlinked",
        /// Something happened to the item that is recorded, not synced.
        Reported = "reported",
        Ignored = "ignored",
        /// An admin asked for a push.
        Requested = "requested",
        /// An admin settled a conflict.
        Resolved = "resolved",
    }
}

named_enum! {
    /// How an admin call ended, as the audit log records it.
    pub enum AuditOutcome ("audit outcome") {
        Ok = "ok",
        /// The credentials were refused.
        Denied = "denied",
        /// The request was refused as given (malformed, or not configured).
        Rejected = "rejected",
        /// Work was queued on the normal path.
        Queued = "queued",
        NotFound = "not_found",
        /// The gateway could not carry it out.
        Failed = "failed",
        /// A conflict was settled.
        Resolved = "resolved",
    }
}

impl From<InboxOutcome> for HistoryKind {
    /// The history entry that records a merge with this outcome.
    fn from(outcome: InboxOutcome) -> Self {
        match outcome {
            InboxOutcome::Echo => HistoryKind::Echo,
            InboxOutcome::Stale => HistoryKind::Stale,
            InboxOutcome::Conflict => HistoryKind::Conflict,
            InboxOutcome::Ignored => HistoryKind::Ignored,
            InboxOutcome::Failed => HistoryKind::Failed,
            InboxOutcome::Applied => HistoryKind::Decided,
        }
    }
}

/// The structured part of a history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HistoryDetail {
    /// What the merge decided, field by field (a readable sentence each).
    Decisions(BTreeMap<String, String>),
    /// What a job's call achieved.
    Sent(Sent),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T])
    where
        T: Copy + std::fmt::Debug + PartialEq + std::fmt::Display + std::str::FromStr,
        T::Err: std::fmt::Debug,
    {
        for v in all {
            assert_eq!(v.to_string().parse::<T>().ok(), Some(*v), "{v}");
        }
    }

    #[test]
    fn every_state_round_trips_through_its_name() {
        round_trips(EntityStatus::ALL);
        round_trips(JobState::ALL);
        round_trips(InboxOutcome::ALL);
        round_trips(ConflictStatus::ALL);
        round_trips(Resolution::ALL);
        round_trips(HistoryKind::ALL);
        round_trips(AuditOutcome::ALL);
    }

    #[test]
    fn unknown_names_are_refused_with_what_was_parsed() {
        let err = "sleeping".parse::<JobState>().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("unknown job state `sleeping`"));
    }

    #[test]
    fn states_serialize_as_their_names() {
        let json = serde_json::to_string(&EntityStatus::Unlinked).ok();
        assert_eq!(json.as_deref(), Some("\"unlinked\""));
        let back: Result<InboxOutcome, _> = serde_json::from_str("\"echo\"");
        assert_eq!(back.ok(), Some(InboxOutcome::Echo));
    }
}
