-- Monday's call budget shared by every replica: one row, written by compare and swap.
create table monday_budget (
    id          integer primary key check (id = 1),
    -- domain::budget::BudgetState as JSON.
    state       text    not null,
    -- Bumped by every write: a replica writes only over the version it read (compare and swap),
    -- so no lock is ever held while it decides, and a stalled replica blocks nobody.
    version     bigint  not null,
    created_at  bigint  not null,
    updated_at  bigint  not null
);
