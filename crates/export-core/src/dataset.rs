//! Tabular exports: the `Dataset` trait, the filters a dataset declares and the engine checks, and
//! the built-in datasets (`sessions`, `goals`, `audit`). An embedding service registers its own
//! with [`ExportEngine::with_dataset`](crate::engine::ExportEngine::with_dataset).
//!
//! A dataset says who may export it ([`Audience`]). For therapist datasets the engine works out
//! the patients the requester actively cares for (narrowed to one when the request filters on
//! `patient_id`) and hands the dataset only those; the dataset must not return rows of anyone else.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use export_domain::{
    AuditAction, AuditEntry, FieldError, GoalListing, GoalStatus, GoalsPage, SessionListing,
    SessionStatus, SessionsPage,
};
use export_render::{Column, ColumnKind, RenderError, RowBuffer, RowSource};
use export_store::{Store, audit};
use uuid::Uuid;

use crate::source::ClinicalSource;

/// Why a dataset could not produce its rows. Ids only.
#[derive(Debug, thiserror::Error)]
#[error("dataset {dataset} failed: {reason}")]
pub struct DatasetError {
    pub dataset: String,
    pub reason: String,
}

impl DatasetError {
    pub fn new(dataset: &str, reason: impl std::fmt::Display) -> DatasetError {
        DatasetError {
            dataset: dataset.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Who may export a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Therapists, each seeing only the patients they actively care for.
    Therapists,
    /// Administrators: data about the system, not about patients.
    Admins,
}

/// The type of a filter's value, as a client sends it in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// A UUID string.
    Uuid,
    /// A `YYYY-MM-DD` string.
    Date,
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// Free text of at most this many characters.
    Text(usize),
}

/// One filter a dataset accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterSpec {
    pub name: &'static str,
    pub kind: FilterKind,
    pub description: &'static str,
}

/// A checked filter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    Uuid(Uuid),
    Date(NaiveDate),
    Text(String),
}

/// The checked filters of one request, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, FilterValue>);

impl Filters {
    pub fn uuid(&self, name: &str) -> Option<Uuid> {
        match self.0.get(name) {
            Some(FilterValue::Uuid(id)) => Some(*id),
            _ => None,
        }
    }

    pub fn date(&self, name: &str) -> Option<NaiveDate> {
        match self.0.get(name) {
            Some(FilterValue::Date(date)) => Some(*date),
            _ => None,
        }
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(FilterValue::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// The filters as an audit entry may hold them: ids and dates with their values, text by
    /// name only (free text could carry what the trail must not).
    pub fn audit_summary(&self) -> serde_json::Value {
        let map = self
            .0
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    FilterValue::Uuid(id) => serde_json::Value::from(id.to_string()),
                    FilterValue::Date(date) => serde_json::Value::from(date.to_string()),
                    FilterValue::Text(_) => serde_json::Value::Bool(true),
                };
                (name.clone(), value)
            })
            .collect();
        serde_json::Value::Object(map)
    }
}

/// The filter through which a therapist dataset is narrowed to one patient.
pub const PATIENT_FILTER: &str = "patient_id";

/// What a dataset is asked for.
#[derive(Debug, Clone, Copy)]
pub struct DatasetQuery<'a> {
    /// The user the export is for.
    pub requested_by: Uuid,
    /// For therapist datasets, the only patients whose rows may appear; empty for admin datasets.
    pub patients: &'a [Uuid],
    pub filters: &'a Filters,
    pub generated_at: DateTime<Utc>,
}

