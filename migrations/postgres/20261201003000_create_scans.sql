-- Scans of existing data (backfill and drift): runs, their checkpoints, what they staged from
-- each side, the review queue, and the checksums of the pages the last drift scan compared.
-- Keep in step with migrations/sqlite/.

create table scan_runs (
    id            bigserial primary key,
    scan          text    not null check (scan in ('backfill', 'drift')),
    scope         text    not null check (scope in ('contacts', 'organizations', 'all')),
    dry_run       boolean not null default false,
    status        text    not null check (status in ('running', 'done', 'failed')),
    -- Where a resumed run goes on: 'reading', then 'applying' (backfill) or 'comparing' (drift).
    phase         text    not null,
    -- The run's counts as JSON (domain::scan::Summary).
    summary       text    not null,
    error         text,
    -- Bumped while a process works on the run; a run whose heartbeat is old was abandoned.
    heartbeat_at  bigint  not null,
    started_at    bigint  not null,
    finished_at   bigint,
    created_at    bigint  not null,
    updated_at    bigint  not null
);
create index scan_runs_status_idx on scan_runs (scan, status);

-- The checkpoint of one side's read: the cursor of the next page, or done.
create table scan_cursors (
    run_id       bigint  not null references scan_runs (id) on delete cascade,
    side         text    not null check (side in ('npd', 'monday')),
    entity_kind  text    not null check (entity_kind in ('contact', 'organization')),
    cursor       text,
    pages        bigint  not null default 0,
    done         boolean not null default false,
    updated_at   bigint  not null,
    constraint scan_cursors_pkey primary key (run_id, side, entity_kind)
);

create table scan_npd_records (
    run_id       bigint  not null references scan_runs (id) on delete cascade,
    entity_kind  text    not null,
    npd_id       text    not null,
    record       text    not null,
    page         bigint  not null,
    read_at      bigint  not null,
    constraint scan_npd_records_pkey primary key (run_id, entity_kind, npd_id)
);

create table scan_monday_items (
    run_id       bigint  not null references scan_runs (id) on delete cascade,
    entity_kind  text    not null,
    item_id      text    not null,
    -- domain::scan::StagedItem as JSON: name, npd_id column, canonical values.
    item         text    not null,
    page         bigint  not null,
    read_at      bigint  not null,
    constraint scan_monday_items_pkey primary key (run_id, item_id)
);

-- Records a backfill queued a Monday item for: created_in_monday counts those now linked.
create table scan_creates (
    run_id       bigint  not null references scan_runs (id) on delete cascade,
    entity_id    bigint  not null references entities (id),
    constraint scan_creates_pkey primary key (run_id, entity_id)
);

create table match_reviews (
    id             bigserial primary key,
    run_id         bigint  not null references scan_runs (id),
    entity_kind    text    not null check (entity_kind in ('contact', 'organization')),
    npd_id         text    not null,
    -- domain::scan::Candidate list as JSON.
    candidates     text    not null,
    status         text    not null check (status in ('review', 'linked', 'created', 'ignored')),
    resolved_item  text,
    resolved_by    text,
    resolved_at    bigint,
    created_at     bigint  not null,
    updated_at     bigint  not null
);
create unique index match_reviews_one_open_idx on match_reviews (entity_kind, npd_id) where status = 'review';
create index match_reviews_status_idx on match_reviews (status, id);

-- What the last drift scan compared, page by page: an unchanged page is not compared again.
create table scan_page_checksums (
    side         text    not null check (side in ('npd', 'monday')),
    entity_kind  text    not null,
    page         bigint  not null,
    checksum     text    not null,
    updated_at   bigint  not null,
    constraint scan_page_checksums_pkey primary key (side, entity_kind, page)
);
