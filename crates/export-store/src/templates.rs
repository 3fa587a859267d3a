//! Repository of export templates: system templates (no owner) and each user's own, names unique
//! per owner.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use export_domain::{ExportTemplate, ExportType};
use uuid::Uuid;

use crate::convert::{id, json, naive, opt_id, opt_text, to_json, utc, word};
use crate::schema::export_templates;
use crate::{DbConnection, StoreError};

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = export_templates, treat_none_as_null = true)]
struct TemplateRow {
    id: String,
    name: String,
    description: Option<String>,
    export_type: String,
    format: String,
    template_content: String,
    include_sections: String,
    is_system: bool,
    created_by: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl TemplateRow {
    fn of(template: &ExportTemplate) -> TemplateRow {
        TemplateRow {
            id: template.id.to_string(),
            name: template.name.clone(),
            description: template.description.clone(),
            export_type: template.export_type.as_str().to_owned(),
            format: template.format.as_str().to_owned(),
            template_content: template.template_content.clone(),
            include_sections: to_json(&template.include_sections),
            is_system: template.is_system,
            created_by: opt_text(template.created_by),
            created_at: naive(template.created_at),
            updated_at: naive(template.updated_at),
        }
    }

    fn into_template(self) -> Result<ExportTemplate, StoreError> {
        Ok(ExportTemplate {
            id: id("export_templates.id", &self.id)?,
            name: self.name,
            description: self.description,
            export_type: word("export_templates.export_type", &self.export_type)?,
            format: word("export_templates.format", &self.format)?,
            template_content: self.template_content,
            include_sections: json("export_templates.include_sections", &self.include_sections)?,
            is_system: self.is_system,
            created_by: opt_id("export_templates.created_by", self.created_by.as_deref())?,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

fn write_error(err: diesel::result::Error) -> StoreError {
    StoreError::from_write("export_templates", err, |constraint| {
        constraint
            .contains("name")
            .then_some(StoreError::TemplateNameTaken)
    })
}

/// Adds a template; a name its owner already uses is [`StoreError::TemplateNameTaken`].
pub fn insert_template(
    conn: &mut DbConnection,
    template: &ExportTemplate,
) -> Result<(), StoreError> {
    diesel::insert_into(export_templates::table)
        .values(TemplateRow::of(template))
        .execute(conn)
        .map_err(write_error)?;
    Ok(())
}

/// The template with this id, if any.
pub fn get_template(
    conn: &mut DbConnection,
    template_id: Uuid,
) -> Result<Option<ExportTemplate>, StoreError> {
    export_templates::table
        .find(template_id.to_string())
        .select(TemplateRow::as_select())
        .get_result(conn)
        .optional()?
        .map(TemplateRow::into_template)
        .transpose()
}

/// The templates `user_id` may use: the system templates and their own, optionally of one
/// export type, system first, then by name.
pub fn list_templates(
    conn: &mut DbConnection,
    user_id: Uuid,
    export_type: Option<ExportType>,
) -> Result<Vec<ExportTemplate>, StoreError> {
    let mut query = export_templates::table
        .filter(
            export_templates::created_by
                .eq(user_id.to_string())
                .or(export_templates::created_by.is_null()),
        )
        .select(TemplateRow::as_select())
        .into_boxed();
    if let Some(export_type) = export_type {
        query = query.filter(export_templates::export_type.eq(export_type.as_str()));
    }
    query
        .order((
            export_templates::is_system.desc(),
            export_templates::name.asc(),
            export_templates::id.asc(),
        ))
        .load(conn)?
        .into_iter()
        .map(TemplateRow::into_template)
        .collect()
}

/// Saves every field of an existing template; false when there is no such template.
pub fn update_template(
    conn: &mut DbConnection,
    template: &ExportTemplate,
) -> Result<bool, StoreError> {
    let changed = diesel::update(export_templates::table.find(template.id.to_string()))
        .set(TemplateRow::of(template))
        .execute(conn)
        .map_err(write_error)?;
    Ok(changed == 1)
}

/// Deletes a template; jobs made from it keep their file and lose the link. A template that a
/// scheduled report uses is [`StoreError::ForeignKey`].
pub fn delete_template(conn: &mut DbConnection, template_id: Uuid) -> Result<bool, StoreError> {
    let deleted = diesel::delete(export_templates::table.find(template_id.to_string()))
        .execute(conn)
        .map_err(write_error)?;
    Ok(deleted == 1)
}
