-- Data-subject requests (issue 5), sqlite.
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
    identity_blind BLOB,
    -- subject id or 'blind:' + hex blind index: duplicates merge on it
    person TEXT NOT NULL,
    received_us INTEGER NOT NULL,
    due_us INTEGER NOT NULL,
    extended_months INTEGER NOT NULL,
    extension_reason TEXT,
    verification TEXT NOT NULL,
    code_hash BLOB,
    code_salt BLOB,
    code_attempts INTEGER NOT NULL,
    code_expires_us INTEGER,
    rejection_reason TEXT,
    updated_us INTEGER NOT NULL,
    closed_us INTEGER
);
-- At most one open request per person and type.
CREATE UNIQUE INDEX dsr_requests_open ON dsr_requests (tenant, person, kind) WHERE closed_us IS NULL;
CREATE INDEX dsr_requests_due ON dsr_requests (tenant, due_us);
