-- Key store (SQLite): wrapped keys only, never next to the data.
CREATE TABLE keystore_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    root_fingerprint TEXT NOT NULL
);
CREATE TABLE tenant_keys (
    tenant TEXT NOT NULL,
    version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    created_us INTEGER NOT NULL,
    PRIMARY KEY (tenant, version)
);
CREATE TABLE tenant_index_roots (
    tenant TEXT PRIMARY KEY,
    wrapped BLOB NOT NULL
);
CREATE TABLE subject_keys (
    subject TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    kek_version INTEGER NOT NULL,
    wrapped BLOB NOT NULL
);
CREATE INDEX subject_keys_tenant ON subject_keys (tenant);
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL
);
