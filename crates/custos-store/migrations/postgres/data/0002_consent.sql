-- Consent ledger (issue 4), PostgreSQL.
-- Policy versions and events are append-only: triggers refuse UPDATE,
-- DELETE and TRUNCATE, so no code path (or stray SQL) can alter the ledger.
-- Erasure of a subject shreds the encrypted proof by destroying the
-- subject's key; the rows themselves (ids, times, purposes, hashes) stay.
CREATE TABLE consent_policies (
    tenant TEXT NOT NULL,
    purpose TEXT NOT NULL,
    version BIGINT NOT NULL,
    text TEXT NOT NULL,
    text_sha256 BYTEA NOT NULL,
    material BIGINT NOT NULL,
    effective_us BIGINT NOT NULL,
    revalidation TEXT NOT NULL,
    grace_until_us BIGINT,
    created_us BIGINT NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (tenant, purpose, version)
);
CREATE TABLE consent_events (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    version BIGINT,
    text_sha256 BYTEA,
    action TEXT NOT NULL,
    at_us BIGINT NOT NULL,
    recorded_us BIGINT NOT NULL,
    channel TEXT NOT NULL,
    affirmative BIGINT NOT NULL,
    gpc BIGINT NOT NULL,
    form_id TEXT,
    proof_ct BYTEA,
    actor TEXT NOT NULL
);
CREATE INDEX consent_events_subject ON consent_events (tenant, subject, purpose, at_us);
-- Materialised current state: the greatest event per (subject, purpose) by
-- (at_us, rank, version, event id); always equal to the fold of the events.
-- Ids compare bytewise (COLLATE "C"), exactly as the Rust fold compares them.
CREATE TABLE consent_state (
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    state TEXT NOT NULL,
    version BIGINT,
    at_us BIGINT NOT NULL,
    rank BIGINT NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, subject, purpose)
);
CREATE INDEX consent_state_purpose ON consent_state (tenant, purpose);
CREATE INDEX subjects_tenant ON subjects (tenant);
CREATE FUNCTION custos_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION custos_append_only();
CREATE TRIGGER consent_events_no_truncate BEFORE TRUNCATE ON consent_events
    FOR EACH STATEMENT EXECUTE FUNCTION custos_append_only();
CREATE TRIGGER consent_policies_append_only BEFORE UPDATE OR DELETE ON consent_policies
    FOR EACH ROW EXECUTE FUNCTION custos_append_only();
CREATE TRIGGER consent_policies_no_truncate BEFORE TRUNCATE ON consent_policies
    FOR EACH STATEMENT EXECUTE FUNCTION custos_append_only();
