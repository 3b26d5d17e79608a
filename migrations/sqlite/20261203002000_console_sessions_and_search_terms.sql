-- The admin console's sessions, and the terms the console's entity search looks up.

-- One signed-in console session. Only the SHA-256 of the session id is stored (the id itself
-- is in the browser's cookie alone), so reading the ledger never yields a usable session.
-- A session ends at expires_at (created_at + [console] session_max) or once it has been idle
-- longer than [console] session_idle (last_seen_at), whichever comes first; a sign-out deletes it.
create table console_sessions (
    id              integer primary key autoincrement,
    session_sha256  text    not null,
    -- The admin token's name the session signed in with (`bootstrap` for GATEWAY_ADMIN_TOKEN).
    actor           text    not null,
    created_at      bigint  not null,
    last_seen_at    bigint  not null,
    expires_at      bigint  not null,
    updated_at      bigint  not null,
    constraint console_sessions_session_sha256_key unique (session_sha256)
);
create index console_sessions_expires_at_idx on console_sessions (expires_at);

-- Lower-cased words of an entity's name and its e-mail address, from its newest NPD record,
-- so a search by name or e-mail is a range scan of one index, never a scan of the entities.
create table entity_search_terms (
    entity_id   bigint  not null references entities (id) on delete cascade,
    term        text    not null,
    created_at  bigint  not null,
    updated_at  bigint  not null,
    constraint entity_search_terms_pkey primary key (entity_id, term)
);
create index entity_search_terms_term_idx on entity_search_terms (term);

-- Entities the gateway already had: their first name, last name, name, whole contact name and
-- e-mail address as terms, lower-cased (ASCII only, as SQLite's lower() does; the gateway
-- rewrites an entity's terms exactly with its next NPD record).
insert or ignore into entity_search_terms (entity_id, term, created_at, updated_at)
select e.id, substr(lower(trim(json_extract(e.npd_snapshot, f.path))), 1, 120), e.updated_at, e.updated_at
from entities e
join (select '$.first_name' as path union all select '$.last_name' union all select '$.name'
      union all select '$.email') f
where e.npd_snapshot is not null and json_valid(e.npd_snapshot)
  and json_type(e.npd_snapshot, f.path) = 'text'
  and trim(json_extract(e.npd_snapshot, f.path)) <> '';
insert or ignore into entity_search_terms (entity_id, term, created_at, updated_at)
select e.id,
       substr(lower(trim(json_extract(e.npd_snapshot, '$.first_name')) || ' '
                    || trim(json_extract(e.npd_snapshot, '$.last_name'))), 1, 120),
       e.updated_at, e.updated_at
from entities e
where e.npd_snapshot is not null and json_valid(e.npd_snapshot)
  and json_type(e.npd_snapshot, '$.first_name') = 'text'
  and json_type(e.npd_snapshot, '$.last_name') = 'text'
  and trim(json_extract(e.npd_snapshot, '$.first_name')) <> ''
  and trim(json_extract(e.npd_snapshot, '$.last_name')) <> '';
