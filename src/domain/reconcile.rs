//! The field-level three-way merge: pure, one field of one entity at a time.
//!
//! Owns: `ConflictPolicy` (how a field is settled when both sides changed it to different
//! values), `Side`, the ledger's view of one field (`FieldState`, `Pending`), an incoming
//! `Change`, the `Decision` taken on it (`PushReason`), and the rules: `decide` (one incoming
//! change), `confirm` (a push landed), `abandon` (a push failed for good), `retry` (an admin
//! replays it) and `resolve` (an admin settles a conflict). No I/O: the caller stores the returned state and sends the pushes.
//! May import: std, serde, serde_json, thiserror, crate::domain.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::domain::entity::Side;
use crate::domain::mapping::FieldValue;

/// How a field is settled when NPD and Monday both changed it, to different values, since the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// NPD's value wins and is pushed to Monday.
    NpdWins,
    /// Monday's value wins and is pushed to NPD.
    MondayWins,
    /// The newer change wins: NPD `updated_at` against Monday `changedAt`; a tie goes to NPD.
    LatestWins,
    /// Neither side is written for that field; a conflict opens for an admin to settle.
    Manual,
}

impl ConflictPolicy {
    pub const ALL: [ConflictPolicy; 4] = [
        ConflictPolicy::NpdWins,
        ConflictPolicy::MondayWins,
        ConflictPolicy::LatestWins,
        ConflictPolicy::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::NpdWins => "npd_wins",
            ConflictPolicy::MondayWins => "monday_wins",
            ConflictPolicy::LatestWins => "latest_wins",
            ConflictPolicy::Manual => "manual",
        }
    }
}

impl fmt::Display for ConflictPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConflictPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConflictPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown conflict policy `{s}` (expected npd_wins, monday_wins, latest_wins or manual)")
            })
    }
}

/// A write of the gateway to one side, recorded BEFORE the remote call so that its echo is
/// recognised even when it arrives before the call returns. The side is the field of
/// `FieldState` that holds it (`pending_npd`, `pending_monday`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The value being written (`None` clears the field).
    pub value: FieldValue,
    /// The write has gone out (a job sent it): should a newer decision replace it, it may still
    /// land, and its report must then be known as the gateway's own.
    #[serde(default)]
    pub sent: bool,
}

/// What the ledger knows of one field of one entity.
///
/// At most one write per side is in flight: a newer push to a side replaces the older pending
/// one. A write whose value is no longer that side's pending value is superseded, and the
/// caller should skip it rather than send it (it would overwrite a newer decision).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FieldState {
    /// The last value both sides agreed on.
    pub base: FieldValue,
    /// The last value known to be in NPD.
    pub npd: FieldValue,
    /// The last value known to be in Monday.
    pub monday: FieldValue,
    /// Unix ms: source time of the last applied NPD change of this field (NPD `updated_at`).
    pub npd_at: Option<i64>,
    /// Unix ms: source time of the last applied Monday change of this field (`changedAt`).
    pub monday_at: Option<i64>,
    /// NPD's current value was written by the gateway.
    pub npd_by_gateway: bool,
    /// Monday's current value was written by the gateway.
    pub monday_by_gateway: bool,
    /// The gateway's write to NPD in flight, if any.
    pub pending_npd: Option<Pending>,
    /// The gateway's write to Monday in flight, if any.
    pub pending_monday: Option<Pending>,
    /// Earlier writes to NPD that had gone out when a newer decision replaced or cancelled them,
    /// before they were known to have landed, oldest first (at most `SUPERSEDED_KEPT`). They may
    /// still land: NPD then reports them, and that report is the gateway's own write coming
    /// back, not an edit. (A write replaced before it went out is never sent.)
    pub superseded_npd: Vec<FieldValue>,
    /// The same for Monday.
    pub superseded_monday: Vec<FieldValue>,
}

/// How many superseded writes per side are remembered.
const SUPERSEDED_KEPT: usize = 8;

impl FieldState {
    /// A field both sides hold as `value` and agree on, with nothing known of its history (as
    /// after an initial sync).
    pub fn agreed(value: FieldValue) -> Self {
        FieldState {
            base: value.clone(),
            npd: value.clone(),
            monday: value,
            ..FieldState::default()
        }
    }

    /// The last value known to be on `side`.
    pub fn value(&self, side: Side) -> &FieldValue {
        match side {
            Side::Npd => &self.npd,
            Side::Monday => &self.monday,
        }
    }

    /// Source time of the last applied change from `side`.
    pub fn at(&self, side: Side) -> Option<i64> {
        match side {
            Side::Npd => self.npd_at,
            Side::Monday => self.monday_at,
        }
    }

    /// Whether `side`'s current value was written by the gateway.
    pub fn by_gateway(&self, side: Side) -> bool {
        match side {
            Side::Npd => self.npd_by_gateway,
            Side::Monday => self.monday_by_gateway,
        }
    }

    /// The gateway's write to `side` in flight, if any.
    pub fn pending(&self, side: Side) -> Option<&Pending> {
        match side {
            Side::Npd => self.pending_npd.as_ref(),
            Side::Monday => self.pending_monday.as_ref(),
        }
    }

    /// The value `side` will hold once the write in flight to it lands: the pending value, or
    /// the known value when nothing is in flight.
    pub fn will_hold(&self, side: Side) -> &FieldValue {
        self.pending(side)
            .map_or_else(|| self.value(side), |pending| &pending.value)
    }

    /// Both sides hold the base and nothing is in flight.
    pub fn is_settled(&self) -> bool {
        self.npd == self.base
            && self.monday == self.base
            && self.pending_npd.is_none()
            && self.pending_monday.is_none()
    }

    fn set_value(&mut self, side: Side, value: FieldValue, by_gateway: bool) {
        match side {
            Side::Npd => {
                self.npd = value;
                self.npd_by_gateway = by_gateway;
            }
            Side::Monday => {
                self.monday = value;
                self.monday_by_gateway = by_gateway;
            }
        }
    }

    /// Moves `side`'s source time forward to `at_ms` (never back).
    fn advance_at(&mut self, side: Side, at_ms: Option<i64>) {
        let at = match side {
            Side::Npd => &mut self.npd_at,
            Side::Monday => &mut self.monday_at,
        };
        *at = (*at).max(at_ms);
    }

    fn pending_slot(&mut self, side: Side) -> &mut Option<Pending> {
        match side {
            Side::Npd => &mut self.pending_npd,
            Side::Monday => &mut self.pending_monday,
        }
    }

    fn superseded_mut(&mut self, side: Side) -> &mut Vec<FieldValue> {
        match side {
            Side::Npd => &mut self.superseded_npd,
            Side::Monday => &mut self.superseded_monday,
        }
    }

    /// Earlier writes to `side` that may still land, oldest first.
    pub fn superseded(&self, side: Side) -> &[FieldValue] {
        match side {
            Side::Npd => &self.superseded_npd,
            Side::Monday => &self.superseded_monday,
        }
    }

    /// Replaces (or, with `None`, cancels) the write in flight to `side`. A replaced or cancelled
    /// write that had gone out may still land, so it is remembered as superseded.
    fn set_pending(&mut self, side: Side, value: Option<FieldValue>) {
        let replaced = std::mem::replace(
            self.pending_slot(side),
            value.clone().map(|value| Pending { value, sent: false }),
        );
        if let Some(old) = replaced
            && old.sent
            && Some(&old.value) != value.as_ref()
        {
            let list = self.superseded_mut(side);
            list.retain(|v| v != &old.value);
            list.push(old.value);
            if list.len() > SUPERSEDED_KEPT {
                list.remove(0);
            }
        }
    }

