//! Throwaway databases for tests of this crate and the crates above it: a SQLite file in a
//! temporary folder, or a fresh PostgreSQL database created on the server named by
//! `EXPORT_TEST_POSTGRES_URL` and dropped afterwards. Enabled by the `testing` feature.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use crate::{Store, StoreError};

/// The environment variable that names the PostgreSQL server for tests, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`.
pub const POSTGRES_URL_VAR: &str = "EXPORT_TEST_POSTGRES_URL";

/// A migrated database that disappears when dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub store: Store,
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Folder(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// A new SQLite database file in its own temporary folder.
    pub fn sqlite() -> TestDatabase {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let url = folder.path().join("export.db").display().to_string();
        let store = Store::open(&url).expect("open and migrate a SQLite test database");
        TestDatabase {
            store,
            url,
            cleanup: Cleanup::Folder(folder),
        }
    }

    /// A new PostgreSQL database, or `None` (saying so on stderr) when
    /// `EXPORT_TEST_POSTGRES_URL` is not set.
    pub fn postgres(test: &str) -> Option<TestDatabase> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("SKIPPED {test}: PostgreSQL test, set {POSTGRES_URL_VAR} to run it");
            return None;
        };
        let name = format!("export_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|err| panic!("{POSTGRES_URL_VAR} is set but unreachable: {err}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        let url = database_url(&admin_url, &name);
        let store = Store::open(&url).expect("open and migrate a PostgreSQL test database");
        Some(TestDatabase {
            store,
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// Seeds the fixtures' practice (`fixtures/`, see [`fixture_practice`]) and returns it.
    pub fn seed_fixtures(&self) -> export_domain::Practice {
        let practice = fixture_practice();
        self.store
            .transaction(|conn| crate::seed::seed_practice(conn, &practice))
            .expect("seed the fixtures' practice");
        practice
    }

    /// The audit entries of `action`, in chain order.
    pub fn audit_of(&self, action: export_domain::AuditAction) -> Vec<export_domain::AuditEntry> {
        self.audit_where(crate::audit::AuditFilter {
            action: Some(action),
            ..Default::default()
        })
    }

    /// The audit entries of `action` about the job `job_id`, in chain order.
    pub fn audit_of_job(
        &self,
        job_id: uuid::Uuid,
        action: export_domain::AuditAction,
    ) -> Vec<export_domain::AuditEntry> {
        self.audit_where(crate::audit::AuditFilter {
            export_job_id: Some(job_id),
            action: Some(action),
            ..Default::default()
        })
    }

    fn audit_where(&self, filter: crate::audit::AuditFilter) -> Vec<export_domain::AuditEntry> {
        let mut conn = self.store.connection().expect("a connection");
        crate::audit::list(&mut conn, &filter).expect("read the audit trail")
    }

    /// Runs raw SQL against the database, as someone with direct access (an attacker, a careless
    /// administrator) could: for tests that tamper with rows behind the store's back.
    pub fn execute(&self, sql: &str) {
        let mut conn = self.store.connection().expect("a connection");
        let conn: &mut crate::DbConnection = &mut conn;
        conn.batch_execute(sql)
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// PostgreSQL only: cuts the database off as an outage would. New connections are refused
    /// (`ALLOW_CONNECTIONS false`) and every open one is closed (`pg_terminate_backend`), this
    /// store's and other processes' alike. [`TestDatabase::accept_connections`] ends it.
    pub fn refuse_connections(&self) {
        let name = self.postgres_name("refuse_connections");
        // Committed on its own first: in one batch with the loop below it would take effect only
        // when the loop ends, and the pool would reconnect meanwhile.
        self.as_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"));
        // Then every backend goes, until none is left (each look at pg_stat_activity is a new
        // snapshot: the statistics are cleared before it).
        self.as_admin(&format!(
            "DO $$ BEGIN
               FOR attempt IN 1..200 LOOP
                 PERFORM pg_stat_clear_snapshot();
                 PERFORM pg_terminate_backend(pid, 1000) FROM pg_stat_activity
                   WHERE datname = '{name}' AND pid <> pg_backend_pid();
                 PERFORM pg_stat_clear_snapshot();
                 EXIT WHEN attempt > 2 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity
                   WHERE datname = '{name}' AND pid <> pg_backend_pid());
                 PERFORM pg_sleep(0.05);
               END LOOP;
             END $$;"
        ));
    }

    /// PostgreSQL only: lets connections to the database be made again.
    pub fn accept_connections(&self) {
        let name = self.postgres_name("accept_connections");
        self.as_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    }

    fn postgres_name(&self, what: &str) -> &str {
        match &self.cleanup {
            Cleanup::Postgres { name, .. } => name,
            Cleanup::Folder(_) => panic!("{what} needs a PostgreSQL test database"),
        }
    }

    /// Runs `sql` on the server's administration database, not this one.
    fn as_admin(&self, sql: &str) {
        let Cleanup::Postgres { admin_url, .. } = &self.cleanup else {
            unreachable!("only PostgreSQL databases have an administration database")
        };
        PgConnection::establish(admin_url)
            .and_then(|mut admin| {
                admin
                    .batch_execute(sql)
                    .map_err(|err| diesel::ConnectionError::BadConnection(err.to_string()))
            })
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// Opens a second store on the same database (as another process would).
    pub fn reopen(&self) -> Result<Store, StoreError> {
        Store::open(&self.url)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup
            && let Ok(mut admin) = PgConnection::establish(admin_url)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// `url` with its database name replaced by `name`.
fn database_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// The synthetic practice in the workspace's `fixtures/` folder, loaded, for the tests of every
/// crate.
pub fn fixture_practice() -> export_domain::Practice {
    crate::seed::load_practice(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures"
    )))
    .expect("the fixtures load")
}

/// Declares two tests for each named check (a `fn(&TestDatabase)` in scope): `name::sqlite`
/// always runs; `name::postgres` runs when `EXPORT_TEST_POSTGRES_URL` is set and says it was
/// skipped otherwise.
#[macro_export]
macro_rules! test_on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&$crate::testing::TestDatabase::sqlite());
            }

            #[test]
            fn postgres() {
                let test = concat!(module_path!(), "::postgres");
                if let Some(db) = $crate::testing::TestDatabase::postgres(test) {
                    super::$name(&db);
                }
            }
        }
    )+};
}

