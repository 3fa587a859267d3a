//! Submitting an export: who may ask for what (`authorize`), the idempotency key, the per-user
//! hourly limit counted inside the insert's transaction, and the audit entry of every request,
//! refusals included.

use super::*;

impl ExportEngine {
    /// The patient a request is about, if any, and whether `actor` may export it. Bad input is
    /// `Invalid`; a refusal is `Forbidden`.
    fn authorize(
        &self,
        actor: &Actor,
        request: &ExportRequest,
    ) -> Result<Option<Uuid>, EngineError> {
        let patient_id = match request {
            ExportRequest::Dataset(r) => {
                let dataset = self.dataset(&r.dataset)?;
                let audience = dataset.audience();
                match (audience, actor.role) {
                    (Audience::Therapists, Role::Therapist) | (Audience::Admins, Role::Admin) => {}
                    (Audience::Therapists, _) => {
                        return Err(EngineError::Forbidden(
                            "only therapists export this dataset",
                        ));
                    }
                    (Audience::Admins, _) => {
                        return Err(EngineError::Forbidden(
                            "only administrators export this dataset",
                        ));
                    }
                }
                let filters = check_filters(dataset.as_ref(), &r.filters)
                    .map_err(|errors| ValidationErrors { errors })?;
                match (audience, filters.uuid(PATIENT_FILTER)) {
                    (Audience::Therapists, Some(patient)) => patient,
                    (Audience::Admins, patient) => return Ok(patient),
                    (Audience::Therapists, None) => return Ok(None),
                }
            }
            _ if actor.role != Role::Therapist => {
                return Err(EngineError::Forbidden(
                    "only therapists export clinical records",
                ));
            }
            ExportRequest::SessionNotes(r) => {
                let owners = self.source.session_patients(&r.session_ids)?;
                let first = owners
                    .first()
                    .map(|(_, p)| *p)
                    .ok_or(EngineError::Forbidden("the sessions do not exist"))?;
                if owners.len() != r.session_ids.len() || owners.iter().any(|(_, p)| *p != first) {
                    return Err(EngineError::Forbidden(
                        "every session must exist and belong to one patient",
                    ));
                }
                first
            }
            ExportRequest::ProgressReport(r) => r.patient_id,
            ExportRequest::TreatmentSummary(r) => r.patient_id,
            ExportRequest::FullRecord(r) => r.patient_id,
        };
        match self.source.relationship(actor.user_id, patient_id)? {
            Some(link) if link.is_active => Ok(Some(patient_id)),
            _ => Err(EngineError::Forbidden(
                "no active care relationship with this patient",
            )),
        }
    }

    /// Whether `actor` may make the export `request` asks for, as `submit` would decide, without
    /// submitting or auditing anything: for checking a scheduled report when it is saved. Returns
    /// the patient the request is about, if any.
    pub fn check_export(
        &self,
        actor: &Actor,
        request: &ExportRequest,
    ) -> Result<Option<Uuid>, EngineError> {
        self.authorize(actor, request)
    }

