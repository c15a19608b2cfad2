-- Data-subject requests (issue 5), postgres.
-- The person is named by subject id, or — when no subject matched — by the
-- blind index of the identity given; never by a clear value. The one-time
-- verification code is stored only as SHA-256(salt || code).
CREATE TABLE dsr_requests (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    subject TEXT,
    identity_kind TEXT NOT NULL,
    identity_blind BYTEA,
    -- subject id or 'blind:' + hex blind index: duplicates merge on it
    person TEXT NOT NULL,
    received_us BIGINT NOT NULL,
    due_us BIGINT NOT NULL,
    extended_months BIGINT NOT NULL,
    extension_reason TEXT,
    verification TEXT NOT NULL,
    code_hash BYTEA,
    code_salt BYTEA,
    code_attempts BIGINT NOT NULL,
    code_expires_us BIGINT,
    rejection_reason TEXT,
    updated_us BIGINT NOT NULL,
    closed_us BIGINT
);
-- At most one open request per person and type.
CREATE UNIQUE INDEX dsr_requests_open ON dsr_requests (tenant, person, kind) WHERE closed_us IS NULL;
CREATE INDEX dsr_requests_due ON dsr_requests (tenant, due_us);