/// A table an export can be made of.
pub trait Dataset: Send + Sync {
    /// The name in the request path: 1 to 64 characters of `a-z`, `0-9` and `_`.
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    fn audience(&self) -> Audience;
    fn columns(&self) -> Vec<Column>;
    fn filters(&self) -> &[FilterSpec];
    /// Checks between filters (a range's ends in order, say); each problem names its field.
    fn check(&self, _filters: &Filters) -> Vec<FieldError> {
        Vec::new()
    }
    /// The rows, streamed.
    fn rows(&self, query: &DatasetQuery<'_>) -> Result<Box<dyn RowSource + Send>, DatasetError>;
    /// The native chart a workbook of the rows draws beside them, if the rows carry a series
    /// worth one.
    fn chart(&self) -> Option<export_render::XlsxChart> {
        None
    }
}

fn field_error(name: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: format!("filters.{name}"),
        message: message.into(),
    }
}

/// Checks the filters a client sent against what `dataset` declares: every problem, with its
/// field (`filters.from`).
pub fn check_filters(
    dataset: &dyn Dataset,
    raw: &BTreeMap<String, serde_json::Value>,
) -> Result<Filters, Vec<FieldError>> {
    let specs = dataset.filters();
    let mut problems = Vec::new();
    let mut checked = BTreeMap::new();
    for (name, value) in raw {
        let Some(spec) = specs.iter().find(|s| s.name == name) else {
            let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
            let message = if known.is_empty() {
                format!("dataset {} takes no filters", dataset.name())
            } else {
                format!(
                    "is not a filter of this dataset; known: {}",
                    known.join(", ")
                )
            };
            problems.push(field_error(name, message));
            continue;
        };
        if value.is_null() {
            continue;
        }
        let Some(text) = value.as_str() else {
            problems.push(field_error(name, "must be a string"));
            continue;
        };
        let parsed = match spec.kind {
            FilterKind::Uuid => Uuid::try_parse(text)
                .map(FilterValue::Uuid)
                .map_err(|_| "must be a UUID".to_owned()),
            FilterKind::Date => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(FilterValue::Date)
                .map_err(|_| "must be a date as YYYY-MM-DD".to_owned()),
            FilterKind::Choice(words) => {
                if words.contains(&text) {
                    Ok(FilterValue::Text(text.to_owned()))
                } else {
                    Err(format!("must be one of: {}", words.join(", ")))
                }
            }
            FilterKind::Text(max) => {
                if text.chars().count() <= max {
                    Ok(FilterValue::Text(text.to_owned()))
                } else {
                    Err(format!("must be at most {max} characters"))
                }
            }
        };
        match parsed {
            Ok(value) => {
                checked.insert(name.clone(), value);
            }
            Err(message) => problems.push(field_error(name, message)),
        }
    }
    let filters = Filters(checked);
    if problems.is_empty() {
        problems = dataset.check(&filters);
    }
    if problems.is_empty() {
        Ok(filters)
    } else {
        Err(problems)
    }
}

/// The named datasets an engine offers.
#[derive(Clone, Default)]
pub struct DatasetRegistry(BTreeMap<String, Arc<dyn Dataset>>);

impl std::fmt::Debug for DatasetRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl DatasetRegistry {
    /// The built-in datasets over `source` and the engine's `store`.
    pub fn built_in(source: Arc<dyn ClinicalSource>, store: Store) -> DatasetRegistry {
        let mut registry = DatasetRegistry::default();
        registry.register(Arc::new(SessionsDataset(source.clone())));
        registry.register(Arc::new(GoalsDataset(source)));
        registry.register(Arc::new(AuditDataset(store)));
        registry
    }

    /// Adds `dataset`, replacing one of the same name.
    pub fn register(&mut self, dataset: Arc<dyn Dataset>) {
        self.0.insert(dataset.name().to_owned(), dataset);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Dataset>> {
        self.0.get(name)
    }

    /// Every dataset, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Dataset>> {
        self.0.values()
    }
}

/// Rows of a listing that must fit in memory no more than a page at a time: each page is read
/// by keyset, starting after the (timestamp, id) of the last row of the one before.
struct KeysetPages<T> {
    columns: Vec<Column>,
    fetch: FetchPage<T>,
    key: fn(&T) -> Keyset,
    fill: fn(&T, &mut RowBuffer),
    page: std::vec::IntoIter<T>,
    after: Option<Keyset>,
    done: bool,
    read: u64,
}

