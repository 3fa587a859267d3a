ALTER TABLE export_jobs DROP COLUMN wrapped_key;