/// The text pdftotext reads from a PDF.
pub fn pdf_text(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.pdf");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (scripts/install-fonts installs poppler-utils)");
    assert!(out.status.success(), "pdftotext failed on a downloaded PDF");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the Python `script` on `bytes` written to a scratch `file` (its path is `sys.argv[1]`) and
/// returns what it prints; `reader` names the library it needs, for the message when it fails.
fn python(script: &str, file: &str, bytes: &[u8], reader: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap_or_else(|err| panic!("python3 with {reader} ({err}): run scripts/setup-machine"));
    assert!(
        out.status.success(),
        "{reader} could not open a downloaded {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The paragraphs and table cells python-docx reads from a DOCX.
pub fn docx_text(bytes: &[u8]) -> String {
    let script = "import docx, sys\n\
        d = docx.Document(sys.argv[1])\n\
        print('\\n'.join(p.text for p in d.paragraphs))\n\
        for t in d.tables:\n\
        \x20   for r in t.rows:\n\
        \x20       print(' | '.join(c.text for c in r.cells))\n";
    String::from_utf8(python(script, "file.docx", bytes, "python-docx")).unwrap()
}

/// The rows of a workbook's first sheet as calamine reads them, each row's cells joined by
/// commas; the header row first.
pub fn xlsx_rows(bytes: &[u8]) -> Vec<String> {
    xlsx_sheet(bytes, None)
        .iter()
        .map(|cells| cells.join(","))
        .collect()
}

/// The cells of a workbook's sheet `name` (the first when `None`) as calamine reads them, row by
/// row, as text.
pub fn xlsx_sheet(bytes: &[u8], name: Option<&str>) -> Vec<Vec<String>> {
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec()))
            .expect("calamine opens the workbook");
    let sheet = name.map_or_else(|| book.sheet_names()[0].clone(), str::to_owned);
    let range = book.worksheet_range(&sheet).expect("the sheet reads");
    range
        .rows()
        .map(|row| row.iter().map(ToString::to_string).collect())
        .collect()
}

