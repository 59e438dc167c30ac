-- Webhooks (API.md §8). An event row is written in the same transaction as
-- the task's terminal state (the outbox); the dispatcher fans each event out
-- to one delivery row per subscribed endpoint, and every HTTP attempt of a
-- delivery is its own row.
CREATE TABLE webhook_endpoints (
    id                      TEXT PRIMARY KEY,
    account_id              TEXT NOT NULL REFERENCES accounts(id),
    name                    TEXT NOT NULL,
    url                     TEXT NOT NULL,
    event_types             TEXT NOT NULL,
    status                  TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    secret                  TEXT NOT NULL,
    previous_secret         TEXT,
    previous_secret_until   INTEGER,
    last_success_at         INTEGER,
    last_failure_at         INTEGER,
    failure_count           INTEGER NOT NULL DEFAULT 0,
    failing_since           INTEGER,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    disabled_at             INTEGER,
    revoked_at              INTEGER
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints(account_id, created_at);

CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    type         TEXT NOT NULL,
    task_id      TEXT,
    -- A test event goes to the one endpoint it was sent for.
    endpoint_id  TEXT,
    fanned_out   INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    UNIQUE (task_id, type)
);
CREATE INDEX webhook_events_account ON webhook_events(account_id, created_at);
CREATE INDEX webhook_events_pending ON webhook_events(fanned_out, created_at);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES webhook_events(id),
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_owner      TEXT,
    lease_until      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);

CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries(id),
    endpoint_id  TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    status_code  INTEGER,
    duration_ms  INTEGER NOT NULL,
    error        TEXT,
    response     TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts(endpoint_id, id);
