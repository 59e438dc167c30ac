-- The console (issue 12): an account lists its own keys with the time each
-- was last used. Written at most once a minute per key per node (see the
-- server's key toucher), so authentication stays a read.
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
-- The ledger page of one account, newest first (`seq < cursor`), is served
-- by the existing ledger_account (account_id, seq) index.
