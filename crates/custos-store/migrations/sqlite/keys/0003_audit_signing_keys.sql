-- Audit signing keys of their own (Ed25519, random, wrapped under the
-- root key's wrapping subkey), and every key ever used: the public key
-- history. An entry is endorsed by the key before it (the first by
-- itself). A retired key keeps its public key; its secret is dropped.
CREATE TABLE audit_signing_keys (
    position INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    origin TEXT NOT NULL,
    valid_from_seq INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    previous TEXT,
    endorsement TEXT NOT NULL,
    wrapped BLOB,
    retired_us INTEGER
);
-- Which key signed the anchor (none: the root-derived key of old stores).
ALTER TABLE audit_anchor ADD COLUMN key_id TEXT;
ALTER TABLE audit_anchor_history ADD COLUMN key_id TEXT;
-- 1: keys wrapped with the root key itself; 2: with its wrapping subkey.
-- Opening a store of format 1 rewraps it (see KeyStore::open).
ALTER TABLE keystore_meta ADD COLUMN wrap_format INTEGER NOT NULL DEFAULT 1;
-- Subject keys written since this time were checked for a subject row at
-- the last start (see Vault::sweep_orphan_keys); 0: never.
ALTER TABLE keystore_meta ADD COLUMN swept_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subject_keys ADD COLUMN created_us INTEGER NOT NULL DEFAULT 0;
CREATE INDEX subject_keys_created ON subject_keys (created_us);
