//! The benchmark dataset of `../shared/bench-dataset.md` as a `RowSource` (generated on the fly,
//! nothing allocated per row), and the `Document` of its progress-report model: what
//! `export-cli bench`, the bench examples and the renderer tests all render.

use crate::{
    Block, Column, ColumnKind, Document, DocumentMeta, Notice, NoticeKind, RenderError, RowBuffer,
    RowSource, Run, Table,
};
use chrono::{Days, NaiveDate, TimeZone, Utc};

const MOODS: [&str; 3] = ["positive", "neutral", "low"];
const TOPICS: [&str; 4] = [
    "anxiety; work stress",
    "sleep; relationships",
    "grief",
    "panic; avoidance",
];

/// The benchmark rows: `rows(n)` of the dataset specification, generated on the fly.
#[derive(Debug)]
pub struct BenchRows {
    columns: Vec<Column>,
    dates: Vec<String>,
    next: u64,
    count: u64,
    hint: bool,
}

impl BenchRows {
    pub fn new(count: u64) -> BenchRows {
        let dates = (0..365)
            .map(|d| session_date(d).format("%Y-%m-%d").to_string())
            .collect();
        let columns = [
            ("id", ColumnKind::Integer),
            ("patient", ColumnKind::Text),
            ("session_date", ColumnKind::Text),
            ("duration_minutes", ColumnKind::Integer),
            ("mood", ColumnKind::Text),
            ("score", ColumnKind::Float),
            ("topics", ColumnKind::Text),
            ("note", ColumnKind::Text),
            ("completed", ColumnKind::Bool),
            ("fee", ColumnKind::Float),
        ]
        .into_iter()
        .map(|(name, kind)| Column::new(name, kind))
        .collect();
        BenchRows {
            columns,
            dates,
            next: 0,
            count,
            hint: true,
        }
    }
}

impl BenchRows {
    /// The same rows, but the source does not say how many.
    pub fn without_hint(mut self) -> BenchRows {
        self.hint = false;
        self
    }
}

/// The date of row `i`: 2025-01-01 plus `i % 365` days.
pub fn session_date(i: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, 1).expect("a valid date") + Days::new(i % 365)
}

impl RowSource for BenchRows {
    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        let i = self.next;
        if i >= self.count {
            return Ok(false);
        }
        self.next += 1;
        let mut digits = itoa::Buffer::new();
        row.push_integer(i as i64);
        row.push_text_with(|text| {
            let patient = i % 997;
            text.push_str("Patient ");
            if patient < 100 {
                text.push('0');
            }
            if patient < 10 {
                text.push('0');
            }
            text.push_str(digits.format(patient));
        });
        row.push_text(&self.dates[(i % 365) as usize]);
        row.push_integer(30 + (i % 60) as i64);
        row.push_text(MOODS[(i % 3) as usize]);
        row.push_float(((i * 37) % 1000) as f64 / 10.0);
        row.push_text(TOPICS[(i % 4) as usize]);
        row.push_text_with(|text| {
            text.push_str("Session ");
            text.push_str(digits.format(i));
            text.push_str(
                ": discussed coping strategies, reviewed homework and agreed next steps.",
            );
        });
        row.push_bool(i.is_multiple_of(2));
        row.push_float(((i * 5) % 2000) as f64 / 4.0);
        Ok(true)
    }

    fn row_count_hint(&self) -> Option<u64> {
        self.hint.then_some(self.count)
    }
}

const POOL: [&str; 8] = [
    "Anxiety management",
    "Work stress",
    "Sleep hygiene",
    "Relationships & family",
    "Grief processing",
    "Panic symptoms",
    "Avoidance behaviours",
    "Cognitive restructuring",
];

fn cells(texts: &[&str]) -> Vec<Vec<Run>> {
    texts.iter().map(|t| vec![Run::plain(*t)]).collect()
}

