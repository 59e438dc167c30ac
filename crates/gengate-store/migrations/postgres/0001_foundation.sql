-- gengate schema (PostgreSQL). Same shape as the SQLite schema: timestamps
-- are BIGINT milliseconds since the Unix epoch and JSON documents are TEXT
-- (never queried into), so both engines round-trip them identically.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    balance     BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    name            TEXT NOT NULL,
    visible_prefix  TEXT NOT NULL UNIQUE,
    key_hash        TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    rate_create     BIGINT,
    rate_read       BIGINT,
    rate_upload     BIGINT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    revoked_at      BIGINT
);
CREATE INDEX api_keys_account ON api_keys(account_id);

CREATE TABLE ledger_entries (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    kind           TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'refund', 'adjust')),
    amount         BIGINT NOT NULL,
    balance_after  BIGINT NOT NULL CHECK (balance_after >= 0),
    task_id        TEXT,
    reason         TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX ledger_account ON ledger_entries(account_id, seq);
CREATE UNIQUE INDEX ledger_task_kind ON ledger_entries(task_id, kind) WHERE task_id IS NOT NULL;
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only';
END $$;
CREATE TRIGGER ledger_no_change BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TABLE idempotency_keys (
    account_id        TEXT NOT NULL,
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,
    idem_key          TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('in_flight', 'completed')),
    locked_until      BIGINT,
    response_status   BIGINT,
    response_headers  TEXT,
    response_body     TEXT,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    PRIMARY KEY (account_id, method, path, idem_key)
);
CREATE INDEX idempotency_expiry ON idempotency_keys(expires_at);

CREATE TABLE tasks (
    seq                BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts(id),
    model              TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'succeeded', 'failed')),
    prompt             TEXT NOT NULL,
    params             TEXT NOT NULL,
    reference_files    TEXT NOT NULL,
    reserved_credits   BIGINT NOT NULL CHECK (reserved_credits >= 0),
    final_credits      BIGINT NOT NULL CHECK (final_credits >= 0),
    client_request_id  TEXT,
    result             TEXT,
    error              TEXT,
    provider           TEXT NOT NULL,
    upstream           TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    deadline_at        BIGINT NOT NULL
);
CREATE INDEX tasks_account_seq ON tasks(account_id, seq);
CREATE INDEX tasks_account_status ON tasks(account_id, status, seq);
CREATE INDEX tasks_account_crid ON tasks(account_id, client_request_id, seq);
CREATE INDEX tasks_open_deadline ON tasks(deadline_at) WHERE status IN ('queued', 'processing');

CREATE TABLE jobs (
    task_id      TEXT PRIMARY KEY REFERENCES tasks(id),
    provider     TEXT NOT NULL,
    run_at       BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(run_at);
