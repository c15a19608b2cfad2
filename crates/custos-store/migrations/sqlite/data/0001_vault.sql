-- Data store of the vault (SQLite). Keys live in a separate database.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    shredded_us INTEGER
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    scopes TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    expires_us INTEGER,
    revoked_us INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);
CREATE TABLE subjects (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    external_id TEXT,
    created_us INTEGER NOT NULL,
    restricted_us INTEGER,
    erased_us INTEGER
);
CREATE UNIQUE INDEX subjects_external ON subjects (tenant, external_id) WHERE external_id IS NOT NULL;
CREATE TABLE identities (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    blind BLOB NOT NULL,
    subject TEXT NOT NULL,
    value_ct BLOB NOT NULL,
    PRIMARY KEY (tenant, kind, blind)
);
CREATE INDEX identities_subject ON identities (subject);
CREATE TABLE records (
    subject TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    tenant TEXT NOT NULL,
    fields BLOB NOT NULL,
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (subject, collection, rkey)
);
CREATE TABLE tokens (
    token TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    audience TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE TABLE erasure_ledger (
    subject TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    erased_us INTEGER NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL
);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at_us INTEGER NOT NULL,
    tenant TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    purpose TEXT,
    outcome TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (tenant, subject);
CREATE TABLE audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    at_us INTEGER NOT NULL
);
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));
