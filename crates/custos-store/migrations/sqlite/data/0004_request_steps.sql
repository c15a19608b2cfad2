-- Execution of data-subject requests (issue 5), sqlite.
-- What the request must know of the person while it runs (identities,
-- rectification changes) is sealed under the tenant's request key and
-- wiped when the request closes.
ALTER TABLE dsr_requests ADD COLUMN payload_sealed BLOB;
-- The signed completion record (JSON of counts, never values).
ALTER TABLE dsr_requests ADD COLUMN completion TEXT;

-- One durable job per step. A worker claims a ready step by taking its
-- lease; a step whose lease ran out is ready again (its worker died).
CREATE TABLE dsr_steps (
    request_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    system_id TEXT,
    processor TEXT,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at_us INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until_us INTEGER,
    result TEXT,
    error TEXT,
    completed_by TEXT,
    note TEXT,
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (request_id, step)
);
CREATE INDEX dsr_steps_ready ON dsr_steps (status, next_at_us);

-- Access archives: the ZIP sealed under a random archive key, which is
-- itself sealed under the tenant's request key. Deleted after expiry.
CREATE TABLE dsr_archives (
    request_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    sealed BLOB NOT NULL,
    key_sealed BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL
);
-- One-time download links: only SHA-256 of the token is kept.
CREATE TABLE dsr_archive_links (
    token_hash BLOB PRIMARY KEY,
    request_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    expires_us INTEGER NOT NULL,
    used_us INTEGER
);
