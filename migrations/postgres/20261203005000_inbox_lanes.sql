-- The processing lane of each inbox row (0..64), from its routing key at ingest: NPD kind and id,
-- or the Monday item. A processing transaction claims lanes and takes their oldest unprocessed
-- rows, so one entity's events on one side keep their order while other lanes run in parallel.
-- Rows from before this migration are in lane 0. Keep in step with the other store.
alter table inbox_events add column lane integer not null default 0;
create index inbox_events_lane_unprocessed_idx on inbox_events (lane, id) where processed_at is null;
