//! The Monday budget every replica spends from: one row holding `domain::budget::BudgetState`.
//!
//! Owns: `monday_budget`. A spend reads the row, lets the caller decide on the state as it was,
//! and writes the result only over the version it read (compare and swap), trying again when
//! another replica wrote first: replicas never both spend the same remainder, and no lock is held
//! while a replica decides, so one that stalls blocks nobody.
//! May import: sqlx, crate::{domain, ledger}.

use crate::domain::budget::BudgetState;
use crate::ledger::tx::on_pool;
use crate::ledger::{LedgerError, LedgerResult, Store, now_ms};

/// Compare-and-swap rounds before giving up (each lost round means another replica spent).
const ROUNDS: usize = 64;

impl Store {
    /// Runs `decide` on the shared budget as it is now and stores what it leaves.
    pub async fn with_monday_budget<R>(
        &self,
        mut decide: impl FnMut(&mut BudgetState) -> R,
    ) -> LedgerResult<R> {
        for _ in 0..ROUNDS {
            let read = "select state, version from monday_budget where id = 1";
            let Some((mut state, version)) = on_pool!(self, optional(BudgetState, i64), read)?
            else {
                let first = "insert into monday_budget (id, state, version, created_at, updated_at) \
                             values (1, $1, 0, $2, $2) on conflict (id) do nothing";
                on_pool!(self, execute, first, BudgetState::default(), now_ms())?;
                continue;
            };
            let decided = decide(&mut state);
            let write = "update monday_budget set state = $1, version = version + 1, updated_at = $2 \
                         where id = 1 and version = $3";
            if on_pool!(self, execute, write, &state, now_ms(), version)? == 1 {
                return Ok(decided);
            }
        }
        Err(LedgerError::Corrupt(
            "the Monday budget changed under every attempt to spend from it".into(),
        ))
    }

    /// The shared budget as last written (a read: no lock, no write).
    pub async fn monday_budget_state(&self) -> LedgerResult<BudgetState> {
        let sql = "select state from monday_budget where id = 1";
        Ok(on_pool!(self, scalar_optional BudgetState, sql)?.unwrap_or_default())
    }
}
