-- A claim takes the first runnable jobs to one side by priority then age: this index walks the
-- pending jobs in that order and stops after the claim's limit, instead of reading every pending
-- job and sorting them (a backlog of 10,000 write-backs made every claim read all 10,000).
create index outbox_jobs_claim_idx on outbox_jobs (target, priority desc, id) where state = 'pending';
