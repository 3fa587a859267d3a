//! The end of a job's file: shared outside the engine, cancelled or deleted by its owner,
//! expired (deleted, or moved to the archive) when its retention has passed.

use super::*;

impl ExportEngine {
    /// Records that `actor` shared their completed job outside the engine (an email with the file
    /// attached, say): an audit entry "shared" with `metadata`, which must hold no PHI.
    pub fn record_share(
        &self,
        actor: &Actor,
        job_id: Uuid,
        metadata: serde_json::Value,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let job = self.job(actor, job_id)?;
        self.append(Self::entry(
            Some(actor.user_id),
            &job,
            AuditAction::Shared,
            AuditOutcome::Success,
            origin,
            now,
            metadata,
        ))?;
        Ok(())
    }

    /// Cancels `actor`'s job if it has not finished, or deletes it and its file if it has; audited
    /// either way.
    pub fn cancel_or_delete(
        &self,
        actor: &Actor,
        job_id: Uuid,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<ExportJob, EngineError> {
        let job = self.job(actor, job_id)?;
        if !job.status.is_terminal() {
            let cancelled = self.transaction(|conn| {
                if !jobs::cancel_job(conn, job.id, now)? {
                    return Ok(false);
                }
                self.audit(
                    conn,
                    Self::entry(
                        Some(actor.user_id),
                        &job,
                        AuditAction::Cancelled,
                        AuditOutcome::Success,
                        origin,
                        now,
                        serde_json::json!({}),
                    ),
                )?;
                Ok(true)
            })?;
            if cancelled {
                return self.job(actor, job_id);
            }
        }
        let job = self.job(actor, job_id)?;
        if let Some(key) = job.file_key.as_deref() {
            self.files.delete(&FileKey::parse(key)?)?;
        }
        self.transaction(|conn| {
            jobs::delete_job(conn, job.id)?;
            self.audit(
                conn,
                Self::entry(
                    Some(actor.user_id),
                    &job,
                    AuditAction::Deleted,
                    AuditOutcome::Success,
                    origin,
                    now,
                    serde_json::json!({"status": job.status}),
                ),
            )
        })?;
        Ok(job)
    }

    /// Deletes the files of completed jobs whose expiry has passed, marks them expired and audits
    /// it; with `dry_run` only counts. Returns the jobs and bytes concerned.
    pub fn expire(&self, now: DateTime<Utc>, dry_run: bool) -> Result<(u64, u64), EngineError> {
        let mut conn = self.store.connection()?;
        let due = jobs::list_expired(&mut conn, now, i64::MAX)?;
        drop(conn);
        let bytes = due.iter().filter_map(|j| j.file_size_bytes).sum::<i64>() as u64;
        if dry_run {
            return Ok((due.len() as u64, bytes));
        }
        for job in &due {
            let key = job.file_key.as_deref().map(FileKey::parse).transpose()?;
            // With an archive, the file is copied there first (re-sealed with a key of its own),
            // and the primary copy is deleted only once the archive is on record.
            let archived = match (&self.archive, &key, job.wrapped_key.as_deref()) {
                (Some(archive), Some(key), Some(wrapped)) => {
                    let mut reader = self.files.open(key, wrapped)?;
                    Some(archive.put(key, &mut reader)?)
                }
                _ => None,
            };
            if archived.is_none()
                && let Some(key) = &key
            {
                self.files.delete(key)?;
            }
            self.transaction(|conn| {
                if jobs::mark_expired(conn, job.id, now)? {
                    if let (Some(stored), Some(key)) = (&archived, &key) {
                        jobs::record_archive(
                            conn,
                            job.id,
                            key.as_str(),
                            &stored.wrapped_key,
                            stored.size_bytes as i64,
                            now,
                        )?;
                    }
                    self.audit(
                        conn,
                        Self::entry(
                            None,
                            job,
                            AuditAction::Expired,
                            AuditOutcome::Success,
                            &RequestOrigin::default(),
                            now,
                            serde_json::json!({"bytes": job.file_size_bytes, "archived": archived.is_some()}),
                        ),
                    )?;
                }
                Ok(())
            })?;
            if archived.is_some()
                && let Some(key) = &key
            {
                self.files.delete(key)?;
            }
        }
        Ok((due.len() as u64, bytes))
    }

    /// Makes the expiry pass move expired files to `archive` (audited as expired, `archived`)
    /// instead of deleting them. Archived files are out of users' reach; `jobs::archived_file`
    /// names the copy for whoever must retrieve it.
    pub fn with_archive(mut self, archive: Arc<dyn FileStore>) -> ExportEngine {
        self.archive = Some(archive);
        self
    }
}
