//! The benchmark dataset of `shared/bench-dataset.md` as a `RowSource`, and the progress-report
//! `Document` of its "Progress-report model", shared by the PDF bench example and the PDF tests.

#![allow(dead_code)]

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use export_render::{
    Block, Column, ColumnKind, Document, DocumentMeta, Notice, NoticeKind, PageSize, RenderError,
    RowBuffer, RowSource, Run, Table,
};

const MOODS: [&str; 3] = ["positive", "neutral", "low"];
const TOPICS: [&str; 4] = [
    "anxiety; work stress",
    "sleep; relationships",
    "grief",
    "panic; avoidance",
];

/// `rows(n)` of the benchmark dataset.
#[derive(Debug)]
pub struct BenchRows {
    columns: Vec<Column>,
    next: u64,
    count: u64,
    hint: bool,
}

impl BenchRows {
    pub fn new(count: u64) -> BenchRows {
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
            next: 0,
            count,
            hint: true,
        }
    }

    /// The same rows, but the source does not say how many.
    pub fn without_hint(mut self) -> BenchRows {
        self.hint = false;
        self
    }
}

pub fn session_date(i: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + Duration::days((i % 365) as i64)
}

impl RowSource for BenchRows {
    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        if self.next >= self.count {
            return Ok(false);
        }
        let i = self.next;
        self.next += 1;
        row.push_integer(i as i64);
        row.push_text_with(|s| {
            use std::fmt::Write;
            let _ = write!(s, "Patient {:03}", i % 997);
        });
        row.push_text_with(|s| {
            use std::fmt::Write;
            let _ = write!(s, "{}", session_date(i).format("%Y-%m-%d"));
        });
        row.push_integer(30 + (i % 60) as i64);
        row.push_text(MOODS[(i % 3) as usize]);
        row.push_float(((i * 37) % 1000) as f64 / 10.0);
        row.push_text(TOPICS[(i % 4) as usize]);
        row.push_text_with(|s| {
            use std::fmt::Write;
            let _ = write!(
                s,
                "Session {i}: discussed coping strategies, reviewed homework and agreed next steps."
            );
        });
        row.push_bool(i % 2 == 0);
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
            title: "Client Progress Report".into(),
            author: "Dr. A. Rivera, PsyD".into(),
            subject: Some("Progress report".into()),
            generated_at: Utc.with_ymd_and_hms(2025, 1, 15, 14, 30, 0).unwrap(),
            page_size: PageSize::Letter,
        },
        blocks,
    }
}
