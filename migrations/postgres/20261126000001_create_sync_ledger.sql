-- The whole sync ledger (PostgreSQL). Times are unix epoch milliseconds (bigint) so that one statement
-- serves both stores; JSON documents are stored as text. Keep in step with migrations/sqlite/.

create table inbox_events (
    id              bigserial primary key,
    source          text    not null check (source in ('npd', 'monday')),
    delivery_id     text    not null,
    event_type      text    not null,
    entity_kind     text             check (entity_kind in ('contact', 'organization')),
    npd_id          text,
    board_id        text,
    monday_item_id  text,
    entity_version  bigint,
    occurred_at     bigint,
    payload         text    not null,
    request_id      text,
    received_at     bigint  not null,
    processed_at    bigint,
    outcome         text             check (outcome in ('applied', 'echo', 'stale', 'ignored', 'conflict', 'failed')),
    outcome_detail  text,
    created_at      bigint  not null,
    updated_at      bigint  not null,
    constraint inbox_events_source_delivery_id_key unique (source, delivery_id)
);
create index inbox_events_unprocessed_idx on inbox_events (id) where processed_at is null;
create index inbox_events_npd_id_idx on inbox_events (npd_id);
create index inbox_events_monday_item_id_idx on inbox_events (monday_item_id);

create table entities (
    id               bigserial primary key,
    kind             text    not null check (kind in ('contact', 'organization')),
    npd_id           text,
    monday_item_id   text,
    board_id         text,
    npd_version      bigint,
    -- The NPD version the gateway's own last write produced (from NPD's answer): the event NPD
    -- sends for it is an echo, and anything older is stale.
    npd_echo_version bigint,
    npd_snapshot     text,
    monday_snapshot  text,
    sync_enabled     boolean not null default true,
    status           text    not null default 'pending'
                             check (status in ('pending', 'synced', 'failed', 'conflict', 'deleted', 'unlinked', 'disabled')),
    last_error       text,
    deleted_at       bigint,
    created_at       bigint  not null,
    updated_at       bigint  not null,
    constraint entities_kind_npd_id_key unique (kind, npd_id),
    constraint entities_monday_item_id_key unique (monday_item_id)
);

create table field_state (
    entity_id   bigint  not null references entities (id) on delete cascade,
    field       text    not null,
    -- The field's merge state as JSON (domain::reconcile::FieldState): base (last agreed value),
    -- each side's last known value and source time, who wrote it, and the write in flight.
    state       text    not null,
    created_at  bigint  not null,
    updated_at  bigint  not null,
    constraint field_state_pkey primary key (entity_id, field)
);

create table outbox_jobs (
    id               bigserial primary key,
    entity_id        bigint  not null references entities (id),
    target           text    not null check (target in ('monday', 'npd')),
    operation        text    not null,
    payload          text    not null,
    idempotency_key  text    not null,
    priority         bigint  not null default 0,
    state            text    not null default 'pending' check (state in ('pending', 'leased', 'done', 'dead')),
    attempts         bigint  not null default 0,
    max_attempts     bigint  not null,
    next_attempt_at  bigint  not null,
    lease_until      bigint,
    lease_token      bigint,
    leased_by        text,
    last_error       text,
    result           text,
    request_id       text,
    done_at          bigint,
    created_at       bigint  not null,
    updated_at       bigint  not null,
    constraint outbox_jobs_idempotency_key_key unique (idempotency_key)
);
create index outbox_jobs_ready_idx on outbox_jobs (state, next_attempt_at);
create index outbox_jobs_entity_idx on outbox_jobs (entity_id, state);

create table conflicts (
    id              bigserial primary key,
    entity_id       bigint  not null references entities (id),
    field           text    not null,
    base_value      text,
    npd_value       text,
    monday_value    text,
    policy          text    not null,
    status          text    not null default 'open' check (status in ('open', 'resolved')),
    resolution      text             check (resolution in ('npd', 'monday', 'value')),
    resolved_value  text,
    resolved_by     text,
    opened_at       bigint  not null,
    resolved_at     bigint,
    created_at      bigint  not null,
    updated_at      bigint  not null
);
create index conflicts_entity_idx on conflicts (entity_id, status);
create unique index conflicts_one_open_per_field_idx on conflicts (entity_id, field) where status = 'open';

create table history (
    id              bigserial primary key,
    entity_id       bigint  not null references entities (id),
    inbox_event_id  bigint,
    job_id          bigint,
    at              bigint  not null,
    kind            text    not null,
    reason          text    not null,
    detail          text,
    created_at      bigint  not null
);
create index history_entity_idx on history (entity_id, id);

create table admin_tokens (
    id            bigserial primary key,
    name          text    not null,
    token_sha256  text    not null,
    last_used_at  bigint,
    revoked_at    bigint,
    created_at    bigint  not null,
    updated_at    bigint  not null,
    constraint admin_tokens_name_key unique (name),
    constraint admin_tokens_token_sha256_key unique (token_sha256)
);

create table audit_log (
    id          bigserial primary key,
    at          bigint  not null,
    actor       text    not null,
    action      text    not null,
    target      text,
    request_id  text,
    outcome     text    not null,
    detail      text,
    created_at  bigint  not null
);
create index audit_log_at_idx on audit_log (at);
