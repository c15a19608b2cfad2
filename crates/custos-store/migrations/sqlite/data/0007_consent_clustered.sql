-- The consent tables clustered by their keys (WITHOUT ROWID): a state row
-- lives in its primary key's B-tree, so reading states in subject order
-- (suppression lists, checks) walks one tree in order instead of probing
-- the key index and then the table at random rowids, and every write
-- maintains one tree fewer. Events likewise live in their id's tree (ids
-- grow with time, so imports append to it).
CREATE TABLE consent_state_new (
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    state TEXT NOT NULL,
    version INTEGER,
    at_us INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (tenant, subject, purpose)
) WITHOUT ROWID;
INSERT INTO consent_state_new SELECT tenant, subject, purpose, state, version, at_us, rank, event_id FROM consent_state;
DROP TABLE consent_state;
ALTER TABLE consent_state_new RENAME TO consent_state;
-- consent_state_purpose went with the old table and is not recreated: no
-- query reads states by purpose alone, and each write paid for it.

CREATE TABLE consent_events_new (
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
) WITHOUT ROWID;
INSERT INTO consent_events_new SELECT id, tenant, subject, purpose, version, text_sha256, action, at_us, recorded_us, channel, affirmative, gpc, form_id, proof_ct, actor FROM consent_events;
DROP TABLE consent_events;
ALTER TABLE consent_events_new RENAME TO consent_events;
CREATE INDEX consent_events_subject ON consent_events (tenant, subject, purpose, at_us);
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