    /// The write of `value` to `side` landed: it is no longer in flight, and neither is any
    /// write before it (writes to one entity land in order).
    fn landed(&mut self, side: Side, value: &FieldValue) {
        if self.pending(side).is_some_and(|p| &p.value == value) {
            *self.pending_slot(side) = None;
            self.superseded_mut(side).clear();
        } else if let Some(at) = self.superseded(side).iter().position(|v| v == value) {
            self.superseded_mut(side).drain(..=at);
        }
    }

    /// The write of `value` to `side` will never land (it died): forget it.
    fn dropped(&mut self, side: Side, value: &FieldValue) {
        if self.pending(side).is_some_and(|p| &p.value == value) {
            *self.pending_slot(side) = None;
        }
        self.superseded_mut(side).retain(|v| v != value);
    }
}

/// One incoming change of one field, already canonicalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The side that reported it.
    pub side: Side,
    /// The field's value on that side now.
    pub value: FieldValue,
    /// Unix ms source time: NPD `updated_at`, Monday `changedAt`; `None` when unknown.
    pub at_ms: Option<i64>,
}

/// Why a value is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushReason {
    /// Only one side changed since the base: it wins. Serialized `"only_one_side_changed"`.
    OnlyOneSideChanged,
    /// Both sides changed to different values and the policy picked the winner. Serialized
    /// `{"policy": "npd_wins"}`.
    Policy(ConflictPolicy),
}

impl PushReason {
    /// A short sentence for history: "only one side changed", "conflict settled by npd_wins".
    pub fn describe(&self) -> String {
        match self {
            PushReason::OnlyOneSideChanged => "only one side changed".to_owned(),
            PushReason::Policy(policy) => format!("conflict settled by {policy}"),
        }
    }
}

/// What `decide` concluded about one incoming change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The side reported what the ledger knew it held (and the gateway did not write it).
    Unchanged,
    /// The side reported the value the gateway wrote or is writing to it.
    Echo,
    /// Older than the last applied change of this field from that side.
    Stale,
    /// Both sides now hold (or are about to hold) the same value: base moves, nothing is sent.
    Agreed,
    /// Write `value` to `to`.
    Push {
        to: Side,
        value: FieldValue,
        reason: PushReason,
    },
    /// Both sides changed to different values under the manual policy: neither side is written.
    Conflict {
        base: FieldValue,
        npd: FieldValue,
        monday: FieldValue,
    },
}

impl Decision {
    /// The stable name used in the ledger and in history.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Unchanged => "unchanged",
            Decision::Echo => "echo",
            Decision::Stale => "stale",
            Decision::Agreed => "agreed",
            Decision::Push { .. } => "push",
            Decision::Conflict { .. } => "conflict",
        }
    }
}

/// Decides one incoming change of one field and returns the field's new state.
///
/// Rules, in order:
/// 1. **Stale** (Monday only): `change.at_ms` and Monday's source time are both known and `at_ms`
///    is older: nothing changes. NPD's changes are ordered by their `version` before they get
///    here (NPD's app servers' clocks disagree); timestamps only weigh the two sides against each
///    other under `latest_wins`.
/// 2. **Echo of a write in flight**: the side's pending write, or an earlier write to it that a
///    newer decision superseded (it may have been sent already), carries `change.value`: the
///    side holds it (by the gateway), that write and any before it are done (a newer pending
///    write stays), the base moves when the other side holds it too.
/// 3. **Same as known**: `Echo` when the gateway wrote the known value, else `Unchanged`; only
///    the side's source time moves forward.
/// 4. **The side changed**: it now holds `change.value` (not by the gateway), and any write in
///    flight to it is superseded. Let `other` be the value the other side holds or, with a write
///    in flight to it, will hold.
///    - a. `value == other`: `Agreed`, the base moves (a write in flight to the other side
///      stays).
///    - b. `other` is the base, or is this side's previous value (the two sides agreed on it,
///      or will once the write in flight lands): only this side changed, push the value to the
///      other side.
///    - c. Otherwise both changed to different values and `policy` decides: `npd_wins` and
///      `monday_wins` push the winner's value to the loser (back to this side when it lost);
///      `latest_wins` picks the newer source time (`change.at_ms` against the other side's;
///      an unknown time is older; a tie goes to NPD); `manual` returns `Conflict` and leaves
///      both sides alone (no push, and writes in flight are cancelled).
///
/// Every push records the write as the target side's pending write.
pub fn decide(
    state: &FieldState,
    change: &Change,
    policy: ConflictPolicy,
) -> (Decision, FieldState) {
    let side = change.side;
    let other_side = side.other();
    let value = &change.value;

    // 1. Stale.
    if side == Side::Monday
        && let (Some(at), Some(known)) = (change.at_ms, state.at(side))
        && at < known
    {
        return (Decision::Stale, state.clone());
    }

    let mut next = state.clone();
    next.advance_at(side, change.at_ms);

    // 2. Echo of a write in flight, or of an earlier write a newer decision superseded that
    //    landed all the same (its report is the gateway's own write coming back, not an edit;
    //    the newer write in flight stays).
    if state.pending(side).is_some_and(|p| &p.value == value)
        || state.superseded(side).contains(value)
    {
        next.set_value(side, value.clone(), true);
        next.landed(side, value);
        if state.value(other_side) == value {
            next.base = value.clone();
        }
        return (Decision::Echo, next);
    }

    // 3. Same as known.
    if state.value(side) == value {
        let decision = if state.by_gateway(side) {
            Decision::Echo
        } else {
            Decision::Unchanged
        };
        return (decision, next);
    }

    // 4. The side changed.
    next.set_value(side, value.clone(), false);
    next.set_pending(side, None);
    side_changed(state, next, change, policy)
}

/// Step 4 of `decide`: `change.side` now holds a new value (`next` already says so).
fn side_changed(
    state: &FieldState,
    mut next: FieldState,
    change: &Change,
    policy: ConflictPolicy,
) -> (Decision, FieldState) {
    let (side, value) = (change.side, &change.value);
    let other_side = side.other();
    let other = state.will_hold(other_side);

    if value == other {
        next.base = value.clone();
        return (Decision::Agreed, next);
    }

    if other == &state.base || other == state.value(side) {
        next.set_pending(other_side, Some(value.clone()));
        let decision = Decision::Push {
            to: other_side,
            value: value.clone(),
            reason: PushReason::OnlyOneSideChanged,
        };
        return (decision, next);
    }

    let winner = match policy {
        ConflictPolicy::NpdWins => Side::Npd,
        ConflictPolicy::MondayWins => Side::Monday,
        ConflictPolicy::LatestWins => newer(side, change.at_ms, state.at(other_side)),
        ConflictPolicy::Manual => {
            next.pending_npd = None;
            next.pending_monday = None;
            let decision = Decision::Conflict {
                base: next.base.clone(),
                npd: next.npd.clone(),
                monday: next.monday.clone(),
            };
            return (decision, next);
        }
    };
    let (to, pushed) = if winner == side {
        (other_side, value.clone())
    } else {
        (side, other.clone())
    };
    next.set_pending(to, Some(pushed.clone()));
    let decision = Decision::Push {
        to,
        value: pushed,
        reason: PushReason::Policy(policy),
    };
    (decision, next)
}