/// The progress report with `sessions` sessions.
pub fn progress_report(sessions: u64) -> Document {
    let last = sessions.max(1) - 1;
    let minutes: u64 = (0..sessions).map(|i| 30 + i % 60).sum();
    let mut blocks = vec![
        Block::Notice {
            notice: Notice {
                kind: NoticeKind::Confidential,
                text: "CONFIDENTIAL - Protected health information. Do not distribute without written consent.".into(),
            },
        },
        Block::Heading {
            level: 1,
            runs: vec![Run::plain("Client Progress Report")],
        },
        Block::Paragraph {
            runs: vec![Run::bold("Client: "), Run::plain("Patient 042")],
        },
        Block::Paragraph {
            runs: vec![Run::bold("Date of birth: "), Run::plain("1988-04-12")],
        },
        Block::Paragraph {
            runs: vec![Run::bold("Clinician: "), Run::plain("Dr. A. Rivera, PsyD")],
        },
        Block::Paragraph {
            runs: vec![
                Run::bold("Period: "),
                Run::plain(format!(
                    "{} to {}",
                    session_date(0).format("%Y-%m-%d"),
                    session_date(last).format("%Y-%m-%d")
                )),
            ],
        },
        Block::Heading {
            level: 2,
            runs: vec![Run::plain("Treatment Goals")],
        },
        Block::Table {
            table: Table {
                header: cells(&["Goal", "Baseline", "Current", "Progress"]),
                rows: vec![
                    cells(&["Reduce panic attacks per week", "5", "2", "60%"]),
                    cells(&["Sleep 7+ hours per night", "3 nights", "5 nights", "67%"]),
                    cells(&["Return to full-time work", "20 h/week", "32 h/week", "60%"]),
                    cells(&["Daily mindfulness practice", "0 min", "15 min", "75%"]),
                    cells(&["GAD-7 score < 10", "16", "11", "83%"]),
                ],
            },
        },
        Block::Heading {
            level: 2,
            runs: vec![Run::plain("Summary")],
        },
        Block::Paragraph {
            runs: vec![Run::plain(format!(
                "This report covers {sessions} sessions totalling {minutes} minutes. The client has made steady progress toward treatment goals, with fewer panic episodes, improved sleep (from <6 h to 7+ h) and a gradual return to work."
            ))],
        },
        Block::Heading {
            level: 2,
            runs: vec![Run::plain("Sessions")],
        },
    ];
    for k in 0..sessions {
        let mood = MOODS[(k % 3) as usize];
        let notes = format!(
            "Session {} notes. {}",
            k + 1,
            format!("Client reported {mood} mood and engaged well; we reviewed the thought record, practised paced breathing & grounding, and discussed barriers to homework completion. ").repeat(3)
        );
        let notes: String = notes.chars().take(300).collect();
        blocks.push(Block::Section {
            class: Some("session".into()),
            blocks: vec![
                Block::Heading {
                    level: 3,
                    runs: vec![Run::plain(format!("Session {}", k + 1))],
                },
                Block::Paragraph {
                    runs: vec![
                        Run::bold("Date: "),
                        Run::plain(session_date(k).format("%Y-%m-%d").to_string()),
                        Run::bold("   Duration: "),
                        Run::plain(format!("{} minutes", 30 + k % 60)),
                        Run::bold("   Mood: "),
                        Run::plain(mood),
                    ],
                },
                Block::List {
                    ordered: false,
                    items: (0..3)
                        .map(|j| vec![Run::plain(POOL[((k + j) % 8) as usize])])
                        .collect(),
                },
                Block::Paragraph {
                    runs: vec![Run::plain(notes)],
                },
            ],
        });
    }
    Document {
        meta: DocumentMeta {
            subject: Some("Progress report".into()),
            ..DocumentMeta::new(
                "Client Progress Report",
                "Dr. A. Rivera, PsyD",
                Utc.with_ymd_and_hms(2025, 1, 15, 14, 30, 0).unwrap(),
            )
        },
        blocks,
    }
}

/// The same progress-report model as the context of the built-in `progress_report.html`
/// template, so the report benchmark goes through the real templates.
pub fn progress_report_context(sessions: u64) -> crate::ProgressReportContext {
    use crate::context::{DocumentHeader, GoalLine, SessionLine, print_date};
    let last = sessions.max(1) - 1;
    let minutes: u64 = (0..sessions).map(|i| 30 + i % 60).sum();
    let goal = |description: &str, baseline: &str, current: &str, progress| GoalLine {
        description: description.into(),
        baseline: baseline.into(),
        current: current.into(),
        progress_percentage: progress,
        status: "active".into(),
    };
    let sessions_list = (0..sessions)
        .map(|k| {
            let mood = MOODS[(k % 3) as usize];
            let mut notes = format!("Session {} notes. ", k + 1);
            for _ in 0..3 {
                notes.push_str(&format!(
                    "Client reported {mood} mood and engaged well; we reviewed the thought record, practised paced breathing & grounding, and discussed barriers to homework completion. "
                ));
            }
            SessionLine {
                number: k as usize + 1,
                date: print_date(session_date(k)),
                duration_minutes: (30 + k % 60) as i64,
                mood: mood.into(),
                topics: (0..3).map(|j| POOL[((k + j) % 8) as usize].to_owned()).collect(),
                summary: notes.chars().take(300).collect(),
            }
        })
        .collect();
    crate::ProgressReportContext {
        header: DocumentHeader {
            title: "Client Progress Report".into(),
            patient_name: "Patient 042".into(),
            patient_date_of_birth: Some(print_date(
                NaiveDate::from_ymd_opt(1988, 4, 12).expect("a valid date"),
            )),
            period: Some(format!(
                "{} to {}",
                print_date(session_date(0)),
                print_date(session_date(last))
            )),
            prepared_by: "Dr. A. Rivera, PsyD".into(),
            generated_on: "January 1, 2026 at 09:00 AM".into(),
        },
        sections: crate::samples::all_sections(export_domain::ExportType::ProgressReport),
        goals: vec![
            goal("Reduce panic attacks per week", "5", "2", 60),
            goal("Sleep 7+ hours per night", "3 nights", "5 nights", 67),
            goal("Return to full-time work", "20 h/week", "32 h/week", 60),
            goal("Daily mindfulness practice", "0 min", "15 min", 75),
            goal("GAD-7 score < 10", "16", "11", 83),
        ],
        assessments: vec![],
        assessment_table: crate::AssessmentTable::default(),
        // An instrument every fourth session, scores falling with treatment, as in a real report.
        trends: ["PHQ-9", "GAD-7"]
            .into_iter()
            .filter_map(|instrument| {
                let scores: Vec<(NaiveDate, i32)> = (0..sessions)
                    .step_by(4)
                    .map(|k| (session_date(k), 20 - (k * 15 / sessions.max(1)) as i32))
                    .collect();
                crate::TrendLine::new(instrument, &scores)
            })
            .collect(),
        session_count: sessions as usize,
        avg_duration_minutes: if sessions == 0 {
            0.0
        } else {
            (minutes as f64 / sessions as f64 * 10.0).round() / 10.0
        },
        key_topics: POOL.iter().map(|t| t.to_string()).collect(),
        sessions: sessions_list,
        observations: vec![format!(
            "This report covers {sessions} sessions totalling {minutes} minutes. The client has made steady progress toward treatment goals, with fewer panic episodes, improved sleep (from <6 h to 7+ h) and a gradual return to work."
        )],
        recommendations: vec!["Continue fortnightly sessions.".into()],
        risk_flags: Vec::new(),
    }
}