    /// Submits `request` for `actor`: a pending job, or the job already submitted with the same
    /// idempotency key. A refusal is audited too. A `template_id` in the request must name a
    /// template `actor` may use (a system template or their own) of the request's export type,
    /// else the request is `Invalid` with field `template_id`; this holds for every format, though
    /// only PDF and DOCX are laid out by it.
    pub fn submit(
        &self,
        actor: &Actor,
        request: ExportRequest,
        idempotency_key: Option<&str>,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<ExportJob, EngineError> {
        self.submit_within(actor, request, idempotency_key, None, origin, now)
    }

    /// [`submit`](Self::submit), refusing with [`EngineError::TooManyExports`] (audited as
    /// denied) when `actor` already made `per_hour` granted requests in the hour before `now`
    /// (`None` or 0: no limit). The count and the new job's insert are one transaction, queued
    /// behind every other audit writer, so parallel requests at the limit never all pass. An
    /// idempotent replay is not a new request and is never refused.
    pub fn submit_within(
        &self,
        actor: &Actor,
        request: ExportRequest,
        idempotency_key: Option<&str>,
        per_hour: Option<u32>,
        origin: &RequestOrigin,
        now: DateTime<Utc>,
    ) -> Result<ExportJob, EngineError> {
        let per_hour = per_hour.filter(|limit| *limit > 0);
        let parameters = serde_json::to_value(&request).map_err(render_error)?;
        if let Some(key) = idempotency_key
            && let Some(job) = self.replay(actor, key, &parameters)?
        {
            return Ok(job);
        }
        let mut job = ExportJob::pending(
            Uuid::new_v4(),
            actor.user_id,
            None,
            request.export_type(),
            request.format(),
            parameters,
            self.config.max_attempts,
            now,
        );
        job.idempotency_key = idempotency_key.map(str::to_owned);
        job.template_id = request.template_id();
        let authorized = self.authorize(actor, &request).and_then(|patient_id| {
            self.check_request_template(actor, &request)?;
            Ok(patient_id)
        });
        match authorized {
            Err(EngineError::Invalid(problems)) => Err(EngineError::Invalid(problems)),
            // The records could not be read: nothing was decided. A host's source may be down
            // while the trail answers: then the request is recorded as an error (no text); when
            // the trail is out of reach too, the caller still learns the source's unavailability.
            Err(err) if err.is_unavailable() => {
                job.patient_id = request.patient_id();
                let entry = Self::refused_request(
                    actor,
                    &job,
                    AuditOutcome::Error,
                    "internal",
                    origin,
                    now,
                );
                if let Err(audit) = self.append(entry) {
                    log::warn!("submit: the records and the audit trail are unavailable: {audit}");
                }
                Err(err)
            }
            Ok(patient_id) => {
                job.patient_id = patient_id;
                let limited = match self.transaction(|conn| {
                    if let Some(limit) = per_hour {
                        // The limit-th newest request of the hour: when there is one, the next
                        // may come an hour after it.
                        audit::queue_for_append(conn)?;
                        let since = now - Duration::hours(1);
                        let nth = audit::nth_latest_request_since(
                            conn,
                            actor.user_id,
                            since,
                            i64::from(limit),
                        )?;
                        if let Some(nth) = nth {
                            return Ok(Some((limit, nth)));
                        }
                    }
                    jobs::insert_job(conn, &job)?;
                    self.audit(
                        conn,
                        Self::entry(
                            Some(actor.user_id),
                            &job,
                            AuditAction::Requested,
                            AuditOutcome::Success,
                            origin,
                            now,
                            serde_json::json!({"format": job.format}),
                        ),
                    )?;
                    Ok(None)
                }) {
                    // A request racing this one with the same key inserted first: the same job,
                    // when it asked for the same thing.
                    Err(StoreError::IdempotencyKeyTaken) => {
                        let key = idempotency_key.unwrap_or_default();
                        return self
                            .replay(actor, key, &job.parameters)?
                            .ok_or_else(|| EngineError::Store(StoreError::IdempotencyKeyTaken));
                    }
                    // The template was deleted since it was checked.
                    Err(StoreError::ForeignKey { .. }) if job.template_id.is_some() => {
                        return Err(invalid("template_id", templates::NO_SUCH_TEMPLATE));
                    }
                    other => other?,
                };
                let Some((limit, nth)) = limited else {
                    return Ok(job);
                };
                let wait = (nth + Duration::hours(1) - now).num_seconds().max(1) as u64;
                let refusal = EngineError::TooManyExports {
                    limit,
                    retry_after_seconds: wait,
                };
                let reason = refusal.to_string();
                self.append(Self::refused_request(
                    actor,
                    &job,
                    AuditOutcome::Denied,
                    &reason,
                    origin,
                    now,
                ))?;
                Err(refusal)
            }
            Err(refusal) => {
                // The patient asked about, so the refusal shows in that patient's trail. A
                // decision is `denied` with its reason (a fixed text); anything else went wrong
                // inside, is an `error`, and keeps no error text.
                job.patient_id = request.patient_id();
                let (outcome, reason) = match &refusal {
                    EngineError::Forbidden(_)
                    | EngineError::TemplateNotFound(_)
                    | EngineError::Unidentified(_) => (AuditOutcome::Denied, refusal.to_string()),
                    EngineError::Invalid(_)
                    | EngineError::DatasetNotFound { .. }
                    | EngineError::TemplateNameTaken
                    | EngineError::TemplateTypeFixed { .. }
                    | EngineError::JobNotFound(_)
                    | EngineError::TemplateInUse(_)
                    | EngineError::TemplateUnusable { .. }
                    | EngineError::IdempotencyKeyReused { .. }
                    | EngineError::NotReady { .. }
                    | EngineError::TooManyExports { .. }
                    | EngineError::Gather(_)
                    | EngineError::Source(_)
                    | EngineError::Store(_)
                    | EngineError::Storage(_)
                    | EngineError::Render(_)
                    | EngineError::Link(_)
                    | EngineError::Dataset(_) => (AuditOutcome::Error, "internal".to_owned()),
                };
                self.append(Self::refused_request(
                    actor, &job, outcome, &reason, origin, now,
                ))?;
                Err(refusal)
            }
        }
    }

    /// The job `actor` already submitted under `key`, when there is one and it was made from
    /// `parameters`; a different request under the same key is `IdempotencyKeyReused`.
    fn replay(
        &self,
        actor: &Actor,
        key: &str,
        parameters: &serde_json::Value,
    ) -> Result<Option<ExportJob>, EngineError> {
        let mut conn = self.store.connection()?;
        match jobs::find_by_idempotency_key(&mut conn, actor.user_id, key)? {
            Some(job) if job.parameters == *parameters => Ok(Some(job)),
            Some(_) => Err(EngineError::IdempotencyKeyReused {
                key: key.to_owned(),
            }),
            None => Ok(None),
        }
    }
}
