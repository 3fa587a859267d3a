//! Loading a practice's clinical records (the demo fixtures, or an import) from a folder of JSON
//! files, and writing them into the clinical tables without duplicating what is already there.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use diesel::prelude::*;
use export_domain::Practice;
use serde::de::DeserializeOwned;

use crate::clinical;
use crate::schema::{
    assessments, diagnoses, goals, therapist_patients, therapy_sessions, treatment_plans, users,
};
use crate::{DbConnection, StoreError};

/// The demo practice's name (`fixtures/README.md`), which documents made from the fixtures print
/// when no practice is configured.
pub const DEMO_PRACTICE: &str = "Bramblegate Counselling (synthetic demo practice)";

/// The JSON files of a practice folder, one per clinical table, in the order they are loaded.
pub const PRACTICE_FILES: [&str; 7] = [
    "users",
    "therapist_patients",
    "therapy_sessions",
    "goals",
    "assessments",
    "diagnoses",
    "treatment_plans",
];

/// Reads `<dir>/<table>.json` for every table of [`PRACTICE_FILES`].
pub fn load_practice(dir: &Path) -> Result<Practice, StoreError> {
    fn read<T: DeserializeOwned>(dir: &Path, table: &str) -> Result<Vec<T>, StoreError> {
        let path = dir.join(format!("{table}.json"));
        let text = std::fs::read_to_string(&path)
            .map_err(|err| StoreError::Setup(format!("cannot read {}: {err}", path.display())))?;
        serde_json::from_str(&text).map_err(|err| {
            StoreError::Setup(format!(
                "{} is not a valid {table} file: line {} column {}: {}",
                path.display(),
                err.line(),
                err.column(),
                // Fixture files are synthetic; the message helps whoever edits them.
                err
            ))
        })
    }
    Ok(Practice {
        users: read(dir, "users")?,
        therapist_patients: read(dir, "therapist_patients")?,
        therapy_sessions: read(dir, "therapy_sessions")?,
        goals: read(dir, "goals")?,
        assessments: read(dir, "assessments")?,
        diagnoses: read(dir, "diagnoses")?,
        treatment_plans: read(dir, "treatment_plans")?,
    })
}

/// How many rows of each table a seed wrote and how many it found already there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub inserted: BTreeMap<&'static str, usize>,
    pub already_present: BTreeMap<&'static str, usize>,
}

/// Writes every record of `practice` whose id is not in its table yet. Run it in a transaction
/// ([`crate::Store::transaction`]) so a failure leaves nothing half-loaded.
pub fn seed_practice(
    conn: &mut DbConnection,
    practice: &Practice,
) -> Result<SeedReport, StoreError> {
    let mut report = SeedReport::default();
    macro_rules! load {
        ($table:ident, $name:literal, $records:expr, $insert:path) => {{
            let existing: HashSet<String> = $table::table
                .select($table::id)
                .load::<String>(conn)?
                .into_iter()
                .collect();
            let (mut inserted, mut present) = (0, 0);
            for record in $records {
                if existing.contains(&record.id.to_string()) {
                    present += 1;
                } else {
                    $insert(conn, record)?;
                    inserted += 1;
                }
            }
            report.inserted.insert($name, inserted);
            report.already_present.insert($name, present);
        }};
    }
    load!(users, "users", &practice.users, clinical::insert_user);
    load!(
        therapist_patients,
        "therapist_patients",
        &practice.therapist_patients,
        clinical::insert_relationship
    );
    load!(
        therapy_sessions,
        "therapy_sessions",
        &practice.therapy_sessions,
        clinical::insert_session
    );
    load!(goals, "goals", &practice.goals, clinical::insert_goal);
    load!(
        assessments,
        "assessments",
        &practice.assessments,
        clinical::insert_assessment
    );
    load!(
        diagnoses,
        "diagnoses",
        &practice.diagnoses,
        clinical::insert_diagnosis
    );
    load!(
        treatment_plans,
        "treatment_plans",
        &practice.treatment_plans,
        clinical::insert_treatment_plan
    );
    Ok(report)
}

/// Rows per clinical table, in [`PRACTICE_FILES`] order.
pub fn count_clinical_rows(
    conn: &mut DbConnection,
) -> Result<Vec<(&'static str, i64)>, StoreError> {
    Ok(vec![
        ("users", users::table.count().get_result(conn)?),
        (
            "therapist_patients",
            therapist_patients::table.count().get_result(conn)?,
        ),
        (
            "therapy_sessions",
            therapy_sessions::table.count().get_result(conn)?,
        ),
        ("goals", goals::table.count().get_result(conn)?),
        ("assessments", assessments::table.count().get_result(conn)?),
        ("diagnoses", diagnoses::table.count().get_result(conn)?),
        (
            "treatment_plans",
            treatment_plans::table.count().get_result(conn)?,
        ),
    ])
}