/// Where a keyset page starts: after this timestamp and id.
type Keyset = (DateTime<Utc>, Uuid);

/// Reads the page after a keyset (the first page after none).
type FetchPage<T> = Box<dyn FnMut(Option<Keyset>) -> Result<Vec<T>, DatasetError> + Send>;

/// Rows the sessions and goals datasets read from their source at a time.
pub const DATASET_PAGE: usize = 1000;

impl<T: Send> RowSource for KeysetPages<T> {
    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        loop {
            if let Some(record) = self.page.next() {
                self.after = Some((self.key)(&record));
                self.read += 1;
                (self.fill)(&record, row);
                return Ok(true);
            }
            if self.done {
                return Ok(false);
            }
            let page = (self.fetch)(self.after).map_err(|err| RenderError::Source {
                row: self.read,
                reason: err.to_string(),
            })?;
            self.done = page.len() < DATASET_PAGE;
            self.page = page.into_iter();
        }
    }
}

/// Columns from (machine name, kind, meaning).
fn columns(spec: &[(&str, ColumnKind, &str)]) -> Vec<Column> {
    spec.iter()
        .map(|(n, k, meaning)| Column::new(*n, *k).meaning(*meaning))
        .collect()
}

fn push_opt_text(row: &mut RowBuffer, text: Option<&str>) {
    match text {
        Some(text) => row.push_text(text),
        None => row.push_null(),
    }
}

/// Writes `items` joined by `separator`, without making the joined text first.
fn push_joined(buffer: &mut String, items: &[String], separator: &str) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            buffer.push_str(separator);
        }
        buffer.push_str(item);
    }
}

fn push_opt_id(row: &mut RowBuffer, id: Option<Uuid>) {
    match id {
        Some(id) => row.push_text_with(|b| b.push_str(id.hyphenated().encode_lower(&mut [0; 36]))),
        None => row.push_null(),
    }
}

const DATE_RANGE: [FilterSpec; 2] = [
    FilterSpec {
        name: "from",
        kind: FilterKind::Date,
        description: "only rows on or after this date",
    },
    FilterSpec {
        name: "to",
        kind: FilterKind::Date,
        description: "only rows on or before this date",
    },
];

fn check_range(filters: &Filters) -> Vec<FieldError> {
    match (filters.date("from"), filters.date("to")) {
        (Some(from), Some(to)) if from > to => {
            vec![field_error("to", "must not be before filters.from")]
        }
        _ => Vec::new(),
    }
}

/// Every session of the requester's patients: one row per session.
#[derive(Clone)]
pub struct SessionsDataset(pub Arc<dyn ClinicalSource>);

impl std::fmt::Debug for SessionsDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionsDataset")
    }
}

impl Dataset for SessionsDataset {
    fn name(&self) -> &str {
        "sessions"
    }

    fn description(&self) -> &str {
        "One row per therapy session of the patients you care for"
    }

    fn audience(&self) -> Audience {
        Audience::Therapists
    }

    fn columns(&self) -> Vec<Column> {
        use ColumnKind::*;
        columns(&[
            ("session_id", Text, "The session's id"),
            ("patient_id", Text, "The patient's id"),
            ("patient_name", Text, "The patient's first and last name"),
            (
                "therapist_id",
                Text,
                "The id of the therapist who held the session",
            ),
            ("session_date", DateTime, "When the session started, in UTC"),
            (
                "duration_minutes",
                Integer,
                "How long the session lasted, in whole minutes",
            ),
            (
                "status",
                Text,
                "Where the session is in processing: uploading, transcribing, transcribed, extracting_notes, processed or failed",
            ),
            (
                "key_topics",
                Text,
                "The topics the session's notes list, joined with \"; \"",
            ),
            (
                "therapist_summary",
                Text,
                "The therapist's summary of the session",
            ),
        ])
    }

