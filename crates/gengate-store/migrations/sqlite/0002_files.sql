-- Files uploaded through the Files API. The blob is stored once per account
-- and content (blob_key is derived from both); each upload is its own row.
CREATE TABLE files (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts(id),
    kind               TEXT NOT NULL CHECK (kind IN ('image', 'video', 'audio')),
    mime_type          TEXT NOT NULL,
    name               TEXT,
    size_bytes         INTEGER NOT NULL,
    sha256             TEXT NOT NULL,
    blob_key           TEXT NOT NULL,
    width              INTEGER,
    height             INTEGER,
    duration_seconds   REAL,
    model              TEXT,
    client_request_id  TEXT,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL
);
CREATE INDEX files_account_blob ON files(account_id, blob_key);
CREATE INDEX files_blob ON files(blob_key);
CREATE INDEX files_expiry ON files(expires_at);
