-- Consent ledger (issue 4), SQLite.
-- Policy versions and events are append-only: triggers refuse UPDATE and
-- DELETE, so no code path (or stray SQL) can alter the ledger. Erasure of a
-- subject shreds the encrypted proof by destroying the subject's key; the
-- rows themselves (ids, times, purposes, hashes) stay as the record.
CREATE TABLE consent_policies (
    tenant TEXT NOT NULL,
    purpose TEXT NOT NULL,
    version INTEGER NOT NULL,
    text TEXT NOT NULL,
    text_sha256 BLOB NOT NULL,
    material INTEGER NOT NULL,
    effective_us INTEGER NOT NULL,
    revalidation TEXT NOT NULL,
    grace_until_us INTEGER,
    created_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (tenant, purpose, version)
);
CREATE TABLE consent_events (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    version INTEGER,
    text_sha256 BLOB,
    action TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    recorded_us INTEGER NOT NULL,
    channel TEXT NOT NULL,
    affirmative INTEGER NOT NULL,
    gpc INTEGER NOT NULL,
    form_id TEXT,
    proof_ct BLOB,
    actor TEXT NOT NULL
);
CREATE INDEX consent_events_subject ON consent_events (tenant, subject, purpose, at_us);
-- Materialised current state: the greatest event per (subject, purpose) by
-- (at_us, rank, version, event id); always equal to the fold of the events.
CREATE TABLE consent_state (
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    state TEXT NOT NULL,
    version INTEGER,
    at_us INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (tenant, subject, purpose)
);
CREATE INDEX consent_state_purpose ON consent_state (tenant, purpose);
CREATE INDEX subjects_tenant ON subjects (tenant);
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
CREATE TRIGGER consent_policies_no_update BEFORE UPDATE ON consent_policies
BEGIN SELECT RAISE(ABORT, 'consent policy versions are append-only'); END;
CREATE TRIGGER consent_policies_no_delete BEFORE DELETE ON consent_policies
BEGIN SELECT RAISE(ABORT, 'consent policy versions are append-only'); END;
