//! The `Document` model: what a laid-out export (PDF, DOCX, HTML preview) contains, independent of
//! any format. Templates produce it; document renderers consume it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Paper size of a laid-out document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageSize {
    /// US Letter, 8.5 × 11 in: the seed platform's default.
    #[default]
    Letter,
    A4,
}

impl PageSize {
    /// Width and height in millimetres.
    pub const fn size_mm(self) -> (f64, f64) {
        match self {
            PageSize::Letter => (215.9, 279.4),
            PageSize::A4 => (210.0, 297.0),
        }
    }
}

/// Facts about a document as a whole; renderers write them as document metadata and in the
/// header and footer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentMeta {
    pub title: String,
    /// Who prepared it (the therapist), as printed and as the file's author property.
    pub author: String,
    pub subject: Option<String>,
    /// When it was generated; printed in the footer as "Generated on … at …".
    pub generated_at: DateTime<Utc>,
    pub page_size: PageSize,
    /// Whose record this is, as every page's running header names them: "Zoë Brontë-Lefèvre,
    /// born September 2, 1994". `None` for documents about no one patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The practice, as every page's footer names it (from configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practice: Option<String>,
}

/// The banner on every page of a laid-out document, and atop the HTML preview.
pub const CONFIDENTIAL: &str = "CONFIDENTIAL - PROTECTED HEALTH INFORMATION";

/// When the document was generated, with the time zone: "Generated on January 15, 2025 at
/// 02:30 PM UTC".
pub fn generated_line(meta: &DocumentMeta) -> String {
    format!(
        "Generated on {} UTC",
        meta.generated_at.format("%B %-d, %Y at %I:%M %p")
    )
}

/// The footer's text: the practice when there is one, and when the document was generated, with
/// the time zone ("Riverside Counselling · Generated on January 15, 2025 at 02:30 PM UTC").
pub fn footer_line(meta: &DocumentMeta) -> String {
    let generated = generated_line(meta);
    match &meta.practice {
        Some(practice) => format!("{practice} \u{b7} {generated}"),
        None => generated,
    }
}

impl DocumentMeta {
    /// A Letter document of `title` by `author`, generated at `generated_at`, about no one
    /// patient, with no practice named and no subject.
    pub fn new(
        title: impl Into<String>,
        author: impl Into<String>,
        generated_at: DateTime<Utc>,
    ) -> DocumentMeta {
        DocumentMeta {
            title: title.into(),
            author: author.into(),
            subject: None,
            generated_at,
            page_size: PageSize::Letter,
            patient: None,
            practice: None,
        }
    }
}

/// A laid-out document: metadata and a sequence of blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub meta: DocumentMeta,
    pub blocks: Vec<Block>,
}

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Color {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Color {
    pub const RED: Color = Color {
        r: 0xC0,
        g: 0x00,
        b: 0x00,
    };
    pub const GREY: Color = Color {
        r: 0x59,
        g: 0x59,
        b: 0x59,
    };

    /// `RRGGBB` in upper-case hex, as DOCX and HTML want it.
    pub fn hex(self) -> String {
        format!("{:02X}{:02X}{:02X}", self.r, self.g, self.b)
    }
}

/// A stretch of text in one style.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Run {
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bold: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub italic: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
}

impl Run {
    /// Plain text.
    pub fn plain(text: impl Into<String>) -> Run {
        Run {
            text: text.into(),
            ..Run::default()
        }
    }

    /// Bold text.
    pub fn bold(text: impl Into<String>) -> Run {
        Run {
            text: text.into(),
            bold: true,
            ..Run::default()
        }
    }
}

/// What kind of notice a banner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The red, bold, centred "CONFIDENTIAL - PROTECTED HEALTH INFORMATION" banner.
    Confidential,
    /// A caution the reader must see, such as a risk flag.
    Warning,
    /// A danger the reader must act on, such as a high-severity risk flag: its text says so in
    /// words ("HIGH RISK: …"), and it is framed, not only coloured.
    Danger,
    /// A neutral remark.
    Info,
}

/// A banner set apart from the text around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub text: String,
}

/// What a chart draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// Each series a line through one point per label, left to right, over the bands.
    Line,
    /// One horizontal bar per label, its length the first series' value.
    Bars,
}