/// The side whose change is newer for `latest_wins`: `side` changed at `at`, the other side's
/// last change was at `other_at`. An unknown time is older than any known one; a tie goes to NPD.
fn newer(side: Side, at: Option<i64>, other_at: Option<i64>) -> Side {
    use std::cmp::Ordering;
    // `None < Some(_)` for `Option`'s ordering, which is exactly "unknown is older".
    match at.cmp(&other_at) {
        Ordering::Greater => side,
        Ordering::Less => side.other(),
        Ordering::Equal => Side::Npd,
    }
}

/// A push landed: the remote confirmed `value` on side `to`. That side holds `value`, written
/// by the gateway; its pending write is done if it was this one (a newer pending write to the
/// same side stays); the base moves when the other side holds `value` too.
pub fn confirm(state: &FieldState, to: Side, value: &FieldValue) -> FieldState {
    let mut next = state.clone();
    next.set_value(to, value.clone(), true);
    next.landed(to, value);
    if state.value(to.other()) == value {
        next.base = value.clone();
    }
    next
}

/// The write of `value` to `to` is going out now (recorded before the call).
pub fn mark_sent(state: &FieldState, to: Side, value: &FieldValue) -> FieldState {
    let mut next = state.clone();
    if let Some(p) = next.pending_slot(to)
        && &p.value == value
    {
        p.sent = true;
    }
    next
}

/// A push failed for good (dead letter): its pending write is dropped if it was this one;
/// nothing else changes.
pub fn abandon(state: &FieldState, to: Side, value: &FieldValue) -> FieldState {
    let mut next = state.clone();
    next.dropped(to, value);
    next
}

/// A write that died is tried again (an admin replays its dead letter): `value` becomes `to`'s
/// pending write again, unless the side it came from no longer holds it (that side moved on: a
/// newer decision will carry its new value), `to` holds it already, or another write to `to` is
/// in flight.
pub fn retry(state: &FieldState, to: Side, value: &FieldValue) -> FieldState {
    let mut next = state.clone();
    if state.pending(to).is_none() && state.value(to.other()) == value && state.value(to) != value {
        next.set_pending(to, Some(value.clone()));
    }
    next
}

