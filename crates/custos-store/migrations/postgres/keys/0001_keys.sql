-- Key store (PostgreSQL): wrapped keys only, never next to the data.
CREATE TABLE keystore_meta (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    root_fingerprint TEXT NOT NULL
);
CREATE TABLE tenant_keys (
    tenant TEXT NOT NULL,
    version BIGINT NOT NULL,
    wrapped BYTEA NOT NULL,
    created_us BIGINT NOT NULL,
    PRIMARY KEY (tenant, version)
);
CREATE TABLE tenant_index_roots (
    tenant TEXT PRIMARY KEY,
    wrapped BYTEA NOT NULL
);
CREATE TABLE subject_keys (
    subject TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    kek_version BIGINT NOT NULL,
    wrapped BYTEA NOT NULL
);
CREATE INDEX subject_keys_tenant ON subject_keys (tenant);
CREATE TABLE audit_anchor (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    signature BYTEA NOT NULL
);
