-- Data store of the vault (PostgreSQL). Keys live in a separate database.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    shredded_us BIGINT
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    scopes TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT,
    revoked_us BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);
CREATE TABLE subjects (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    external_id TEXT,
    created_us BIGINT NOT NULL,
    restricted_us BIGINT,
    erased_us BIGINT
);
CREATE UNIQUE INDEX subjects_external ON subjects (tenant, external_id) WHERE external_id IS NOT NULL;
CREATE TABLE identities (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    blind BYTEA NOT NULL,
    subject TEXT NOT NULL,
    value_ct BYTEA NOT NULL,
    PRIMARY KEY (tenant, kind, blind)
);
CREATE INDEX identities_subject ON identities (subject);
CREATE TABLE records (
    subject TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    tenant TEXT NOT NULL,
    fields BYTEA NOT NULL,
    updated_us BIGINT NOT NULL,
    PRIMARY KEY (subject, collection, rkey)
);
CREATE TABLE tokens (
    token TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    audience TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
CREATE TABLE erasure_ledger (
    subject TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    erased_us BIGINT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL
);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at_us BIGINT NOT NULL,
    tenant TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    purpose TEXT,
    outcome TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (tenant, subject);
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));
