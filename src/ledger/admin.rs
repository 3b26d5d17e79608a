//! Admin tokens (only their SHA-256 is stored) and the audit log of admin actions.
//!
//! Owns: `admin_tokens` and `audit_log` rows.
//! May import: sqlx, crate::{domain, ledger}.

use sqlx::FromRow;

use crate::domain::state::AuditOutcome;
use crate::ledger::{LedgerResult, Store, now_ms, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub request_id: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
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
        let now = now_ms();
        let done = with_pool!(self, pool => {
            sqlx::query(
                "insert into admin_tokens (name, token_sha256, created_at, updated_at) values ($1, $2, $3, $3) \
                 on conflict do nothing",
            )
            .bind(name)
            .bind(token_sha256)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// The name of the live (not revoked) token with this hash, marking it used.
    pub async fn admin_token_name(&self, token_sha256: &str) -> LedgerResult<Option<String>> {
        let now = now_ms();
        let name = with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(
                "update admin_tokens set last_used_at = $2 where token_sha256 = $1 and revoked_at is null returning name",
            )
            .bind(token_sha256)
            .bind(now)
            .fetch_optional(pool)
            .await
        })?;
        Ok(name)
    }

    pub async fn audit(&self, e: &AuditEntry<'_>) -> LedgerResult<()> {
        let now = now_ms();
        with_pool!(self, pool => {
            sqlx::query(
                "insert into audit_log (at, actor, action, target, request_id, outcome, detail, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $1)",
            )
            .bind(now)
            .bind(e.actor)
            .bind(e.action)
            .bind(e.target)
            .bind(e.request_id)
            .bind(e.outcome)
            .bind(e.detail)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> LedgerResult<Vec<AuditRow>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, AuditRow>(
                "select id, at, actor, action, target, request_id, outcome, detail from audit_log order by id desc limit $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}
