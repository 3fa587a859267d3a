//! Document templates through the engine: list, read, create, update, delete and preview, with
//! the authorization rules, and the template an export names, checked at submit and loaded at
//! run time.
//!
//! Who may do what: therapists and administrators use templates; patients do not (they export
//! nothing). Everyone who may use templates sees the system templates and their own; another
//! user's template is [`EngineError::TemplateNotFound`], as if it did not exist. System templates
//! are read-only to everyone, administrators included ([`EngineError::Forbidden`]); they are
//! installed through the store, not through the engine.
//!
//! An export naming a template takes its layout only: the request's own format and
//! `include_sections` decide what is written, and the template's `format` and `include_sections`
//! are what a client proposes when the template is picked. Any document format the export type
//! allows may use a template, whichever format the template was saved with.
//!
//! Template changes are not audited: the audit trail records what happened to exports and its
//! action vocabulary has no template actions. A template holds no patient data.

use chrono::{DateTime, Utc};
use export_domain::{
    ExportJob, ExportTemplate, ExportType, Role, TemplateRequest, to_storage_precision,
};
use export_render::{DocumentMeta, TemplateError, render_html_preview};
use export_store::{StoreError, templates};
use uuid::Uuid;

use super::{Actor, EngineError, ExportEngine, ExportRequest, invalid};

/// The message of a `template_id` that names no template the requester may use.
pub(super) const NO_SUCH_TEMPLATE: &str = "there is no such template";

/// Whether `user` may see and use `template`: a system template, or one of their own.
fn visible_to(template: &ExportTemplate, user: Uuid) -> bool {
    template.is_system || template.created_by == Some(user)
}

/// Refuses patients: only therapists and administrators use templates.
fn may_use_templates(actor: &Actor) -> Result<(), EngineError> {
    match actor.role {
        Role::Therapist | Role::Admin => Ok(()),
        Role::Patient => Err(EngineError::Forbidden(
            "only therapists and administrators use templates",
        )),
    }
}

/// A duplicate name as a field error; other store errors as they are.
fn name_taken(err: StoreError) -> EngineError {
    match err {
        StoreError::TemplateNameTaken => EngineError::TemplateNameTaken,
        err => err.into(),
    }
}

/// A custom template that failed on an export's records. The engine's message may quote a value
/// of the records, so only the line is kept, and the limit it ran into (which quotes nothing).
pub(super) fn failed_to_render(id: Uuid, err: &TemplateError) -> EngineError {
    let at = err
        .line
        .map(|l| format!(" at line {l}"))
        .unwrap_or_default();
    EngineError::TemplateUnusable {
        id,
        reason: match &err.exceeded {
            Some(limit) => format!("it went past {limit} on this export's records{at}"),
            None => format!("it failed to render this export's records{at}"),
        },
    }
}

/// When a preview says it was generated: the moment the sample header names.
fn sample_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-04-01T09:00:00Z")
        .expect("a valid timestamp")
        .to_utc()
}

impl ExportEngine {
    /// The templates `actor` may use: the system templates and their own, optionally only those
    /// of `export_type`. Ordered system templates first, then by name (then id), so a picker
    /// lists them in a stable order however often they are edited.
    pub fn list_templates(
        &self,
        actor: &Actor,
        export_type: Option<ExportType>,
    ) -> Result<Vec<ExportTemplate>, EngineError> {
        may_use_templates(actor)?;
        let mut conn = self.store.connection()?;
        Ok(templates::list_templates(
            &mut conn,
            actor.user_id,
            export_type,
        )?)
    }

    /// A system template or one of `actor`'s own; any other is `TemplateNotFound`.
    pub fn template(&self, actor: &Actor, id: Uuid) -> Result<ExportTemplate, EngineError> {
        may_use_templates(actor)?;
        let mut conn = self.store.connection()?;
        match templates::get_template(&mut conn, id)? {
            Some(template) if visible_to(&template, actor.user_id) => Ok(template),
            _ => Err(EngineError::TemplateNotFound(id)),
        }
    }

    /// One of `actor`'s own templates, to change: a system template is `Forbidden`, another
    /// user's `TemplateNotFound`.
    fn own_template(&self, actor: &Actor, id: Uuid) -> Result<ExportTemplate, EngineError> {
        let template = self.template(actor, id)?;
        if template.is_system {
            return Err(EngineError::Forbidden("system templates cannot be changed"));
        }
        Ok(template)
    }

    /// Refuses a template request whose source does not lay out its export type, as a field
    /// error on `template_content` naming the line and the cause. The format is checked again
    /// for requests built without `TemplateInput::validate`, which already refuses datasets and
    /// every format but PDF and DOCX.
    fn check_template_request(&self, request: &TemplateRequest) -> Result<(), EngineError> {
        if !request.format.is_document() || !request.export_type.allows(request.format) {
            return Err(invalid(
                "format",
                format!(
                    "templates lay out {} documents as pdf or docx, as the type allows",
                    request.export_type
                ),
            ));
        }
        self.producer
            .templates()
            .check_custom(request.export_type, &request.template_content)
            .map_err(|err| invalid("template_content", err.to_string()))
    }

