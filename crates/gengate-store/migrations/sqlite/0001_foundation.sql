-- gengate schema (SQLite). Timestamps are integer milliseconds since the
-- Unix epoch; JSON documents are TEXT (never queried into), so SQLite and
-- PostgreSQL round-trip them byte for byte.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    balance     INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    name            TEXT NOT NULL,
    visible_prefix  TEXT NOT NULL UNIQUE,
    key_hash        TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    rate_create     INTEGER,
    rate_read       INTEGER,
    rate_upload     INTEGER,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER
);
CREATE INDEX api_keys_account ON api_keys(account_id);

CREATE TABLE ledger_entries (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    kind           TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'refund', 'adjust')),
    amount         INTEGER NOT NULL,
    balance_after  INTEGER NOT NULL CHECK (balance_after >= 0),
    task_id        TEXT,
    reason         TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX ledger_account ON ledger_entries(account_id, seq);
-- One reserve and at most one refund per task, whatever the code does.
CREATE UNIQUE INDEX ledger_task_kind ON ledger_entries(task_id, kind) WHERE task_id IS NOT NULL;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;

CREATE TABLE idempotency_keys (
    account_id        TEXT NOT NULL,
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,
    idem_key          TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('in_flight', 'completed')),
    locked_until      INTEGER,
    response_status   INTEGER,
    response_headers  TEXT,
    response_body     TEXT,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    PRIMARY KEY (account_id, method, path, idem_key)
);
CREATE INDEX idempotency_expiry ON idempotency_keys(expires_at);

CREATE TABLE tasks (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT NOT NULL UNIQUE,
    account_id         TEXT NOT NULL REFERENCES accounts(id),
    model              TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'succeeded', 'failed')),
    prompt             TEXT NOT NULL,
    params             TEXT NOT NULL,
    reference_files    TEXT NOT NULL,
    reserved_credits   INTEGER NOT NULL CHECK (reserved_credits >= 0),
    final_credits      INTEGER NOT NULL CHECK (final_credits >= 0),
    client_request_id  TEXT,
    result             TEXT,
    error              TEXT,
    provider           TEXT NOT NULL,
    upstream           TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    deadline_at        INTEGER NOT NULL
);
CREATE INDEX tasks_account_seq ON tasks(account_id, seq);
CREATE INDEX tasks_account_status ON tasks(account_id, status, seq);
CREATE INDEX tasks_account_crid ON tasks(account_id, client_request_id, seq);
CREATE INDEX tasks_open_deadline ON tasks(deadline_at) WHERE status IN ('queued', 'processing');

CREATE TABLE jobs (
    task_id      TEXT PRIMARY KEY REFERENCES tasks(id),
    provider     TEXT NOT NULL,
    run_at       INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs(run_at);
