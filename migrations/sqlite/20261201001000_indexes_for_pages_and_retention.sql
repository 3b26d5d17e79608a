-- Admin lists page by keyset (state or status, then id) and the retention pruner deletes in small
-- batches by age; each of them reads an index, never a whole table.
create index outbox_jobs_state_id_idx on outbox_jobs (state, id);
create index outbox_jobs_done_at_idx on outbox_jobs (done_at) where state = 'done';
create index conflicts_status_id_idx on conflicts (status, id);
create index inbox_events_processed_received_at_idx on inbox_events (received_at) where processed_at is not null;
create index history_at_idx on history (at);