    /// Creates a template owned by `actor` (a therapist or an administrator). Its source must
    /// render the sample context of its export type (`Invalid`, field `template_content`, with
    /// the line and cause otherwise); a name `actor` already uses is `Invalid`, field `name`.
    /// Not audited (see the module docs).
    pub fn create_template(
        &self,
        actor: &Actor,
        request: TemplateRequest,
        now: DateTime<Utc>,
    ) -> Result<ExportTemplate, EngineError> {
        may_use_templates(actor)?;
        self.check_template_request(&request)?;
        let now = to_storage_precision(now);
        let template = ExportTemplate {
            id: Uuid::new_v4(),
            name: request.name,
            description: request.description,
            export_type: request.export_type,
            format: request.format,
            template_content: request.template_content,
            include_sections: request.include_sections,
            is_system: false,
            created_by: Some(actor.user_id),
            created_at: now,
            updated_at: now,
        };
        let mut conn = self.store.connection()?;
        templates::insert_template(&mut conn, &template).map_err(name_taken)?;
        Ok(template)
    }

    /// Replaces every field of one of `actor`'s own templates, checked as at creation. The export
    /// type cannot change (`Invalid`, field `export_type`): exports and schedules already name the
    /// template for its type. Exports submitted before and still waiting render with the new
    /// source. Not audited (see the module docs).
    pub fn update_template(
        &self,
        actor: &Actor,
        id: Uuid,
        request: TemplateRequest,
        now: DateTime<Utc>,
    ) -> Result<ExportTemplate, EngineError> {
        let existing = self.own_template(actor, id)?;
        if request.export_type != existing.export_type {
            return Err(EngineError::TemplateTypeFixed {
                stored: existing.export_type,
            });
        }
        self.check_template_request(&request)?;
        let template = ExportTemplate {
            name: request.name,
            description: request.description,
            format: request.format,
            template_content: request.template_content,
            include_sections: request.include_sections,
            updated_at: to_storage_precision(now),
            ..existing
        };
        let mut conn = self.store.connection()?;
        if !templates::update_template(&mut conn, &template).map_err(name_taken)? {
            return Err(EngineError::TemplateNotFound(id));
        }
        Ok(template)
    }

    /// Deletes one of `actor`'s own templates. Finished exports made with it keep their files
    /// (their `template_id` is cleared by the database); an export still waiting fails when a
    /// worker reaches it, naming the template. A template a scheduled report uses is
    /// `TemplateInUse`. Not audited (see the module docs).
    pub fn delete_template(&self, actor: &Actor, id: Uuid) -> Result<(), EngineError> {
        self.own_template(actor, id)?;
        let mut conn = self.store.connection()?;
        match templates::delete_template(&mut conn, id) {
            Ok(true) => Ok(()),
            Ok(false) => Err(EngineError::TemplateNotFound(id)),
            Err(StoreError::ForeignKey { .. }) => Err(EngineError::TemplateInUse(id)),
            Err(err) => Err(err.into()),
        }
    }

    /// The HTML preview of a template `actor` may see, rendered with the sample context of its
    /// export type: sample names and figures, no one's records. A stored template that does not
    /// render is `TemplateUnusable` with the line and cause.
    pub fn preview_template(&self, actor: &Actor, id: Uuid) -> Result<String, EngineError> {
        let template = self.template(actor, id)?;
        let meta = DocumentMeta::new(template.name.clone(), "Sample Therapist", sample_time());
        let document = self
            .producer
            .templates()
            .render_sample(template.export_type, &template.template_content, meta)
            .map_err(|err| EngineError::TemplateUnusable {
                id,
                reason: err.to_string(),
            })?;
        Ok(render_html_preview(&document))
    }

    /// Refuses, as a field error on `template_id`, an export naming a template `actor` may not
    /// use or one made for another export type.
    pub(super) fn check_request_template(
        &self,
        actor: &Actor,
        request: &ExportRequest,
    ) -> Result<(), EngineError> {
        let Some(id) = request.template_id() else {
            return Ok(());
        };
        let mut conn = self.store.connection()?;
        match templates::get_template(&mut conn, id)? {
            Some(template) if visible_to(&template, actor.user_id) => {
                if template.export_type == request.export_type() {
                    Ok(())
                } else {
                    Err(invalid(
                        "template_id",
                        format!(
                            "the template lays out {} exports, not {}",
                            template.export_type,
                            request.export_type()
                        ),
                    ))
                }
            }
            _ => Err(invalid("template_id", NO_SUCH_TEMPLATE)),
        }
    }

    /// The source of the template `job` names, at run time: `TemplateUnusable` when it was
    /// deleted (or otherwise left the requester's reach) since the job was submitted.
    pub(super) fn job_template(&self, job: &ExportJob, id: Uuid) -> Result<String, EngineError> {
        let mut conn = self.store.connection()?;
        match templates::get_template(&mut conn, id)? {
            Some(template)
                if visible_to(&template, job.user_id)
                    && template.export_type == job.export_type =>
            {
                Ok(template.template_content)
            }
            Some(_) => Err(EngineError::TemplateUnusable {
                id,
                reason: "it no longer lays out this export for its requester".into(),
            }),
            None => Err(EngineError::TemplateUnusable {
                id,
                reason: "it was deleted after the export was requested".into(),
            }),
        }
    }
}
