//! The benchmark rows of shared/bench-dataset.md as a `RowSource`, shared by the DOCX tests and
//! the `docx_bench` example.

use chrono::{Days, NaiveDate};
use export_render::{Column, ColumnKind, RenderError, RowBuffer, RowSource};

/// The benchmark rows `rows(n)`, with the typed columns of the dataset.
#[derive(Debug)]
pub struct BenchRows {
    columns: Vec<Column>,
    next: u64,
    count: u64,
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
        }
    }
}

impl RowSource for BenchRows {
    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut RowBuffer) -> Result<bool, RenderError> {
        use std::fmt::Write as _;
        if self.next == self.count {
            return Ok(false);
        }
        let i = self.next;
        self.next += 1;
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a valid date");
        row.push_integer(i as i64);
        row.push_text_with(|s| {
            let _ = write!(s, "Patient {:03}", i % 997);
        });
        row.push_text_with(|s| {
            let date = start + Days::new(i % 365);
            let _ = write!(s, "{}", date.format("%Y-%m-%d"));
        });
        row.push_integer(30 + (i % 60) as i64);
        row.push_text(["positive", "neutral", "low"][(i % 3) as usize]);
        row.push_float(((i * 37) % 1000) as f64 / 10.0);
        row.push_text(
            [
                "anxiety; work stress",
                "sleep; relationships",
                "grief",
                "panic; avoidance",
            ][(i % 4) as usize],
        );
        row.push_text_with(|s| {
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
        Some(self.count)
    }
}