    fn filters(&self) -> &[FilterSpec] {
        const SPECS: [FilterSpec; 4] = [
            FilterSpec {
                name: PATIENT_FILTER,
                kind: FilterKind::Uuid,
                description: "only this patient's sessions",
            },
            DATE_RANGE[0],
            DATE_RANGE[1],
            FilterSpec {
                name: "status",
                kind: FilterKind::Choice(SessionStatus::NAMES),
                description: "only sessions in this processing state",
            },
        ];
        &SPECS
    }

    fn check(&self, filters: &Filters) -> Vec<FieldError> {
        check_range(filters)
    }

    fn rows(&self, query: &DatasetQuery<'_>) -> Result<Box<dyn RowSource + Send>, DatasetError> {
        let status: Option<SessionStatus> =
            query.filters.text("status").and_then(|s| s.parse().ok());
        let (from, to) = (query.filters.date("from"), query.filters.date("to"));
        let source = Arc::clone(&self.0);
        let patients = query.patients.to_vec();
        let fetch = move |after| {
            let page = SessionsPage {
                patients: &patients,
                status,
                from,
                to,
                after,
                limit: DATASET_PAGE,
            };
            source
                .sessions_page(&page)
                .map_err(|e| DatasetError::new("sessions", e))
        };
        Ok(Box::new(KeysetPages {
            columns: self.columns(),
            fetch: Box::new(fetch),
            key: |s: &SessionListing| (s.session_date, s.id),
            fill: |s, row| {
                push_opt_id(row, Some(s.id));
                push_opt_id(row, Some(s.patient_id));
                row.push_text(&s.patient_name);
                push_opt_id(row, Some(s.therapist_id));
                row.push_datetime(s.session_date);
                row.push_integer(i64::from(s.duration_seconds) / 60);
                row.push_text(s.status.as_str());
                match &s.key_topics {
                    Some(topics) => row.push_text_with(|b| push_joined(b, topics, "; ")),
                    None => row.push_null(),
                }
                push_opt_text(row, s.therapist_summary.as_deref());
            },
            page: Vec::new().into_iter(),
            after: None,
            done: query.patients.is_empty(),
            read: 0,
        }))
    }
}

/// Every treatment goal of the requester's patients.
#[derive(Clone)]
pub struct GoalsDataset(pub Arc<dyn ClinicalSource>);

impl std::fmt::Debug for GoalsDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GoalsDataset")
    }
}

impl Dataset for GoalsDataset {
    fn name(&self) -> &str {
        "goals"
    }

    fn description(&self) -> &str {
        "One row per treatment goal of the patients you care for, with its progress"
    }

    /// Each goal's progress as a bar, for up to 50 goals (one patient's, or a small caseload's).
    fn chart(&self) -> Option<export_render::XlsxChart> {
        Some(export_render::XlsxChart {
            title: "Progress toward each goal".to_owned(),
            alt: "Each goal's progress toward its target, from 0 to 100%, one bar per row of the \
                  sheet."
                .to_owned(),
            label_column: "description".to_owned(),
            value_column: "progress_percentage".to_owned(),
            max: Some(100.0),
            num_format: "0\"%\"".to_owned(),
            most_rows: 50,
        })
    }

    fn audience(&self) -> Audience {
        Audience::Therapists
    }

    fn columns(&self) -> Vec<Column> {
        use ColumnKind::*;
        columns(&[
            ("goal_id", Text, "The goal's id"),
            ("patient_id", Text, "The patient's id"),
            ("patient_name", Text, "The patient's first and last name"),
            ("description", Text, "What the goal is"),
            (
                "baseline",
                Text,
                "Where the patient stood when the goal was set",
            ),
            ("current", Text, "Where the patient stands now"),
            (
                "progress_percentage",
                Integer,
                "Progress toward the goal, from 0 to 100",
            ),
            (
                "status",
                Text,
                "Where the goal stands: active, achieved or paused",
            ),
            ("target_date", Date, "When the goal is to be met, if set"),
            ("created_at", DateTime, "When the goal was set, in UTC"),
        ])
    }

