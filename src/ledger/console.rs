//! The admin console's sessions and the entity search's terms.
//!
//! Owns: `console_sessions` rows (a session is stored by the SHA-256 of its id, never the id) and
//! `entity_search_terms` rows (written with each NPD snapshot of an entity, read by a range over
//! their index).
//! May import: std, sqlx, crate::{domain, ledger}.

use std::collections::BTreeSet;

use sqlx::FromRow;

use crate::domain::entity::{EntityKind, MondayItemId, NpdId};
use crate::ledger::entities::{ENTITY_COLUMNS, EntityRow};
use crate::ledger::tx::{Tx, on_pool, on_tx};
use crate::ledger::{LedgerResult, Store, now_ms};

/// One console session as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SessionRow {
    pub session_sha256: String,
    pub actor: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// A new session: its id's hash, who signed in, and how long it lasts at most (ms).
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    pub session_sha256: &'a str,
    pub actor: &'a str,
    pub max_ms: i64,
}

/// Which sessions still count when one is looked up.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// A session not seen for this long (ms) has been idle too long.
    pub idle_ms: i64,
    /// Whether `bootstrap` sessions count (false once `GATEWAY_ADMIN_TOKEN` is unset).
    pub bootstrap: bool,
}

impl Store {
    /// Stores a new session, first dropping every session past its absolute expiry (one range
    /// over `console_sessions_expires_at_idx`).
    pub async fn insert_console_session(&self, s: NewSession<'_>) -> LedgerResult<()> {
        let now = now_ms();
        let prune = "delete from console_sessions where expires_at <= $1";
        on_pool!(self, execute, prune, now)?;
        let sql = "insert into console_sessions (session_sha256, actor, created_at, last_seen_at, \
                   expires_at, updated_at) values ($1, $2, $3, $3, $4, $3)";
        let expires_at = now.saturating_add(s.max_ms);
        on_pool!(
            self,
            execute,
            sql,
            s.session_sha256,
            s.actor,
            now,
            expires_at
        )?;
        Ok(())
    }

    /// The actor of a live session, marking it seen now: not past its expiry, not idle for
    /// `live.idle_ms` or longer, and its token not revoked. `None` for anything else.
    pub async fn touch_console_session(
        &self,
        session_sha256: &str,
        live: Liveness,
    ) -> LedgerResult<Option<String>> {
        let sql = "update console_sessions set last_seen_at = $2, updated_at = $2 \
                   where session_sha256 = $1 and expires_at > $2 and last_seen_at > $3 \
                   and (($4 and actor = 'bootstrap') or exists (select 1 from admin_tokens t \
                   where t.name = console_sessions.actor and t.revoked_at is null)) \
                   returning actor";
        let now = now_ms();
        let (after, bootstrap) = (now.saturating_sub(live.idle_ms), live.bootstrap);
        Ok(on_pool!(self, scalar_optional String, sql, session_sha256, now, after, bootstrap)?)
    }

    /// Ends a session (sign-out). False when there was none.
    pub async fn delete_console_session(&self, session_sha256: &str) -> LedgerResult<bool> {
        let sql = "delete from console_sessions where session_sha256 = $1";
        Ok(on_pool!(self, execute, sql, session_sha256)? == 1)
    }

    /// Every stored session, oldest first (for tests and diagnostics).
    pub async fn console_sessions(&self) -> LedgerResult<Vec<SessionRow>> {
        let sql = "select session_sha256, actor, created_at, last_seen_at, expires_at \
                   from console_sessions order by id";
        Ok(on_pool!(self, all SessionRow, sql)?)
    }

    /// Sets when a session was last seen and when it expires (tests: an idle or an expired
    /// session without waiting for the clock). False when there is no such session.
    pub async fn set_console_session_times(
        &self,
        session_sha256: &str,
        (last_seen_at, expires_at): (i64, i64),
    ) -> LedgerResult<bool> {
        let sql = "update console_sessions set last_seen_at = $2, expires_at = $3 \
                   where session_sha256 = $1";
        Ok(on_pool!(self, execute, sql, session_sha256, last_seen_at, expires_at)? == 1)
    }

    /// Entities with a search term in `[low, high)`, by id, at most `limit`.
    pub async fn entities_by_term(
        &self,
        (low, high): (&str, &str),
        limit: i64,
    ) -> LedgerResult<Vec<EntityRow>> {
        let sql = format!(
            "select {ENTITY_COLUMNS} from entities where id in (select entity_id from \
             entity_search_terms where term >= $1 and term < $2) order by id limit $3"
        );
        Ok(on_pool!(self, all EntityRow, &sql, low, high, limit)?)
    }

    /// The entities of an NPD id (a contact, an organization, or neither).
    pub async fn entities_by_npd(&self, npd_id: NpdId) -> LedgerResult<Vec<EntityRow>> {
        let mut found = Vec::new();
        for kind in EntityKind::ALL {
            found.extend(self.entity_by_npd(kind, npd_id).await?);
        }
        Ok(found)
    }

    /// The entity linked to a Monday item, as a list (empty or one).
    pub async fn entities_by_item(&self, item: MondayItemId) -> LedgerResult<Vec<EntityRow>> {
        Ok(self.entity_by_item(item).await?.into_iter().collect())
    }
}

/// Replaces the search terms of an entity.
pub async fn replace_search_terms(
    tx: &mut Tx,
    entity_id: i64,
    terms: &BTreeSet<String>,
) -> LedgerResult<()> {
    let delete = "delete from entity_search_terms where entity_id = $1";
    on_tx!(tx, execute, delete, entity_id)?;
    let insert = "insert into entity_search_terms (entity_id, term, created_at, updated_at) \
                  values ($1, $2, $3, $3)";
    let now = now_ms();
    for term in terms {
        on_tx!(tx, execute, insert, entity_id, term.as_str(), now)?;
    }
    Ok(())
}
