-- Issue 22: a suspended account's keys are refused on every call (its
-- running tasks finish and settle normally).
ALTER TABLE accounts ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1));
-- Bumped by every change that makes a cached key record wrong (a key
-- revoked or re-limited, an account suspended or resumed); each API node
-- polls it and empties its key cache when it moves.
CREATE TABLE auth_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO auth_epoch (id, value) VALUES (1, 0);
-- Usage reports (issue 22) read tasks and ledger rows by time across accounts.
CREATE INDEX tasks_created_at ON tasks(created_at);
CREATE INDEX ledger_entries_created_at ON ledger_entries(created_at);
-- What each node last said about itself and its providers (issue 22): the
-- admin API's cluster view reads these instead of asking each node.
CREATE TABLE node_reports (
    node         TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    boot         TEXT NOT NULL,
    reported_at  INTEGER NOT NULL,
    report       TEXT NOT NULL
);
