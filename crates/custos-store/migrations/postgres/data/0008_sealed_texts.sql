-- Free text of requests sealed (issue 16), postgres. Reasons, notes and
-- processors' notes may name a person or hold an IBAN typed by someone:
-- they are sealed under a random key of the request (text_key_sealed),
-- itself sealed under the tenant's request key. Destroying that one key
-- makes every sealed text of the request noise, including the copies in
-- its signed completion record. The clear columns (extension_reason,
-- rejection_reason, note) are no longer written; what older versions
-- wrote there is emptied when the request's texts are wiped.
ALTER TABLE dsr_requests ADD COLUMN text_key_sealed BYTEA;
ALTER TABLE dsr_requests ADD COLUMN extension_reason_sealed BYTEA;
ALTER TABLE dsr_requests ADD COLUMN rejection_reason_sealed BYTEA;
-- A step's note (a person's, or a processor's) and the operator's reason
-- for retrying or skipping it.
ALTER TABLE dsr_steps ADD COLUMN note_sealed BYTEA;
ALTER TABLE dsr_steps ADD COLUMN reason_sealed BYTEA;