    fn filters(&self) -> &[FilterSpec] {
        const SPECS: [FilterSpec; 2] = [
            FilterSpec {
                name: PATIENT_FILTER,
                kind: FilterKind::Uuid,
                description: "only this patient's goals",
            },
            FilterSpec {
                name: "status",
                kind: FilterKind::Choice(GoalStatus::NAMES),
                description: "only goals in this state",
            },
        ];
        &SPECS
    }

    fn rows(&self, query: &DatasetQuery<'_>) -> Result<Box<dyn RowSource + Send>, DatasetError> {
        let status: Option<GoalStatus> = query.filters.text("status").and_then(|s| s.parse().ok());
        let source = Arc::clone(&self.0);
        let patients = query.patients.to_vec();
        let fetch = move |after| {
            let page = GoalsPage {
                patients: &patients,
                status,
                after,
                limit: DATASET_PAGE,
            };
            source
                .goals_page(&page)
                .map_err(|e| DatasetError::new("goals", e))
        };
        Ok(Box::new(KeysetPages {
            columns: self.columns(),
            fetch: Box::new(fetch),
            key: |l: &GoalListing| (l.goal.created_at, l.goal.id),
            fill: |l, row| {
                let g = &l.goal;
                push_opt_id(row, Some(g.id));
                push_opt_id(row, Some(g.patient_id));
                row.push_text(&l.patient_name);
                row.push_text(&g.description);
                row.push_text(&g.baseline);
                row.push_text(&g.current);
                row.push_integer(i64::from(g.progress_percentage));
                row.push_text(g.status.as_str());
                match g.target_date {
                    Some(date) => row.push_date(date),
                    None => row.push_null(),
                }
                row.push_datetime(g.created_at);
            },
            page: Vec::new().into_iter(),
            after: None,
            done: query.patients.is_empty(),
            read: 0,
        }))
    }
}

/// The audit trail, for administrators. It holds ids, never names or notes.
#[derive(Debug, Clone)]
pub struct AuditDataset(pub Store);

impl Dataset for AuditDataset {
    fn name(&self) -> &str {
        "audit"
    }

    fn description(&self) -> &str {
        "The export audit trail in chain order, with each entry's hash"
    }

    fn audience(&self) -> Audience {
        Audience::Admins
    }

    fn columns(&self) -> Vec<Column> {
        use ColumnKind::*;
        columns(&[
            (
                "sequence",
                Integer,
                "The entry's place in the audit chain, from 1",
            ),
            ("created_at", DateTime, "When the entry was written, in UTC"),
            (
                "action",
                Text,
                "What was done: requested, created, downloaded, deleted, expired, shared, failed or cancelled",
            ),
            (
                "outcome",
                Text,
                "Whether it was allowed (success) or refused (denied)",
            ),
            ("user_id", Text, "The id of the user who acted"),
            ("patient_id", Text, "The patient's id"),
            (
                "export_job_id",
                Text,
                "The export the entry is about, if any",
            ),
            ("ip_address", Text, "The address the request came from"),
            (
                "user_agent",
                Text,
                "The client program that sent the request",
            ),
            (
                "request_id",
                Text,
                "The id of the HTTP request, as the server's logs give it",
            ),
            (
                "metadata",
                Text,
                "More about the entry, as JSON (ids only, never patient data)",
            ),
            (
                "entry_hash",
                Text,
                "The entry's SHA-256 hash, chained to the one before",
            ),
        ])
    }

