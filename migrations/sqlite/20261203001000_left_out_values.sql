-- Values left out of a write because they cannot be written to the other side (a national phone
-- number with no default country, an unknown label): the latest one per entity, field and
-- direction, shown in the entity's sync status and cleared once that field writes fine.
-- `direction` is the side the write was for; `reason` a domain::mapping::LeftOutReason name.
-- Keep in step with the other store.
create table left_out_values (
    entity_id   bigint  not null references entities (id) on delete cascade,
    field       text    not null,
    direction   text    not null check (direction in ('npd', 'monday')),
    value       text    not null,
    reason      text    not null,
    at          bigint  not null,
    constraint left_out_values_pkey primary key (entity_id, field, direction)
);