/// A named range of the value axis drawn behind a line chart: a severity band ("Mild", 5 to 9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// Where the band starts and ends on the value axis (continuous: the band of scores 5 to 9
    /// spans 4.5 to 9.5).
    pub from: f64,
    pub to: f64,
    pub label: String,
}

/// One series of a chart: a value (or a gap) per label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// A chart, with the words a reader who cannot see it needs (`alt`) and the numbers behind it
/// (`labels` by `series`), which every renderer keeps readable beside the picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    pub kind: ChartKind,
    pub title: String,
    /// What the chart shows, in a sentence: its alternative text.
    pub alt: String,
    /// What the labels are ("Date", "Goal").
    pub category: String,
    /// The points along a line chart, or the bars.
    pub labels: Vec<String>,
    pub series: Vec<Series>,
    /// Behind a line, from the bottom of the axis up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<Band>,
    /// The value axis.
    pub min: f64,
    pub max: f64,
    /// What follows a value as printed ("%"), or nothing.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

impl Chart {
    /// `value` as the chart prints it: at most one decimal, with the unit ("60%", "12.5").
    pub fn print(&self, value: f64) -> String {
        let rounded = (value * 10.0).round() / 10.0;
        if rounded.fract() == 0.0 {
            format!("{}{}", rounded as i64, self.unit)
        } else {
            format!("{rounded:.1}{}", self.unit)
        }
    }

    /// Where `value` falls between the axis's ends, from 0 (bottom) to 1 (top), clamped.
    pub fn share(&self, value: f64) -> f64 {
        let span = self.max - self.min;
        if span <= 0.0 {
            return 0.0;
        }
        ((value - self.min) / span).clamp(0.0, 1.0)
    }

    /// Value-axis ticks: the band edges rounded to whole scores where there are bands, otherwise
    /// five even steps.
    pub fn ticks(&self) -> Vec<f64> {
        if !self.bands.is_empty() {
            let mut ticks = vec![self.min];
            ticks.extend(self.bands.iter().map(|band| band.to.ceil().min(self.max)));
            ticks.dedup();
            return ticks;
        }
        (0..=5)
            .map(|step| self.min + (self.max - self.min) * f64::from(step) / 5.0)
            .collect()
    }
}

/// A table with one header row, repeated on every page it spans.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Table {
    pub header: Vec<Vec<Run>>,
    pub rows: Vec<Vec<Vec<Run>>>,
}

/// One block of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "block", rename_all = "snake_case")]
pub enum Block {
    /// A heading of level 1 (document title), 2 (section) or 3 (subsection).
    Heading {
        level: u8,
        runs: Vec<Run>,
    },
    Paragraph {
        runs: Vec<Run>,
    },
    Table {
        table: Table,
    },
    /// A bulleted or numbered list; each item is a paragraph of runs.
    List {
        ordered: bool,
        items: Vec<Vec<Run>>,
    },
    /// A titled group of blocks that is kept together where the format allows.
    Section {
        class: Option<String>,
        blocks: Vec<Block>,
    },
    Notice {
        notice: Notice,
    },
    /// A chart, drawn natively by each renderer.
    Chart {
        chart: Chart,
    },
    /// A horizontal rule.
    Rule,
    PageBreak,
}

impl Document {
    /// Every piece of text in reading order, one block or cell per line: what a reader extracting
    /// the text should find.
    pub fn plain_text(&self) -> String {
        fn runs(out: &mut String, runs: &[Run]) {
            for run in runs {
                out.push_str(&run.text);
            }
            out.push('\n');
        }
        fn blocks(out: &mut String, list: &[Block]) {
            for block in list {
                match block {
                    Block::Heading { runs: r, .. } | Block::Paragraph { runs: r } => runs(out, r),
                    Block::Table { table } => {
                        for cell in table.header.iter().chain(table.rows.iter().flatten()) {
                            runs(out, cell);
                        }
                    }
                    Block::List { items, .. } => items.iter().for_each(|item| runs(out, item)),
                    Block::Section { blocks: inner, .. } => blocks(out, inner),
                    Block::Notice { notice } => {
                        out.push_str(&notice.text);
                        out.push('\n');
                    }
                    Block::Chart { chart } => {
                        out.push_str(&chart.title);
                        out.push('\n');
                        out.push_str(&chart.alt);
                        out.push('\n');
                    }
                    Block::Rule | Block::PageBreak => {}
                }
            }
        }
        let mut out = String::new();
        blocks(&mut out, &self.blocks);
        out
    }
}