    fn filters(&self) -> &[FilterSpec] {
        const SPECS: [FilterSpec; 6] = [
            FilterSpec {
                name: "action",
                kind: FilterKind::Choice(AuditAction::NAMES),
                description: "only entries of this action",
            },
            FilterSpec {
                name: "user_id",
                kind: FilterKind::Uuid,
                description: "only entries of this user",
            },
            FilterSpec {
                name: PATIENT_FILTER,
                kind: FilterKind::Uuid,
                description: "only entries about this patient",
            },
            FilterSpec {
                name: "export_job_id",
                kind: FilterKind::Uuid,
                description: "only entries of this job",
            },
            DATE_RANGE[0],
            DATE_RANGE[1],
        ];
        &SPECS
    }

    fn check(&self, filters: &Filters) -> Vec<FieldError> {
        check_range(filters)
    }

    fn rows(&self, query: &DatasetQuery<'_>) -> Result<Box<dyn RowSource + Send>, DatasetError> {
        let filter = audit::AuditFilter {
            export_job_id: query.filters.uuid("export_job_id"),
            user_id: query.filters.uuid("user_id"),
            patient_id: query.filters.uuid(PATIENT_FILTER),
            action: query
                .filters
                .text("action")
                .and_then(|a| a.parse::<AuditAction>().ok()),
            from: query.filters.date("from"),
            to: query.filters.date("to"),
            limit: Some(AUDIT_PAGE),
            ..audit::AuditFilter::default()
        };
        let mut conn = self.0.connection().map_err(audit_failed)?;
        // The trail as it stands now: entries appended while the export runs are not in it.
        let through = audit::last_sequence(&mut conn).map_err(audit_failed)?;
        Ok(Box::new(AuditPages {
            store: self.0.clone(),
            columns: self.columns(),
            filter,
            through,
            page: Vec::new().into_iter(),
            done: through.is_none(),
            read: 0,
        }))
    }
}

/// Entries the audit dataset reads from the database at a time.
const AUDIT_PAGE: i64 = 1000;

fn audit_failed(err: export_store::StoreError) -> DatasetError {
    DatasetError::new("audit", err)
}

/// The audit trail's rows, read a page at a time in chain order up to the entry that was last
/// when the export began, so memory stays bounded however long the trail.
struct AuditPages {
    store: Store,
    columns: Vec<Column>,
    filter: audit::AuditFilter,
    through: Option<i64>,
    page: std::vec::IntoIter<AuditEntry>,
    done: bool,
    read: u64,
}

impl AuditPages {
    fn next_entry(&mut self) -> Result<Option<AuditEntry>, RenderError> {
        loop {
            if let Some(entry) = self.page.next() {
                if self.through.is_some_and(|last| entry.sequence > last) {
                    self.done = true;
                    return Ok(None);
                }
                self.filter.after_sequence = Some(entry.sequence);
                self.read += 1;
                return Ok(Some(entry));
            }
            if self.done {
                return Ok(None);
            }
            let row = self.read;
            let failed = |e: export_store::StoreError| RenderError::Source {
                row,
                reason: audit_failed(e).to_string(),
            };
            let mut conn = self.store.connection().map_err(failed)?;
            let page = audit::list(&mut conn, &self.filter).map_err(failed)?;
            self.done = (page.len() as i64) < AUDIT_PAGE;
            self.page = page.into_iter();
            if self.page.len() == 0 {
                return Ok(None);
            }
        }
    }
}

impl RowSource for AuditPages {
    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        let Some(e) = self.next_entry()? else {
            return Ok(false);
        };
        let x = &e.entry;
        row.push_integer(e.sequence);
        row.push_datetime(x.created_at);
        row.push_text(x.action.as_str());
        row.push_text(x.outcome.as_str());
        push_opt_id(row, x.user_id);
        push_opt_id(row, x.patient_id);
        push_opt_id(row, x.export_job_id);
        push_opt_text(row, x.ip_address.as_deref());
        push_opt_text(row, x.user_agent.as_deref());
        push_opt_text(row, x.request_id.as_deref());
        row.push_text(&x.metadata.to_string());
        row.push_text(&e.entry_hash);
        Ok(true)
    }
}
