-- Issue 15, control for API users.
-- Sandbox accounts: every task runs on the sandbox provider (0 = live).
ALTER TABLE accounts ADD COLUMN sandbox INTEGER NOT NULL DEFAULT 0 CHECK (sandbox IN (0, 1));
-- Spend limits per key: credits per rolling window (milliseconds), or a
-- fixed total when the window is NULL; no limit when spend_limit is NULL.
ALTER TABLE api_keys ADD COLUMN spend_limit INTEGER CHECK (spend_limit IS NULL OR spend_limit >= 1);
ALTER TABLE api_keys ADD COLUMN spend_window_ms INTEGER CHECK (spend_window_ms IS NULL OR spend_window_ms >= 1000);
-- The key a task was created with (NULL for tasks older than this column):
-- what a key has spent is what its tasks hold.
ALTER TABLE tasks ADD COLUMN api_key_id TEXT;
CREATE INDEX tasks_key_created ON tasks(api_key_id, created_at) WHERE api_key_id IS NOT NULL;
