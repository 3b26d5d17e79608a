//! Admin tokens (only their SHA-256 is stored) and the audit log of admin actions.
//!
//! Owns: `admin_tokens` and `audit_log` rows.
//! May import: sqlx, crate::{domain, ledger}.

use sqlx::FromRow;

use crate::domain::state::AuditOutcome;
use crate::ledger::tx::on_pool;
use crate::ledger::{LedgerResult, Store, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub request_id: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
}

/// One admin token as `admin-token list` shows it (its hash is never read back).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AdminTokenRow {
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// One admin action to record.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub outcome: AuditOutcome,
    pub detail: Option<&'a str>,
}

impl Store {
    /// Stores a new admin token's hash under `name`. False when the name is taken.
    pub async fn insert_admin_token(&self, name: &str, token_sha256: &str) -> LedgerResult<bool> {
        let sql = "insert into admin_tokens (name, token_sha256, created_at, updated_at) \
                   values ($1, $2, $3, $3) on conflict do nothing";
        Ok(on_pool!(self, execute, sql, name, token_sha256, now_ms())? == 1)
    }

    /// The name of the live (not revoked) token with this hash, marking it used.
    pub async fn admin_token_name(&self, token_sha256: &str) -> LedgerResult<Option<String>> {
        let sql = "update admin_tokens set last_used_at = $2 where token_sha256 = $1 \
                   and revoked_at is null returning name";
        Ok(on_pool!(self, scalar_optional String, sql, token_sha256, now_ms())?)
    }

    pub async fn audit(&self, e: &AuditEntry<'_>) -> LedgerResult<()> {
        let sql = "insert into audit_log (at, actor, action, target, request_id, outcome, detail, created_at) \
                   values ($1, $2, $3, $4, $5, $6, $7, $1)";
        let (actor, action, target, request) = (e.actor, e.action, e.target, e.request_id);
        on_pool!(
            self,
            execute,
            sql,
            now_ms(),
            actor,
            action,
            target,
            request,
            e.outcome,
            e.detail
        )?;
        Ok(())
    }

    /// One page of the audit log: the entries before entry `before` (`None`: from the newest),
    /// newest first, at most `limit` (keyset pagination on the primary key).
    pub async fn audit_page(&self, before: Option<i64>, limit: i64) -> LedgerResult<Vec<AuditRow>> {
        let sql = "select id, at, actor, action, target, request_id, outcome, detail from audit_log \
                   where id < $1 order by id desc limit $2";
        Ok(on_pool!(self, all AuditRow, sql, before.unwrap_or(i64::MAX), limit)?)
    }

    /// Every admin token, oldest first: name, created, last used, revoked (never the hash).
    pub async fn admin_tokens(&self) -> LedgerResult<Vec<AdminTokenRow>> {
        let sql = "select name, created_at, last_used_at, revoked_at from admin_tokens order by id";
        Ok(on_pool!(self, all AdminTokenRow, sql)?)
    }

    /// Revokes the live token named `name`; false when there is none.
    pub async fn revoke_admin_token(&self, name: &str) -> LedgerResult<bool> {
        let sql = "update admin_tokens set revoked_at = $2, updated_at = $2 \
                   where name = $1 and revoked_at is null";
        Ok(on_pool!(self, execute, sql, name, now_ms())? == 1)
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> LedgerResult<Vec<AuditRow>> {
        let sql = "select id, at, actor, action, target, request_id, outcome, detail from audit_log \
                   order by id desc limit $1";
        Ok(on_pool!(self, all AuditRow, sql, limit)?)
    }
}
