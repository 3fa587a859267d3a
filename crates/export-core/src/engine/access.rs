//! Every read of protected health information that leaves the engine: a download by bearer
//! token, by signed link or for an emailed attachment, the signed link itself, and the audit
//! trail exported as CSV. Each re-checks, at the moment of reading, that the reader may see the
//! patient now, and each is audited, refusals too.
//!
//! The right to read a job's file is decided from the records, not from the caller's claims: the
//! reader must own the job, still be on record, and hold the stored role the export needs: a
//! therapist with an active care relationship for a patient's export, a therapist for a
//! therapists' dataset, an administrator for an administrators' dataset. A file whose
//! `expires_at` has passed is gone (`NotReady` with status expired) even before the expiry pass
//! deletes it.

use std::io::{Read, Write};

use chrono::{DateTime, Duration, Utc};
use export_domain::{AuditAction, AuditOutcome, ExportJob, JobStatus, NewAuditEntry, Role};
use export_render::{RenderError, Renderer, RowBuffer, RowSource};
use uuid::Uuid;

use super::{Actor, EngineError, ExportEngine, ExportRequest, RequestOrigin, SignedLink};
use crate::dataset::{Audience, DatasetQuery, Filters};
use crate::links::{LinkGrant, LinkSigner};
use crate::storage::FileKey;

/// How a file leaves the engine, as the audit trail records it (`metadata.via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadChannel {
    /// Downloaded with the owner's bearer token.
    Bearer,
    /// Downloaded with a signed link.
    Link,
    /// Read to be attached to an email.
    Email,
}

impl ReadChannel {
    fn as_str(self) -> &'static str {
        match self {
            ReadChannel::Bearer => "bearer",
            ReadChannel::Link => "link",
            ReadChannel::Email => "email",
        }
    }
}

/// The audit trail as CSV, authorized and audited, ready to be written: see
/// [`ExportEngine::export_audit_trail`].
pub struct AuditTrailExport {
    rows: Box<dyn RowSource + Send>,
}

impl std::fmt::Debug for AuditTrailExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrailExport").finish_non_exhaustive()
    }
}

impl AuditTrailExport {
    /// Writes the CSV to `out` as its rows are read, a page at a time; returns the row count.
    pub fn write_csv(mut self, out: &mut (dyn Write + Send)) -> Result<u64, EngineError> {
        let mut out = Forward { out, written: 0 };
        export_render::CsvRenderer::default()
            .render_rows(self.rows.as_mut(), &mut out)
            .map(|outcome| outcome.rows)
            .map_err(|e| EngineError::Render(e.to_string()))
    }

    /// The columns and rows, for another renderer.
    pub fn into_rows(self) -> Box<dyn RowSource + Send> {
        self.rows
    }
}

impl RowSource for AuditTrailExport {
    fn columns(&self) -> &[export_render::Column] {
        self.rows.columns()
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        self.rows.next_row(row)
    }
}

