-- Files the expiry pass moved to the archive store instead of deleting them (an optional
-- policy): the key of the copy there, wrapped by the master key, kept apart from the job so an
-- expired job's own wrapped key is still forgotten.
CREATE TABLE archived_files (
    export_job_id TEXT PRIMARY KEY NOT NULL,
    file_key TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    archived_at TIMESTAMP NOT NULL
);
