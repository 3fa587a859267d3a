-- The per-file encryption key of a job's file, wrapped by the master key. Kept with the job and
-- not with the file, so the storage directory alone decrypts nothing; cleared when the file
-- expires, which destroys the file in every backup of the directory.
ALTER TABLE export_jobs ADD COLUMN wrapped_key TEXT;
