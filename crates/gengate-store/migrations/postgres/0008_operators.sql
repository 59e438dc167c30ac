-- Issue 22, the operator's side.
-- Operators and their keys: gg_op_… keys, hashed like API keys, owning no account.
CREATE TABLE operators (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    visible_prefix  TEXT NOT NULL UNIQUE,
    key_hash        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    revoked_at      BIGINT,
    last_used_at    BIGINT
);
-- Every operator action, through the admin API or the command line: who
-- (an operator's name, or 'cli'), what, on what, the values before and
-- after (JSON text), and the request it came with.
CREATE TABLE audit_log (
    seq BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    account_id  TEXT,
    before_json TEXT,
    after_json  TEXT,
    request_id  TEXT
);
CREATE INDEX audit_log_actor ON audit_log(actor, seq);
CREATE INDEX audit_log_account ON audit_log(account_id, seq) WHERE account_id IS NOT NULL;
CREATE INDEX audit_log_action ON audit_log(action, seq);
