-- Issue 23: alerts on money. An account's low-balance threshold (none by
-- default) and whether its credits.low event has gone out for the current dip
-- (cleared when the balance is back at or above the threshold).
ALTER TABLE accounts ADD COLUMN low_balance_threshold BIGINT CHECK (low_balance_threshold >= 0);
ALTER TABLE accounts ADD COLUMN low_balance_alerted BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX accounts_low_balance ON accounts(id) WHERE low_balance_threshold IS NOT NULL;
-- Events not about a task carry their data (credits.low: balance and threshold).
ALTER TABLE webhook_events ADD COLUMN data TEXT;
-- Endpoints that took the default (every event type) keep getting every type.
UPDATE webhook_endpoints SET event_types = '["generation.succeeded","generation.failed","credits.low","key.spend_limit_reached"]'
 WHERE event_types = '["generation.succeeded","generation.failed"]';
-- When the key's last key.spend_limit_reached went out: at most one per spend window
-- (one in all for a limit without a window); cleared when the limit is changed.
ALTER TABLE api_keys ADD COLUMN spend_alerted_at BIGINT;
