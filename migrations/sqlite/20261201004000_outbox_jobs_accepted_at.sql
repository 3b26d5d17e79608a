-- When the oldest event a job carries was accepted (its inbox row's received_at, unix ms): the
-- start of the sync latency that /metrics reports once the job's write is acknowledged. Null for
-- work no event caused (admin pushes, link write-backs). Keep in step with the other store.
alter table outbox_jobs add column accepted_at bigint;
