-- Consent states clustered by their key (WITHOUT ROWID): a state row lives
-- in its primary key's B-tree, so reading states in subject order
-- (suppression lists, checks) walks one tree in order instead of probing
-- the key index and then the table at random rowids, and every write
-- maintains one tree fewer. (Events stay a rowid table: with them
-- clustered by id too, bulk imports measured about 15 % slower.)
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
