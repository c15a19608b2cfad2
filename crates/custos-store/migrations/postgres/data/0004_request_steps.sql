-- Execution of data-subject requests (issue 5), postgres.
-- What the request must know of the person while it runs (identities,
-- rectification changes) is sealed under the tenant's request key and
-- wiped when the request closes.
ALTER TABLE dsr_requests ADD COLUMN payload_sealed BYTEA;
-- The signed completion record (JSON of counts, never values).
ALTER TABLE dsr_requests ADD COLUMN completion TEXT;

-- One durable job per step. A worker claims a ready step by taking its
-- lease; a step whose lease ran out is ready again (its worker died).
CREATE TABLE dsr_steps (
    request_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    step BIGINT NOT NULL,
    kind TEXT NOT NULL,
    system_id TEXT,
    processor TEXT,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at_us BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_us BIGINT,
    result TEXT,
    error TEXT,
    completed_by TEXT,
    note TEXT,
    updated_us BIGINT NOT NULL,
    PRIMARY KEY (request_id, step)
);
CREATE INDEX dsr_steps_ready ON dsr_steps (status, next_at_us);

-- Access archives: the ZIP sealed under a random archive key, which is
-- itself sealed under the tenant's request key. Deleted after expiry.
CREATE TABLE dsr_archives (
    request_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    key_sealed BYTEA NOT NULL,
    bytes BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL
);
-- One-time download links: only SHA-256 of the token is kept.
CREATE TABLE dsr_archive_links (
    token_hash BYTEA PRIMARY KEY,
    request_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    expires_us BIGINT NOT NULL,
    used_us BIGINT
);
