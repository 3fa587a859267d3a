//! The end of a job's file: shared outside the engine, cancelled or deleted by its owner,
//! expired (deleted, or moved to the archive) when its retention has passed.

use super::*;

impl ExportEngine {
    /// Records that `actor` shared their job outside the engine (an email with the file attached
    /// or a link from [`sign_link`](Self::sign_link), say): an audit entry "shared" with
    /// `metadata`, which must hold no PHI. `job` is the job as the caller read it when it shared
    /// it: the share is recorded even if the job was deleted since (the message has gone), but
    /// only for the job's owner.
    pub fn record_share(
        &self,
        actor: &Actor,
        job: &ExportJob,
        metadata: serde_json::Value,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        if job.user_id != actor.user_id {
            return Err(EngineError::JobNotFound(job.id));
        }
        self.append(Self::entry(
            Some(actor.user_id),
            job,
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

    /// The expiry pass: deletes the files of completed jobs whose expiry has passed (or moves
    /// them to the archive), marks the jobs expired and audits it, then sweeps the leftovers (see
    /// [`ExpiryReport::swept`]). With `dry_run` it only counts.
    ///
    /// Each job is handled on its own: one whose file cannot be copied or deleted is logged by id,
    /// counted in `failed`, left as it was to be tried again next pass, and the pass goes on. Only
    /// a database that cannot list the due jobs fails the pass.
    pub fn expire(&self, now: DateTime<Utc>, dry_run: bool) -> Result<ExpiryReport, EngineError> {
        let mut conn = self.store.connection()?;
        let due = jobs::list_expired(&mut conn, now, i64::MAX)?;
        drop(conn);
        let mut report = ExpiryReport::default();
        for job in &due {
            let done = if dry_run {
                Ok(true)
            } else {
                self.expire_one(job, now)
            };
            match done {
                Ok(true) => {
                    report.expired += 1;
                    report.bytes += job.file_size_bytes.unwrap_or(0).max(0) as u64;
                }
                // Expired by another process meanwhile.
                Ok(false) => {}
                Err(err) => {
                    log::warn!("expiry: job {} could not be expired: {err}", job.id);
                    report.failed += 1;
                }
            }
        }
        self.sweep(now, dry_run, &mut report);
        Ok(report)
    }

    /// Expires one job; false when it was no longer completed.
    fn expire_one(&self, job: &ExportJob, now: DateTime<Utc>) -> Result<bool, EngineError> {
        let key = job.file_key.as_deref().map(FileKey::parse).transpose()?;
        // With an archive, the file is copied there first (re-sealed with a key of its own), and
        // the primary copy is deleted only once the archive is on record.
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
        let marked = self.transaction(|conn| {
            if !jobs::mark_expired(conn, job.id, now)? {
                return Ok(false);
            }
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
            Ok(true)
        })?;
        // The job no longer points to the primary copy: should this delete fail, the sweep
        // removes the file later.
        if archived.is_some()
            && let Some(key) = &key
        {
            self.files.delete(key)?;
        }
        Ok(marked)
    }

    /// Removes what the store holds that no completed job points to and that was last written
    /// longer than `EngineConfig::leftover_grace` ago: files of attempts that lost their job,
    /// of jobs deleted while their file could not be, and temporaries of writes a crash cut
    /// short. The grace keeps a file that is being committed, or a write in progress, safe.
    fn sweep(&self, now: DateTime<Utc>, dry_run: bool, report: &mut ExpiryReport) {
        let before = now - self.config.leftover_grace;
        let old: Vec<Listed> = match self.files.list() {
            Ok(listed) => listed
                .into_iter()
                .filter(|entry| entry.modified <= before)
                .collect(),
            Err(err) => {
                log::warn!("expiry: the file store could not be listed for leftovers: {err}");
                report.sweep_failed += 1;
                return;
            }
        };
        if old.is_empty() {
            return;
        }
        // Read after listing: a file listed and committed meanwhile is among these.
        let live = match self
            .store
            .connection()
            .and_then(|mut conn| jobs::live_file_keys(&mut conn))
        {
            Ok(live) => live,
            Err(err) => {
                log::warn!("expiry: the jobs' files could not be read for the sweep: {err}");
                report.sweep_failed += 1;
                return;
            }
        };
        for entry in old {
            let removed = match &entry.stored {
                Stored::File(key) if live.contains(key.as_str()) => continue,
                _ if dry_run => Ok(true),
                Stored::File(key) => self.files.delete(key),
                Stored::Partial(name) => self.files.remove_partial(name),
            };
            match removed {
                Ok(_) => report.swept += 1,
                Err(err) => {
                    log::warn!(
                        "expiry: leftover {} could not be removed: {err}",
                        entry.stored
                    );
                    report.sweep_failed += 1;
                }
            }
        }
        if report.swept > 0 && !dry_run {
            log::info!("expiry: {} leftover files removed", report.swept);
        }
    }

    /// Makes the expiry pass move expired files to `archive` (audited as expired, `archived`)
    /// instead of deleting them. Archived files are out of users' reach; `jobs::archived_file`
    /// names the copy for whoever must retrieve it.
    pub fn with_archive(mut self, archive: Arc<dyn FileStore>) -> ExportEngine {
        self.archive = Some(archive);
        self
    }
}
