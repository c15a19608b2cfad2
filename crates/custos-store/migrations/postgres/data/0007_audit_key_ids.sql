-- The id of the key that signed each checkpoint; none on checkpoints
-- signed before keys had ids (by the root-derived key).
ALTER TABLE audit_checkpoints ADD COLUMN key_id TEXT;