/// The native charts of a workbook as openpyxl reads them (`scripts/setup-machine` installs it),
/// as JSON: `{"charts": [{"sheet", "kind", "direction", "title", "categories", "values",
/// "cells"}],
/// "alt": [the drawings' alternative texts]}`; the series as the ranges they draw.
pub fn xlsx_charts(bytes: &[u8]) -> serde_json::Value {
    let script = r#"
import json, re, sys, zipfile
import openpyxl
book = openpyxl.load_workbook(sys.argv[1])
charts = []
for sheet in book.worksheets:
    for chart in sheet._charts:
        rich = chart.title.tx.rich if chart.title is not None and chart.title.tx is not None else None
        title = "".join(run.t for p in rich.p for run in (p.r or [])) if rich is not None else None
        charts.append({
            "sheet": sheet.title,
            "kind": type(chart).__name__,
            "direction": getattr(chart, "type", None),
            "title": title,
            "categories": [s.cat.strRef.f if s.cat is not None and s.cat.strRef is not None else None
                           for s in chart.series],
            "values": [s.val.numRef.f for s in chart.series],
            "cells": [[c for c in row] for row in sheet.iter_rows(values_only=True)],
        })
archive = zipfile.ZipFile(sys.argv[1])
alt = [m for name in archive.namelist() if name.startswith("xl/drawings/drawing")
       for m in re.findall(r'descr="([^"]*)"', archive.read(name).decode())]
print(json.dumps({"charts": charts, "alt": alt}))
"#;
    serde_json::from_slice(&python(script, "file.xlsx", bytes, "openpyxl")).unwrap()
}

/// How the first sheet of a workbook is set up, as openpyxl reads it, as JSON: the filter's
/// range, the frozen cell, the print orientation, fit to pages wide and tall, the rows repeated
/// on every printed page, and the cells (as "A2") whose text wraps.
pub fn xlsx_layout(bytes: &[u8]) -> serde_json::Value {
    let script = r#"
import json, sys
import openpyxl
sheet = openpyxl.load_workbook(sys.argv[1]).worksheets[0]
setup = sheet.page_setup
print(json.dumps({
    "filter": sheet.auto_filter.ref,
    "frozen": sheet.freeze_panes,
    "orientation": setup.orientation,
    # An absent fitToWidth or fitToHeight is the schema's default, 1.
    "fit": [1 if setup.fitToWidth is None else setup.fitToWidth,
            1 if setup.fitToHeight is None else setup.fitToHeight]
           if sheet.sheet_properties.pageSetUpPr.fitToPage else None,
    "repeated": sheet.print_title_rows,
    "wrapped": [c.coordinate for row in sheet.iter_rows() for c in row if c.alignment.wrap_text],
}))
"#;
    serde_json::from_slice(&python(script, "file.xlsx", bytes, "openpyxl")).unwrap()
}

/// An active weekly schedule of `user_id`'s running `template_id` for all its patients: day 0 at
/// 08:00 in Berlin, kept in storage, made at `created`. Tests change what they look at.
pub fn weekly_schedule(
    user_id: uuid::Uuid,
    template_id: uuid::Uuid,
    created: chrono::DateTime<chrono::Utc>,
) -> export_domain::ScheduledReport {
    export_domain::ScheduledReport {
        id: uuid::Uuid::new_v4(),
        user_id,
        template_id,
        patient_id: None,
        schedule_type: export_domain::ScheduleType::Weekly,
        schedule_config: export_domain::ScheduleConfig {
            time: Some("08:00".into()),
            day_of_week: Some(0),
            ..export_domain::ScheduleConfig::default()
        },
        timezone: "Europe/Berlin".into(),
        parameters: serde_json::json!({}),
        delivery_method: export_domain::DeliveryMethod::Storage,
        email_recipients: vec![],
        attach_file: false,
        is_active: true,
        last_run_at: None,
        next_run_at: None,
        created_at: created,
        updated_at: created,
    }
}

/// A progress-report template that prints the session count: what the scheduler's tests save
/// and run.
pub fn session_count_template(name: &str) -> export_domain::TemplateRequest {
    export_domain::TemplateInput {
        name: name.into(),
        export_type: export_domain::ExportType::ProgressReport.as_str().into(),
        format: "pdf".into(),
        template_content: "{% extends \"base.html\" %}{% block content %}\
            <p>{{ session_count }} sessions</p>{% endblock content %}"
            .into(),
        ..Default::default()
    }
    .validate()
    .expect("the test template is valid")
}

/// A reader that fails after `.0` bytes, like a renderer that errors halfway.
#[derive(Debug)]
pub struct FailingSource(pub usize);

impl std::io::Read for FailingSource {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("renderer failed"));
        }
        let n = out.len().min(self.0);
        out[..n].fill(7);
        self.0 -= n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_url_swaps_only_the_name() {
        assert_eq!(
            super::database_url("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::database_url("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            super::database_url("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
