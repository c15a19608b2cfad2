-- What was erased, kept apart from the data store: a restored data store
-- cannot take these back, and the server refuses to serve one that lacks
-- an erasure recorded here until it is recovered. Ids only.
CREATE TABLE erased_subjects (
    subject TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    erased_us INTEGER NOT NULL
);
CREATE TABLE shredded_tenants (
    tenant TEXT PRIMARY KEY,
    shredded_us INTEGER NOT NULL
);
-- Anchors of the audit chain replaced by a recovery: the lost stretch of
-- the chain stays on record.
CREATE TABLE audit_anchor_history (
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    replaced_us INTEGER NOT NULL,
    restored_seq INTEGER NOT NULL,
    reason TEXT NOT NULL
);