impl ExportEngine {
    /// Why the user `reader` may not read `job`'s file now, or `None` when they may. The stored
    /// user and role decide, not the caller's claims.
    fn read_refusal(
        &self,
        reader: Uuid,
        job: &ExportJob,
    ) -> Result<Option<&'static str>, EngineError> {
        if job.user_id != reader {
            return Ok(Some("not the owner of the export"));
        }
        let Some(user) = self.source.user(reader)? else {
            return Ok(Some("the user is not on record"));
        };
        let refusal = match job.patient_id {
            Some(patient) => {
                if user.role != Role::Therapist {
                    Some("only therapists read clinical records")
                } else if self
                    .source
                    .relationship(user.id, patient)?
                    .is_some_and(|link| link.is_active)
                {
                    None
                } else {
                    Some("no active care relationship with this patient")
                }
            }
            None => {
                // A dataset across patients: the audience of the dataset decides the role.
                let audience = serde_json::from_value::<ExportRequest>(job.parameters.clone())
                    .ok()
                    .and_then(|request| match request {
                        ExportRequest::Dataset(r) => {
                            self.datasets.get(&r.dataset).map(|d| d.audience())
                        }
                        _ => None,
                    });
                match (audience, user.role) {
                    (Some(Audience::Therapists), Role::Therapist)
                    | (Some(Audience::Admins), Role::Admin) => None,
                    (Some(_), _) => Some("the user's role may no longer read this export"),
                    (None, _) => Some("the export names no patient and no known dataset"),
                }
            }
        };
        Ok(refusal)
    }

    /// Audits a read of `job` that did not happen: `action` (a download or a share) by `channel`.
    fn deny_read(
        &self,
        reader: Uuid,
        job: &ExportJob,
        (action, channel): (AuditAction, ReadChannel),
        reason: &str,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        self.append(Self::entry(
            Some(reader),
            job,
            action,
            AuditOutcome::Denied,
            origin,
            now,
            serde_json::json!({"via": channel.as_str(), "reason": reason}),
        ))?;
        Ok(())
    }

    /// Lets the engine issue signed download links with `signer`'s secret.
    pub fn with_link_signer(mut self, signer: LinkSigner) -> ExportEngine {
        self.links = Some(signer);
        self
    }

    fn signer(&self) -> Result<&LinkSigner, EngineError> {
        self.links
            .as_ref()
            .ok_or(EngineError::Forbidden("signed links are not configured"))
    }

    /// A signed link to `actor`'s completed job, valid for `lifetime`; audited as shared. Refused
    /// (and audited) when `actor` may not read the file now, or when it has expired.
    pub fn issue_link(
        &self,
        actor: &Actor,
        job_id: Uuid,
        lifetime: Duration,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<String, EngineError> {
        let link = self.sign_link(actor, job_id, lifetime, origin, now)?;
        self.append(Self::entry(
            Some(actor.user_id),
            &link.job,
            AuditAction::Shared,
            AuditOutcome::Success,
            origin,
            now,
            serde_json::json!({"link_expires_at": link.expires_at}),
        ))?;
        Ok(link.token)
    }

    /// A signed link checked as [`issue_link`](Self::issue_link) checks it (a refusal audited as
    /// denied) but not yet recorded as shared: for a caller that hands the link on later, an
    /// email say, and records the share with [`record_share`](Self::record_share) once it has
    /// really left (the SMTP server accepted the message), once however often it tried.
    pub fn sign_link(
        &self,
        actor: &Actor,
        job_id: Uuid,
        lifetime: Duration,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<SignedLink, EngineError> {
        let job = self.job(actor, job_id)?;
        if let Some(reason) = self.read_refusal(actor.user_id, &job)? {
            self.deny_read(
                actor.user_id,
                &job,
                (AuditAction::Shared, ReadChannel::Link),
                reason,
                origin,
                now,
            )?;
            return Err(EngineError::Forbidden(reason));
        }
        let status = effective_status(&job, now);
        if status != JobStatus::Completed {
            return Err(EngineError::NotReady { id: job.id, status });
        }
        let grant = LinkGrant {
            job_id,
            user_id: actor.user_id,
            expires_at: now + lifetime,
        };
        let token = self.signer()?.sign(&grant);
        Ok(SignedLink {
            token,
            expires_at: grant.expires_at,
            job,
        })
    }

    /// Opens the file a signed link names, checking the link and, again, that its user may still
    /// read the job: still the owner, still on record in the role the export needs, still caring
    /// for the patient. Every use is audited, refusals too.
    pub fn download_with_link(
        &self,
        token: &str,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(ExportJob, Box<dyn Read + Send>), EngineError> {
        self.open_link(None, token, origin, now)
    }

    /// [`download_with_link`](Self::download_with_link) for a link presented at the address of
    /// job `job_id`: a link for another job is refused (and audited) before anything is opened.
    pub fn download_link_for(
        &self,
        job_id: Uuid,
        token: &str,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(ExportJob, Box<dyn Read + Send>), EngineError> {
        self.open_link(Some(job_id), token, origin, now)
    }

    fn open_link(
        &self,
        expected_job: Option<Uuid>,
        token: &str,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(ExportJob, Box<dyn Read + Send>), EngineError> {
        let grant = match self.signer()?.verify(token, now) {
            Ok(grant) if expected_job.is_some_and(|id| id != grant.job_id) => {
                if let Some(job) = self.job_unchecked(grant.job_id)? {
                    self.deny_read(
                        grant.user_id,
                        &job,
                        (AuditAction::Downloaded, ReadChannel::Link),
                        "presented for another export",
                        origin,
                        now,
                    )?;
                }
                return Err(EngineError::Forbidden("the link is for another export"));
            }
            Ok(grant) => grant,
            Err(refusal) => {
                let metadata = serde_json::json!({"via": "link", "reason": refusal.to_string()});
                self.append(origin.entry(
                    AuditAction::Downloaded,
                    AuditOutcome::Denied,
                    now,
                    metadata,
                ))?;
                return Err(refusal.into());
            }
        };
        self.read_file(grant.user_id, grant.job_id, ReadChannel::Link, origin, now)
    }

    pub(super) fn job_unchecked(&self, job_id: Uuid) -> Result<Option<ExportJob>, EngineError> {
        let mut conn = self.store.connection()?;
        Ok(export_store::jobs::get_job(&mut conn, job_id)?)
    }

    /// Opens a completed job's file for its owner with their bearer token, auditing the
    /// download: [`download_by`](Self::download_by) through [`ReadChannel::Bearer`].
    pub fn download(
        &self,
        actor: &Actor,
        job_id: Uuid,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(ExportJob, Box<dyn Read + Send>), EngineError> {
        self.download_by(actor, job_id, ReadChannel::Bearer, origin, now)
    }

    /// Opens a completed job's file for `actor` by `channel`, if `actor` may read it now: the
    /// owner, on record, in the role the export needs, still caring for its patient; the file
    /// not past its expiry. Audited whatever the answer: a refusal as denied, a job that is not
    /// completed as an error.
    pub fn download_by(
        &self,
        actor: &Actor,
        job_id: Uuid,
        channel: ReadChannel,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(ExportJob, Box<dyn Read + Send>), EngineError> {
        self.read_file(actor.user_id, job_id, channel, origin, now)
    }

    fn read_file(
        &self,
        reader: Uuid,
        job_id: Uuid,
        channel: ReadChannel,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<(ExportJob, Box<dyn Read + Send>), EngineError> {
        let Some(job) = self.job_unchecked(job_id)? else {
            return Err(EngineError::JobNotFound(job_id));
        };
        let deny = |reason: &str| {
            self.deny_read(
                reader,
                &job,
                (AuditAction::Downloaded, channel),
                reason,
                origin,
                now,
            )
        };
        if job.user_id != reader {
            // Someone else's job is, to them, no job at all.
            deny("not the owner of the export")?;
            return Err(EngineError::JobNotFound(job_id));
        }
        if let Some(reason) = self.read_refusal(reader, &job)? {
            deny(reason)?;
            return Err(EngineError::Forbidden(reason));
        }
        let status = effective_status(&job, now);
        if status == JobStatus::Expired {
            deny("the file has expired")?;
            return Err(EngineError::NotReady { id: job.id, status });
        }
        let (Some(key), Some(wrapped), JobStatus::Completed) =
            (job.file_key.as_deref(), job.wrapped_key.as_deref(), status)
        else {
            // A download that cannot be served is still a download attempt on record.
            self.append(Self::entry(
                Some(reader),
                &job,
                AuditAction::Downloaded,
                AuditOutcome::Error,
                origin,
                now,
                serde_json::json!({"via": channel.as_str(), "status": job.status}),
            ))?;
            return Err(EngineError::NotReady { id: job.id, status });
        };
        let reader_of_file = self.files.open(&FileKey::parse(key)?, wrapped)?;
        self.append(Self::entry(
            Some(reader),
            &job,
            AuditAction::Downloaded,
            AuditOutcome::Success,
            origin,
            now,
            serde_json::json!({"via": channel.as_str(), "bytes": job.file_size_bytes}),
        ))?;
        Ok((job, reader_of_file))
    }

    /// The audit trail, filtered by `filters` (the `audit` dataset's), for `actor` to export as
    /// CSV: administrators only, by their stored role. The export is audited (as a download of
    /// the trail, with the filters) before a row is read; the rows are read a page at a time as
    /// they are written.
    pub fn export_audit_trail(
        &self,
        actor: &Actor,
        filters: &Filters,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<AuditTrailExport, EngineError> {
        let is_admin = self
            .source
            .user(actor.user_id)?
            .is_some_and(|u| u.role == Role::Admin);
        let entry = |outcome, metadata| NewAuditEntry {
            user_id: Some(actor.user_id),
            patient_id: filters.uuid(crate::dataset::PATIENT_FILTER),
            ..origin.entry(AuditAction::Downloaded, outcome, now, metadata)
        };
        if !is_admin {
            let reason = "only administrators read the audit trail";
            self.append(entry(
                AuditOutcome::Denied,
                serde_json::json!({"via": "audit_export", "reason": reason}),
            ))?;
            return Err(EngineError::Forbidden(reason));
        }
        let dataset = self
            .datasets
            .get("audit")
            .cloned()
            .ok_or(EngineError::Forbidden("the audit dataset is not available"))?;
        self.append(entry(
            AuditOutcome::Success,
            serde_json::json!({"via": "audit_export", "format": "csv", "filters": filters.audit_summary()}),
        ))?;
        let query = DatasetQuery {
            requested_by: actor.user_id,
            patients: &[],
            filters,
            generated_at: now,
        };
        Ok(AuditTrailExport {
            rows: dataset.rows(&query)?,
        })
    }
}

/// A job's status as a reader sees it at `now`: a completed job past its expiry is expired, even
/// before the expiry pass marks it.
fn effective_status(job: &ExportJob, now: DateTime<Utc>) -> JobStatus {
    match (job.status, job.expires_at) {
        (JobStatus::Completed, Some(expires)) if expires <= now => JobStatus::Expired,
        (status, _) => status,
    }
}

/// A writer that only goes forward, for a renderer that never seeks (CSV) writing to a stream:
/// asking where it stands is answered, any other seek refused.
struct Forward<'a> {
    out: &'a mut (dyn Write + Send),
    written: u64,
}

impl Write for Forward<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl std::io::Seek for Forward<'_> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        match pos {
            std::io::SeekFrom::Current(0) => Ok(self.written),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "a streamed export cannot seek",
            )),
        }
    }
}