/// An admin settles a conflict with `value`. Returns the pushes needed, Monday first, then NPD:
/// one to each side that will not hold `value` (its known value differs and no write of
/// `value` is in flight to it, or a write of another value is in flight to it), each recorded
/// as that side's pending write. The base moves only when both sides already hold `value`;
/// otherwise it moves as the pushes are confirmed or echoed.
pub fn resolve(state: &FieldState, value: &FieldValue) -> (Vec<(Side, FieldValue)>, FieldState) {
    let mut next = state.clone();
    let mut pushes = Vec::new();
    for side in [Side::Monday, Side::Npd] {
        if state.will_hold(side) != value {
            next.set_pending(side, Some(value.clone()));
            pushes.push((side, value.clone()));
        }
    }
    if &state.npd == value && &state.monday == value {
        next.base = value.clone();
    }
    (pushes, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn v(s: &str) -> FieldValue {
        Some(s.to_owned())
    }

    fn pending(s: &str) -> Option<Pending> {
        Some(Pending {
            value: v(s),
            sent: false,
        })
    }

    fn change(side: Side, value: &str, at: i64) -> Change {
        Change {
            side,
            value: v(value),
            at_ms: Some(at),
        }
    }

    fn push(to: Side, value: &str, reason: PushReason) -> Decision {
        Decision::Push {
            to,
            value: v(value),
            reason,
        }
    }

    const NPD_AT: i64 = 1_000;
    const MONDAY_AT: i64 = 2_000;
    const NOW: i64 = 3_000;

    /// A field with base `base` known to hold `npd` and `monday`, last changed at NPD_AT and
    /// MONDAY_AT, nothing in flight.
    fn known(base: &str, npd: &str, monday: &str) -> FieldState {
        FieldState {
            base: v(base),
            npd: v(npd),
            monday: v(monday),
            npd_at: Some(NPD_AT),
            monday_at: Some(MONDAY_AT),
            ..FieldState::default()
        }
    }

    struct Row {
        name: String,
        policy: ConflictPolicy,
        before: FieldState,
        change: Change,
        decision: Decision,
        after: FieldState,
    }

    /// The row `name` of `policy`: the policy's name is appended to the row's name.
    fn row(
        name: &str,
        policy: ConflictPolicy,
        before: FieldState,
        change: Change,
        decision: Decision,
        after: FieldState,
    ) -> Row {
        Row {
            name: format!("{name} ({policy})"),
            policy,
            before,
            change,
            decision,
            after,
        }
    }

    /// Every cell of (NPD changed?, Monday changed?, same value?) for a change arriving from
    /// either side, under each policy. B is the base, N and M are new values of NPD and Monday,
    /// S a new value both sides chose. Three cells cannot exist: neither changed yet different
    /// (both hold the base), and one changed yet both hold the same value (one holds the base,
    /// the other does not).
    fn merge_table() -> Vec<Row> {
        let mut rows = Vec::new();
        for policy in ConflictPolicy::ALL {
            rows.extend(neither_changed(policy));
            rows.extend(one_side_changed(policy));
            rows.extend(both_changed_to_the_same_value(policy));
            rows.extend(both_changed_to_different_values(policy));
        }
        rows.extend(latest_wins_when_the_last_report_is_the_older_change());
        rows
    }

    /// NPD no, Monday no.
    fn neither_changed(policy: ConflictPolicy) -> [Row; 2] {
        use Side::{Monday, Npd};
        let before = known("B", "B", "B");
        [
            row(
                "neither changed, npd reports",
                policy,
                before.clone(),
                change(Npd, "B", NOW),
                Decision::Unchanged,
                FieldState {
                    npd_at: Some(NOW),
                    ..before.clone()
                },
            ),
            row(
                "neither changed, monday reports",
                policy,
                before.clone(),
                change(Monday, "B", NOW),
                Decision::Unchanged,
                FieldState {
                    monday_at: Some(NOW),
                    ..before
                },
            ),
        ]
    }

    /// NPD yes, Monday no; NPD no, Monday yes.
    fn one_side_changed(policy: ConflictPolicy) -> [Row; 4] {
        use Side::{Monday, Npd};
        let only = PushReason::OnlyOneSideChanged;
        let before = known("B", "B", "B");
        let npd_changed = known("B", "N", "B");
        let monday_changed = known("B", "B", "M");
        [
            row(
                "only npd changed, npd reports",
                policy,
                before.clone(),
                change(Npd, "N", NOW),
                push(Monday, "N", only),
                FieldState {
                    npd: v("N"),
                    npd_at: Some(NOW),
                    pending_monday: pending("N"),
                    ..before.clone()
                },
            ),
            row(
                "only npd changed, monday reports its unchanged value",
                policy,
                npd_changed.clone(),
                change(Monday, "B", NOW),
                Decision::Unchanged,
                FieldState {
                    monday_at: Some(NOW),
                    ..npd_changed
                },
            ),
            row(
                "only monday changed, monday reports",
                policy,
                before.clone(),
                change(Monday, "M", NOW),
                push(Npd, "M", only),
                FieldState {
                    monday: v("M"),
                    monday_at: Some(NOW),
                    pending_npd: pending("M"),
                    ..before
                },
            ),
            row(
                "only monday changed, npd reports its unchanged value",
                policy,
                monday_changed.clone(),
                change(Npd, "B", NOW),
                Decision::Unchanged,
                FieldState {
                    npd_at: Some(NOW),
                    ..monday_changed
                },
            ),
        ]
    }

    /// Both changed, same value.
    fn both_changed_to_the_same_value(policy: ConflictPolicy) -> [Row; 2] {
        use Side::{Monday, Npd};
        [
            row(
                "both changed to the same value, npd reports last",
                policy,
                known("B", "B", "S"),
                change(Npd, "S", NOW),
                Decision::Agreed,
                FieldState {
                    base: v("S"),
                    npd: v("S"),
                    npd_at: Some(NOW),
                    ..known("B", "B", "S")
                },
            ),
            row(
                "both changed to the same value, monday reports last",
                policy,
                known("B", "S", "B"),
                change(Monday, "S", NOW),
                Decision::Agreed,
                FieldState {
                    base: v("S"),
                    monday: v("S"),
                    monday_at: Some(NOW),
                    ..known("B", "S", "B")
                },
            ),
        ]
    }

    /// Both changed, different values: the policy decides.
    fn both_changed_to_different_values(policy: ConflictPolicy) -> [Row; 2] {
        use ConflictPolicy::*;
        use Side::{Monday, Npd};
        let before = known("B", "B", "M");
        let npd_in = FieldState {
            npd: v("N"),
            npd_at: Some(NOW),
            ..before.clone()
        };
        let winner = match policy {
            NpdWins | LatestWins => Some(Npd),
            MondayWins => Some(Monday),
            Manual => None,
        };
        let (decision, after) = settled(policy, winner, npd_in);
        let npd_reports_last = row(
            "both changed to different values, npd reports last",
            policy,
            before,
            change(Npd, "N", NOW),
            decision,
            after,
        );

        let before = known("B", "N", "B");
        let monday_in = FieldState {
            monday: v("M"),
            monday_at: Some(NOW),
            ..before.clone()
        };
        let winner = match policy {
            NpdWins => Some(Npd),
            MondayWins | LatestWins => Some(Monday),
            Manual => None,
        };
        let (decision, after) = settled(policy, winner, monday_in);
        let monday_reports_last = row(
            "both changed to different values, monday reports last",
            policy,
            before,
            change(Monday, "M", NOW),
            decision,
            after,
        );
        [npd_reports_last, monday_reports_last]
    }

    /// What `policy` decides for NPD's N against Monday's M over the base B when `winner` wins
    /// (`None`: neither side), and the state after: `reported` with the winner's write pending.
    fn settled(
        policy: ConflictPolicy,
        winner: Option<Side>,
        reported: FieldState,
    ) -> (Decision, FieldState) {
        let reason = PushReason::Policy(policy);
        match winner {
            Some(Side::Npd) => (
                push(Side::Monday, "N", reason),
                FieldState {
                    pending_monday: pending("N"),
                    ..reported
                },
            ),
            Some(Side::Monday) => (
                push(Side::Npd, "M", reason),
                FieldState {
                    pending_npd: pending("M"),
                    ..reported
                },
            ),
            None => (
                Decision::Conflict {
                    base: v("B"),
                    npd: v("N"),
                    monday: v("M"),
                },
                reported,
            ),
        }
    }

    /// latest_wins when the change arriving last is the older one.
    fn latest_wins_when_the_last_report_is_the_older_change() -> [Row; 2] {
        use Side::{Monday, Npd};
        let latest = PushReason::Policy(ConflictPolicy::LatestWins);
        let npd_last = known("B", "B", "M");
        let monday_last = FieldState {
            npd_at: Some(2_500),
            ..known("B", "N", "B")
        };
        [
            row(
                "both changed, npd reports last but monday changed later",
                ConflictPolicy::LatestWins,
                npd_last.clone(),
                change(Npd, "N", 1_500),
                push(Npd, "M", latest),
                FieldState {
                    npd: v("N"),
                    npd_at: Some(1_500),
                    pending_npd: pending("M"),
                    ..npd_last
                },
            ),
            row(
                "both changed, monday reports last but npd changed later",
                ConflictPolicy::LatestWins,
                monday_last.clone(),
                change(Monday, "M", 2_200),
                push(Monday, "N", latest),
                FieldState {
                    monday: v("M"),
                    monday_at: Some(2_200),
                    pending_monday: pending("N"),
                    ..monday_last
                },
            ),
        ]
    }

    #[test]
    fn every_cell_of_the_three_way_merge_under_every_policy() {
        let rows = merge_table();
        assert_eq!(rows.len(), 4 * 10 + 2);
        for row in rows {
            let (decision, after) = decide(&row.before, &row.change, row.policy);
            assert_eq!(decision, row.decision, "{}", row.name);
            assert_eq!(after, row.after, "{}", row.name);
        }
    }

    #[test]
    fn the_echo_of_a_write_in_flight_is_an_echo_before_it_is_confirmed() {
        let policy = ConflictPolicy::Manual;
        let start = FieldState::agreed(v("A"));
        let (decision, state) = decide(&start, &change(Side::Npd, "X", 10), policy);
        assert_eq!(
            decision,
            push(Side::Monday, "X", PushReason::OnlyOneSideChanged)
        );
        assert_eq!(state.pending_monday, pending("X"));

        let (decision, state) = decide(&state, &change(Side::Monday, "X", 20), policy);
        assert_eq!(decision, Decision::Echo);
        assert_eq!(
            state,
            FieldState {
                base: v("X"),
                npd: v("X"),
                monday: v("X"),
                npd_at: Some(10),
                monday_at: Some(20),
                npd_by_gateway: false,
                monday_by_gateway: true,
                pending_npd: None,
                pending_monday: None,
                ..FieldState::default()
            }
        );
        assert!(state.is_settled());

        let confirmed = confirm(&state, Side::Monday, &v("X"));
        assert_eq!(confirmed, state, "a confirm after the echo changes nothing");
    }

    #[test]
    fn a_sent_write_replaced_before_it_was_confirmed_is_still_an_echo_when_it_lands() {
        // Monday changes A -> B -> C; the write of B to NPD has gone out when C is decided.
        let policy = ConflictPolicy::LatestWins;
        let start = FieldState::agreed(v("A"));
        let (_, state) = decide(&start, &change(Side::Monday, "B", 10), policy);
        let state = mark_sent(&state, Side::Npd, &v("B"));
        let (decision, state) = decide(&state, &change(Side::Monday, "C", 20), policy);
        assert!(
            matches!(decision, Decision::Push { to: Side::Npd, .. }),
            "{decision:?}"
        );
        assert_eq!(state.superseded(Side::Npd), &[v("B")]);

        // NPD then reports B (the older write landed, before C): the gateway's own, not an edit.
        let (decision, state) = decide(&state, &change(Side::Npd, "B", 30), policy);
        assert_eq!(decision, Decision::Echo);
        assert_eq!(
            state.pending_npd.as_ref().map(|p| &p.value),
            Some(&v("C")),
            "the newer write stays"
        );
        assert!(state.superseded(Side::Npd).is_empty());

        // C lands: both sides agree on C.
        let state = confirm(&state, Side::Npd, &v("C"));
        assert_eq!(
            (state.base.clone(), state.npd.clone(), state.monday.clone()),
            (v("C"), v("C"), v("C"))
        );
        assert!(state.is_settled());
    }

    #[test]
    fn a_write_replaced_before_it_went_out_is_not_remembered() {
        let policy = ConflictPolicy::LatestWins;
        let start = FieldState::agreed(v("A"));
        let (_, state) = decide(&start, &change(Side::Monday, "B", 10), policy);
        let (_, state) = decide(&state, &change(Side::Monday, "C", 20), policy);
        assert!(state.superseded(Side::Npd).is_empty(), "B was never sent");
        // So a person setting NPD to B is an edit, not an echo.
        let (decision, _) = decide(&state, &change(Side::Npd, "B", 30), policy);
        assert_ne!(decision, Decision::Echo);
    }

    #[test]
    fn the_echo_after_a_confirm_is_an_echo_by_who_wrote_the_value() {
        let policy = ConflictPolicy::LatestWins;
        let start = FieldState::agreed(v("A"));
        let (_, state) = decide(&start, &change(Side::Monday, "X", 10), policy);
        let state = confirm(&state, Side::Npd, &v("X"));
        assert_eq!(state.pending_npd, None);
        assert!(state.npd_by_gateway);
        assert_eq!(state.base, v("X"));

        let (decision, after) = decide(&state, &change(Side::Npd, "X", 30), policy);
        assert_eq!(decision, Decision::Echo);
        assert_eq!(
            after,
            FieldState {
                npd_at: Some(30),
                ..state.clone()
            }
        );

        let (again, _) = decide(&after, &change(Side::Npd, "X", 30), policy);
        assert_eq!(again, Decision::Echo, "a redelivered echo is still an echo");
    }

    #[test]
    fn a_repeated_value_the_gateway_did_not_write_is_unchanged() {
        let policy = ConflictPolicy::NpdWins;
        let start = FieldState::agreed(v("A"));
        let (_, state) = decide(&start, &change(Side::Monday, "M", 10), policy);
        let (decision, after) = decide(&state, &change(Side::Monday, "M", 10), policy);
        assert_eq!(decision, Decision::Unchanged);
        assert_eq!(after, state);

        let (decision, later) = decide(&state, &change(Side::Monday, "M", 15), policy);
        assert_eq!(decision, Decision::Unchanged);
        assert_eq!(
            later,
            FieldState {
                monday_at: Some(15),
                ..state
            }
        );
    }

    #[test]
    fn an_npd_change_with_an_older_timestamp_is_not_stale_its_version_ordered_it() {
        // NPD's clocks disagree: a higher version may carry an older `updated_at`. The version
        // was checked before the merge, so the change applies; NPD's time never moves back.
        let state = known("B", "B", "B");
        let last = state.npd_at.expect("known time");
        for policy in ConflictPolicy::ALL {
            let (decision, after) = decide(&state, &change(Side::Npd, "X", last - 1), policy);
            assert!(
                matches!(
                    decision,
                    Decision::Push {
                        to: Side::Monday,
                        ..
                    }
                ),
                "{policy}: {decision:?}"
            );
            assert_eq!(after.npd, v("X"), "{policy}");
            assert_eq!(after.npd_at, Some(last), "{policy}: the known time is kept");
        }
    }

    #[test]
    fn monday_changes_older_than_the_last_applied_one_are_stale() {
        let policy = ConflictPolicy::LatestWins;
        let state = known("B", "B", "B");
        for side in Side::ALL {
            let last = state.at(side).expect("known time");
            let (decision, after) = decide(&state, &change(side, "X", last - 1), policy);
            if side == Side::Monday {
                assert_eq!(decision, Decision::Stale, "{side}");
                assert_eq!(after, state, "{side}");
            } else {
                assert_ne!(decision, Decision::Stale, "{side}: versions order NPD");
            }

            let (decision, _) = decide(&state, &change(side, "X", last), policy);
            assert!(
                matches!(decision, Decision::Push { .. }),
                "{side}: same time is not stale"
            );

            let untimed = Change {
                at_ms: None,
                ..change(side, "X", 0)
            };
            let (decision, after) = decide(&state, &untimed, policy);
            assert!(
                matches!(decision, Decision::Push { .. }),
                "{side}: an unknown time is never stale"
            );
            assert_eq!(
                after.at(side),
                state.at(side),
                "{side}: an unknown time keeps the known one"
            );
        }
        let untimed_state = FieldState::agreed(v("B"));
        let (decision, _) = decide(
            &untimed_state,
            &change(Side::Npd, "X", 1),
            ConflictPolicy::Manual,
        );
        assert_ne!(
            decision,
            Decision::Stale,
            "nothing is stale before a time is known"
        );
    }

    #[test]
    fn latest_wins_gives_ties_to_npd_and_treats_unknown_times_as_older() {
        use Side::{Monday, Npd};
        // (name, side reporting N or M last, its time, the other side's time, winner)
        let cases = [
            ("tie, npd reports last", Npd, Some(5), Some(5), Npd),
            ("tie, monday reports last", Monday, Some(5), Some(5), Npd),
            ("npd time unknown", Npd, None, Some(5), Monday),
            ("monday time unknown", Monday, None, Some(5), Npd),
            ("other npd time unknown", Monday, Some(5), None, Monday),
            ("other monday time unknown", Npd, Some(5), None, Npd),
            ("both unknown, npd reports last", Npd, None, None, Npd),
            ("both unknown, monday reports last", Monday, None, None, Npd),
        ];
        for (name, side, at, other_at, winner) in cases {
            let mut before = FieldState::agreed(v("B"));
            let (mine, theirs) = match side {
                Npd => ("N", "M"),
                Monday => ("M", "N"),
            };
            match side {
                Npd => {
                    before.monday = v(theirs);
                    before.monday_at = other_at;
                }
                Monday => {
                    before.npd = v(theirs);
                    before.npd_at = other_at;
                }
            }
            let incoming = Change {
                side,
                value: v(mine),
                at_ms: at,
            };
            let (decision, after) = decide(&before, &incoming, ConflictPolicy::LatestWins);
            let winning = if winner == Npd { "N" } else { "M" };
            let reason = PushReason::Policy(ConflictPolicy::LatestWins);
            assert_eq!(decision, push(winner.other(), winning, reason), "{name}");
            assert_eq!(
                after.pending(winner.other()),
                Some(&Pending {
                    value: v(winning),
                    sent: false
                }),
                "{name}"
            );
            assert_eq!(after.pending(winner), None, "{name}");
        }
    }

    #[test]
    fn a_second_change_before_the_echo_is_pushed_not_a_conflict() {
        for policy in ConflictPolicy::ALL {
            let start = FieldState::agreed(v("A"));
            let (_, state) = decide(&start, &change(Side::Npd, "X", 10), policy);
            let (decision, state) = decide(&state, &change(Side::Npd, "Y", 20), policy);
            assert_eq!(
                decision,
                push(Side::Monday, "Y", PushReason::OnlyOneSideChanged),
                "{policy}"
            );
            assert_eq!(
                state.pending_monday,
                pending("Y"),
                "{policy}: the newer write replaces the older"
            );

            // The older write landed anyway before it could be skipped.
            let state = confirm(&state, Side::Monday, &v("X"));
            assert_eq!(
                state.pending_monday,
                pending("Y"),
                "{policy}: the newer write stays in flight"
            );
            let (decision, state) = decide(&state, &change(Side::Monday, "X", 30), policy);
            assert_eq!(decision, Decision::Echo, "{policy}");
            let (decision, state) = decide(&state, &change(Side::Monday, "Y", 40), policy);
            assert_eq!(decision, Decision::Echo, "{policy}");
            assert!(state.is_settled(), "{policy}: {state:?}");
            assert_eq!(state.base, v("Y"), "{policy}");
        }
    }

    #[test]
    fn a_side_reporting_its_own_new_value_supersedes_the_write_to_it() {
        // NPD changed to X and the gateway is writing X to Monday; a Monday user types Y first.
        let start = FieldState::agreed(v("A"));
        let (_, state) = decide(
            &start,
            &change(Side::Npd, "X", 10),
            ConflictPolicy::MondayWins,
        );
        let (decision, state) = decide(
            &state,
            &change(Side::Monday, "Y", 20),
            ConflictPolicy::MondayWins,
        );
        assert_eq!(
            decision,
            push(
                Side::Npd,
                "Y",
                PushReason::Policy(ConflictPolicy::MondayWins)
            )
        );
        assert_eq!(
            state.pending_monday, None,
            "the write of X to Monday is superseded"
        );
        assert_eq!(state.pending_npd, pending("Y"));

        // Both sides are changed to the same value while a write to one is in flight.
        let (_, state) = decide(&start, &change(Side::Npd, "X", 10), ConflictPolicy::Manual);
        let (_, state) = decide(&state, &change(Side::Npd, "Z", 11), ConflictPolicy::Manual);
        let (decision, state) = decide(
            &state,
            &change(Side::Monday, "Z", 12),
            ConflictPolicy::Manual,
        );
        assert_eq!(
            decision,
            Decision::Echo,
            "the value being written is recognised"
        );
        assert!(state.is_settled());
    }

    #[test]
    fn a_manual_conflict_cancels_the_writes_in_flight() {
        // An admin's resolution is being written to both sides when a Monday user types M.
        let before = FieldState {
            pending_npd: pending("R"),
            pending_monday: pending("R"),
            ..known("B", "N", "M")
        };
        let (decision, after) = decide(
            &before,
            &change(Side::Monday, "M2", NOW),
            ConflictPolicy::Manual,
        );
        assert_eq!(
            decision,
            Decision::Conflict {
                base: v("B"),
                npd: v("N"),
                monday: v("M2")
            }
        );
        assert_eq!(after.pending_npd, None);
        assert_eq!(after.pending_monday, None);
    }

    #[test]
    fn agreeing_with_a_write_in_flight_keeps_it_so_its_echo_is_recognised() {
        let policy = ConflictPolicy::Manual;
        let before = FieldState {
            pending_monday: pending("R"),
            ..known("B", "N", "M")
        };
        let (decision, after) = decide(&before, &change(Side::Npd, "R", NOW), policy);
        assert_eq!(decision, Decision::Agreed);
        assert_eq!(after.base, v("R"));
        assert_eq!(after.pending_monday, pending("R"));
        let (decision, after) = decide(&after, &change(Side::Monday, "R", NOW), policy);
        assert_eq!(decision, Decision::Echo);
        assert!(after.is_settled());
    }

    #[test]
    fn confirm_records_the_landed_write() {
        use Side::{Monday, Npd};
        let cases = [
            (
                "the write in flight lands and both sides agree",
                FieldState {
                    pending_monday: pending("N"),
                    ..known("B", "N", "B")
                },
                Monday,
                "N",
                FieldState {
                    base: v("N"),
                    monday: v("N"),
                    monday_by_gateway: true,
                    ..known("B", "N", "B")
                },
            ),
            (
                "an older write lands while a newer one is in flight",
                FieldState {
                    pending_monday: pending("N2"),
                    ..known("B", "N2", "B")
                },
                Monday,
                "N1",
                FieldState {
                    monday: v("N1"),
                    monday_by_gateway: true,
                    pending_monday: pending("N2"),
                    ..known("B", "N2", "B")
                },
            ),
            (
                "a write lands while the other side moved on",
                FieldState {
                    pending_npd: pending("M"),
                    ..known("B", "B", "M2")
                },
                Npd,
                "M",
                FieldState {
                    npd: v("M"),
                    npd_by_gateway: true,
                    ..known("B", "B", "M2")
                },
            ),
            (
                "a superseded write lands anyway",
                known("B", "B", "M"),
                Npd,
                "X",
                FieldState {
                    npd: v("X"),
                    npd_by_gateway: true,
                    ..known("B", "B", "M")
                },
            ),
        ];
        for (name, before, to, value, expected) in cases {
            assert_eq!(confirm(&before, to, &v(value)), expected, "{name}");
        }
    }

    #[test]
    fn abandon_drops_only_that_write() {
        let before = FieldState {
            pending_monday: pending("N"),
            ..known("B", "N", "B")
        };
        assert_eq!(
            abandon(&before, Side::Monday, &v("N")),
            known("B", "N", "B")
        );
        assert_eq!(
            abandon(&before, Side::Monday, &v("older")),
            before,
            "a newer write stays"
        );
        assert_eq!(
            abandon(&before, Side::Npd, &v("N")),
            before,
            "the other side's write is not this one"
        );
    }

    #[test]
    fn resolve_pushes_to_each_side_that_will_not_hold_the_value() {
        use Side::{Monday, Npd};
        let conflict = known("B", "N", "M");
        let (pushes, state) = resolve(&conflict, &v("R"));
        assert_eq!(pushes, vec![(Monday, v("R")), (Npd, v("R"))]);
        assert_eq!(
            state,
            FieldState {
                pending_npd: pending("R"),
                pending_monday: pending("R"),
                ..conflict.clone()
            }
        );

        // Both writes land, in either order: base moves on the second.
        let one = confirm(&state, Npd, &v("R"));
        assert_eq!(one.base, v("B"));
        let both = confirm(&one, Monday, &v("R"));
        assert_eq!(both.base, v("R"));
        assert!(both.is_settled());
        let (decision, _) = decide(
            &one,
            &change(Side::Monday, "R", NOW),
            ConflictPolicy::Manual,
        );
        assert_eq!(decision, Decision::Echo);

        let (pushes, state) = resolve(&conflict, &v("N"));
        assert_eq!(pushes, vec![(Monday, v("N"))], "npd already holds it");
        assert_eq!(state.pending_npd, None);
        assert_eq!(state.pending_monday, pending("N"));
        assert_eq!(state.base, v("B"));

        let agreed = known("B", "R", "R");
        let (pushes, state) = resolve(&agreed, &v("R"));
        assert!(pushes.is_empty());
        assert_eq!(
            state,
            FieldState {
                base: v("R"),
                ..agreed
            },
            "both sides hold it already"
        );

        let in_flight = FieldState {
            pending_monday: pending("R"),
            pending_npd: pending("X"),
            ..known("B", "R", "M")
        };
        let (pushes, _) = resolve(&in_flight, &v("R"));
        assert_eq!(
            pushes,
            vec![(Npd, v("R"))],
            "R is already on its way to Monday; X on its way to NPD must be replaced"
        );

        let (pushes, state) = resolve(&conflict, &None);
        assert_eq!(
            pushes,
            vec![(Monday, None), (Npd, None)],
            "an admin may clear the field"
        );
        assert_eq!(
            state.pending_npd,
            Some(Pending {
                value: None,
                sent: false
            })
        );
    }

    #[test]
    fn names_and_descriptions_for_history() {
        let cases = [
            (Decision::Unchanged, "unchanged"),
            (Decision::Echo, "echo"),
            (Decision::Stale, "stale"),
            (Decision::Agreed, "agreed"),
            (push(Side::Npd, "x", PushReason::OnlyOneSideChanged), "push"),
            (
                Decision::Conflict {
                    base: None,
                    npd: None,
                    monday: None,
                },
                "conflict",
            ),
        ];
        for (decision, name) in cases {
            assert_eq!(decision.as_str(), name);
        }
        assert_eq!(
            PushReason::OnlyOneSideChanged.describe(),
            "only one side changed"
        );
        assert_eq!(
            PushReason::Policy(ConflictPolicy::NpdWins).describe(),
            "conflict settled by npd_wins"
        );
        assert_eq!(Side::Npd.as_str(), "npd");
        assert_eq!(Side::Monday.to_string(), "monday");
        assert_eq!(Side::Npd.other(), Side::Monday);
        assert_eq!(Side::Monday.other(), Side::Npd);
    }

    #[test]
    fn states_and_reasons_serialize_for_the_ledger() {
        let reason = serde_json::to_value(PushReason::Policy(ConflictPolicy::LatestWins))
            .expect("serialize");
        assert_eq!(reason, serde_json::json!({"policy": "latest_wins"}));
        let only = serde_json::to_value(PushReason::OnlyOneSideChanged).expect("serialize");
        assert_eq!(only, serde_json::json!("only_one_side_changed"));
        assert_eq!(
            serde_json::to_value(Side::Monday).expect("serialize"),
            serde_json::json!("monday")
        );

        let state = FieldState {
            pending_npd: Some(Pending {
                value: None,
                sent: false,
            }),
            pending_monday: pending("X"),
            npd_by_gateway: true,
            ..known("B", "N", "M")
        };
        let json = serde_json::to_string(&state).expect("serialize");
        let back: FieldState = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(
            back, state,
            "a pending clear survives the round trip: {json}"
        );
        let minimal: FieldState = serde_json::from_str(r#"{"base": "B"}"#).expect("deserialize");
        assert_eq!(
            minimal,
            FieldState {
                base: v("B"),
                ..FieldState::default()
            }
        );
    }

    // ---------------------------------------------------------------------------------------
    // Properties
    // ---------------------------------------------------------------------------------------

    const INITIAL: &str = "initial";

    /// Changes with distinct values (`v0`, `v1`, ...) and distinct times, and a delivery order
    /// that delivers each at least once, some twice or more, in any order.
    fn changes_and_deliveries() -> impl Strategy<Value = (Vec<Change>, Vec<usize>)> {
        (1usize..8)
            .prop_flat_map(|n| {
                (
                    prop::collection::vec(prop::bool::ANY, n),
                    Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                    prop::collection::vec(0..n, 0..=n),
                )
            })
            .prop_flat_map(|(from_npd, ranks, repeats)| {
                let changes: Vec<Change> = from_npd
                    .iter()
                    .zip(&ranks)
                    .enumerate()
                    .map(|(i, (&npd, &rank))| Change {
                        side: if npd { Side::Npd } else { Side::Monday },
                        value: v(&format!("v{i}")),
                        at_ms: Some(1_000 + 10 * rank as i64),
                    })
                    .collect();
                let order: Vec<usize> = (0..changes.len()).chain(repeats).collect();
                (Just(changes), Just(order).prop_shuffle())
            })
    }

    fn newest_of<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Option<&'a Change> {
        changes.into_iter().max_by_key(|c| c.at_ms)
    }

    fn syncing_policy() -> impl Strategy<Value = ConflictPolicy> {
        prop::sample::select(vec![
            ConflictPolicy::NpdWins,
            ConflictPolicy::MondayWins,
            ConflictPolicy::LatestWins,
        ])
    }

    fn any_policy() -> impl Strategy<Value = ConflictPolicy> {
        prop::sample::select(ConflictPolicy::ALL.to_vec())
    }

    fn small_value() -> impl Strategy<Value = FieldValue> {
        prop::sample::select(vec![None, v("a"), v("b"), v("c")])
    }

    fn any_state() -> impl Strategy<Value = FieldState> {
        let time = || prop::option::of(0i64..5);
        let write =
            || prop::option::of(small_value().prop_map(|value| Pending { value, sent: false }));
        (
            (small_value(), small_value(), small_value()),
            (time(), time()),
            (prop::bool::ANY, prop::bool::ANY),
            (write(), write()),
        )
            .prop_map(
                |((base, npd, monday), (npd_at, monday_at), (nbg, mbg), (pn, pm))| FieldState {
                    base,
                    npd,
                    monday,
                    npd_at,
                    monday_at,
                    npd_by_gateway: nbg,
                    monday_by_gateway: mbg,
                    pending_npd: pn,
                    pending_monday: pm,
                    ..FieldState::default()
                },
            )
    }

    fn any_change() -> impl Strategy<Value = Change> {
        (
            prop::sample::select(Side::ALL.to_vec()),
            small_value(),
            prop::option::of(0i64..6),
        )
            .prop_map(|(side, value, at_ms)| Change { side, value, at_ms })
    }

    /// What processing does with one delivered change: an NPD change older than NPD's last applied
    /// one is dropped as stale before the merge (the processor compares NPD's `version`; in these
    /// models a change's time stands for its version), everything else goes to `decide`.
    fn process(
        state: &FieldState,
        change: &Change,
        policy: ConflictPolicy,
    ) -> (Decision, FieldState) {
        if change.side == Side::Npd
            && let (Some(at), Some(known)) = (change.at_ms, state.npd_at)
            && at < known
        {
            return (Decision::Stale, state.clone());
        }
        decide(state, change, policy)
    }

    /// The gateway's write of `value` to `to` lands, then its echo, stamped `at_ms`, arrives.
    fn land_and_echo(
        state: &FieldState,
        to: Side,
        value: FieldValue,
        at_ms: Option<i64>,
        policy: ConflictPolicy,
    ) -> (Decision, FieldState) {
        let landed = confirm(state, to, &value);
        decide(
            &landed,
            &Change {
                side: to,
                value,
                at_ms,
            },
            policy,
        )
    }

    proptest! {
        /// The model gateway writes each pushed value the moment it decides, so the write's echo
        /// carries the source time of the change the value came from.
        #[test]
        fn one_change_at_a_time_ends_with_the_newest_value(
            (changes, order) in changes_and_deliveries(),
            policy in syncing_policy(),
        ) {
            let mut state = FieldState::agreed(v(INITIAL));
            for &i in &order {
                let (decision, next) = process(&state, &changes[i], policy);
                state = next;
                if let Decision::Push { to, value, .. } = decision {
                    let source = changes.iter().find(|c| c.value == value).and_then(|c| c.at_ms);
                    let (decision, next) = land_and_echo(&state, to, value, source, policy);
                    prop_assert_eq!(decision, Decision::Echo);
                    state = next;
                } else {
                    let conflict = matches!(decision, Decision::Conflict { .. });
                    prop_assert!(!conflict, "no conflict when every write lands at once");
                }
                prop_assert!(state.is_settled(), "{:?}", state);
            }
            let newest = newest_of(&changes).expect("at least one change");
            prop_assert_eq!(&state.npd, &newest.value);
            prop_assert_eq!(&state.monday, &newest.value);
        }

        /// Every change arrives (in any order, some twice) before any write lands: the sides
        /// end with the three-way merge of their newest values, settled by the policy.
        #[test]
        fn concurrent_changes_end_with_the_value_the_policy_picks(
            (changes, order) in changes_and_deliveries(),
            policy in any_policy(),
        ) {
            let mut state = FieldState::agreed(v(INITIAL));
            for &i in &order {
                state = process(&state, &changes[i], policy).1;
            }
            for side in Side::ALL {
                if let Some(Pending { value, .. }) = state.pending(side).cloned() {
                    let (decision, next) = land_and_echo(&state, side, value, Some(1_000_000), policy);
                    prop_assert_eq!(decision, Decision::Echo);
                    state = next;
                }
            }

            let newest = |side: Side| newest_of(changes.iter().filter(|c| c.side == side));
            let initial = v(INITIAL);
            let npd = newest(Side::Npd).map_or(&initial, |c| &c.value);
            let monday = newest(Side::Monday).map_or(&initial, |c| &c.value);
            let expected = match (npd == &initial, monday == &initial) {
                (true, _) => Some(monday),
                (false, true) => Some(npd),
                (false, false) => match policy {
                    ConflictPolicy::NpdWins => Some(npd),
                    ConflictPolicy::MondayWins => Some(monday),
                    ConflictPolicy::LatestWins => {
                        let npd_newer = newest(Side::Npd).map(|c| c.at_ms) > newest(Side::Monday).map(|c| c.at_ms);
                        Some(if npd_newer { npd } else { monday })
                    }
                    ConflictPolicy::Manual => None,
                },
            };
            match expected {
                Some(value) => {
                    prop_assert_eq!(&state.npd, value);
                    prop_assert_eq!(&state.monday, value);
                    prop_assert!(state.is_settled(), "{:?}", state);
                }
                None => {
                    prop_assert_eq!(&state.npd, npd, "manual leaves npd alone");
                    prop_assert_eq!(&state.monday, monday, "manual leaves monday alone");
                    prop_assert_eq!(&state.base, &initial);
                    prop_assert!(state.pending_npd.is_none() && state.pending_monday.is_none());
                }
            }
        }

        #[test]
        fn the_same_change_twice_changes_nothing_the_second_time(
            state in any_state(),
            incoming in any_change(),
            policy in any_policy(),
        ) {
            let (first, once) = decide(&state, &incoming, policy);
            let (second, twice) = decide(&once, &incoming, policy);
            if first == Decision::Stale {
                prop_assert_eq!(second, Decision::Stale);
            } else {
                prop_assert!(matches!(second, Decision::Unchanged | Decision::Echo), "{:?}", second);
            }
            prop_assert_eq!(twice, once);
        }

        #[test]
        fn the_pushed_value_coming_back_is_always_an_echo(
            state in any_state(),
            incoming in any_change(),
            policy in any_policy(),
            untimed_echo in prop::bool::ANY,
        ) {
            let (decision, state) = decide(&state, &incoming, policy);
            if let Decision::Push { to, value, .. } = decision {
                let at_ms = if untimed_echo { None } else { state.at(to).map(|at| at + 1) };
                let echo = Change { side: to, value: value.clone(), at_ms };
                prop_assert_eq!(decide(&state, &echo, policy).0, Decision::Echo, "before the confirm");
                let confirmed = confirm(&state, to, &value);
                prop_assert_eq!(decide(&confirmed, &echo, policy).0, Decision::Echo, "after the confirm");
            }
        }
    }

    #[test]
    fn policies_parse_by_name_and_refuse_others() {
        for p in ConflictPolicy::ALL {
            assert_eq!(p.as_str().parse::<ConflictPolicy>(), Ok(p));
        }
        assert!("newest_wins".parse::<ConflictPolicy>().is_err());
    }

    /// One step of the simulated world.
    #[derive(Debug, Clone)]
    enum Step {
        /// A user sets the field on a side.
        Edit(Side, FieldValue),
        /// The gateway receives one waiting event; `keep` leaves a copy to be delivered again.
        Deliver(prop::sample::Index, bool),
        /// The gateway runs one queued write.
        Run(prop::sample::Index),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (prop::sample::select(Side::ALL.to_vec()), small_value())
                .prop_map(|(side, value)| Step::Edit(side, value)),
            (any::<prop::sample::Index>(), prop::bool::weighted(0.3))
                .prop_map(|(i, keep)| Step::Deliver(i, keep)),
            any::<prop::sample::Index>().prop_map(Step::Run),
        ]
    }

    /// Two stores, a gateway ledger for one field, events waiting to be delivered (in any
    /// order, duplicated) and writes waiting to run. A write runs only while it is still the
    /// pending write of its side (otherwise it was superseded and is skipped); running it sets
    /// the store, queues its echo and confirms it.
    struct World {
        policy: ConflictPolicy,
        clock: i64,
        npd: FieldValue,
        monday: FieldValue,
        events: Vec<Change>,
        writes: Vec<(Side, FieldValue)>,
        ledger: FieldState,
    }

    impl World {
        fn new(policy: ConflictPolicy) -> Self {
            World {
                policy,
                clock: 0,
                npd: v(INITIAL),
                monday: v(INITIAL),
                events: Vec::new(),
                writes: Vec::new(),
                ledger: FieldState::agreed(v(INITIAL)),
            }
        }

        fn set(&mut self, side: Side, value: FieldValue) {
            self.clock += 1;
            match side {
                Side::Npd => self.npd = value.clone(),
                Side::Monday => self.monday = value.clone(),
            }
            self.events.push(Change {
                side,
                value,
                at_ms: Some(self.clock),
            });
        }

        fn deliver(&mut self, i: usize, keep: bool) {
            let event = if keep {
                self.events[i].clone()
            } else {
                self.events.remove(i)
            };
            let (decision, next) = process(&self.ledger, &event, self.policy);
            self.ledger = next;
            if let Decision::Push { to, value, .. } = decision {
                self.writes.push((to, value));
            }
        }

        fn run(&mut self, i: usize) {
            let (to, value) = self.writes.remove(i);
            if self.ledger.pending(to).is_some_and(|p| p.value == value) {
                self.set(to, value.clone());
                self.ledger = confirm(&self.ledger, to, &value);
            }
        }

        fn apply(&mut self, step: &Step) {
            match step {
                Step::Edit(side, value) => self.set(*side, value.clone()),
                Step::Deliver(i, keep) if !self.events.is_empty() => {
                    let i = i.index(self.events.len());
                    self.deliver(i, *keep);
                }
                Step::Run(i) if !self.writes.is_empty() => {
                    let i = i.index(self.writes.len());
                    self.run(i);
                }
                Step::Deliver(..) | Step::Run(_) => {}
            }
        }

        /// Delivers and runs everything left, in an order drawn from `seed`; false if it does
        /// not come to rest.
        fn drain(&mut self, mut seed: u64) -> bool {
            for _ in 0..10_000 {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let pick = (seed >> 33) as usize;
                match (self.events.is_empty(), self.writes.is_empty()) {
                    (true, true) => return true,
                    (false, true) => self.deliver(pick % self.events.len(), false),
                    (true, false) => self.run(pick % self.writes.len()),
                    (false, false) if pick.is_multiple_of(2) => {
                        self.deliver(pick % self.events.len(), false)
                    }
                    (false, false) => self.run(pick % self.writes.len()),
                }
            }
            false
        }
    }

    proptest! {
        #[test]
        fn a_simulated_world_comes_to_rest_with_the_ledger_telling_the_truth(
            steps in prop::collection::vec(step(), 0..40),
            seed in any::<u64>(),
            policy in any_policy(),
        ) {
            let mut world = World::new(policy);
            for step in &steps {
                world.apply(step);
            }
            prop_assert!(world.drain(seed), "the gateway never comes to rest");
            let ledger = &world.ledger;
            prop_assert_eq!(&ledger.npd, &world.npd, "the ledger knows what NPD holds");
            prop_assert_eq!(&ledger.monday, &world.monday, "the ledger knows what Monday holds");
            prop_assert!(ledger.pending_npd.is_none() && ledger.pending_monday.is_none());
            if policy != ConflictPolicy::Manual {
                prop_assert_eq!(&world.npd, &world.monday, "both sides hold the same value");
                prop_assert!(ledger.is_settled(), "{:?}", ledger);
            } else if world.npd == world.monday {
                prop_assert_eq!(&ledger.base, &world.npd);
            }
        }
    }
}
