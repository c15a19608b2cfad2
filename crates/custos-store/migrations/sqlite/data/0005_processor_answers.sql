-- What processors answer to access notices: their records of the person,
-- sealed under the tenant's request key, read when the archive is built
-- and deleted when the request closes.
CREATE TABLE dsr_processor_answers (
    request_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    step INTEGER NOT NULL,
    processor TEXT NOT NULL,
    sealed BLOB NOT NULL,
    created_us INTEGER NOT NULL,
    PRIMARY KEY (request_id, step)
);
