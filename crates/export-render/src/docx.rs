//! The DOCX renderer: writes the OOXML parts of a WordprocessingML package itself and zips them.
//!
//! Library choice, by measurement on this 2-core machine (release builds, the bench-dataset rows
//! as one table, peak RSS from `/usr/bin/time -v`; target 20,000 rows/s and < 200 MB for 10,000):
//!
//! | writer | 10,000 rows | peak RSS | 100,000 rows | peak RSS |
//! |---|---|---|---|---|
//! | `docx-rust` 0.1.11 (the card's) | 19,000 rows/s | 898 MB | 5,800 rows/s | 8.9 GB |
//! | `docx-rs` 0.4.22 (no default features) | 15,300 rows/s | 465 MB | 6,100 rows/s | 4.6 GB |
//! | this module: own XML parts + `zip` 7.3 | 290,000 rows/s | 2.7 MB | 310,000 rows/s | 2.9 MB |
//!
//! Both libraries hold the whole document as a tree of values before writing it, so memory grows
//! with the row count and neither meets the target. A DOCX is a zip of a few small XML parts plus
//! `word/document.xml`; writing them here with the `zip` crate (deflate through flate2's
//! pure-Rust miniz_oxide backend) and a small escaper streams each row into the archive as it
//! arrives, and adds no crate that cargo-deny flags. Our figures come from
//! `examples/docx_bench.rs`; the library ones from the same rows in a throwaway crate.
//!
//! What the output holds: Heading 1–4 paragraph styles, a Normal style of 11 pt, Table Grid and
//! Table Text styles, bulleted and numbered lists through `word/numbering.xml`, tables whose
//! header row repeats on every page (`w:tblHeader`) and is shaded and bold, a footer with
//! "Generated on …" on the left and "Page X of Y" (PAGE and NUMPAGES fields) on the right, 1-inch
//! margins on Letter or A4, and title, author and creation date in `docProps/core.xml`.

use std::io::{Seek, Write};

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use export_domain::ExportFormat;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::renderer::Output;
use crate::table::for_each_row;
use crate::{
    Block, Cell, Color, Column, ColumnKind, Document, DocumentMeta, Notice, NoticeKind, PageSize,
    RenderError, RenderOutcome, Renderer, RowSource, Run, Table,
};

mod chart;

const FORMAT: &str = "docx";

/// Bytes of `word/document.xml` gathered before they go to the compressor.
const FLUSH_AT: usize = 64 * 1024;

/// A section with at most this many estimated lines (a third of a page) is kept on one page;
/// keeping a longer one together would leave too much of a page blank.
const KEEP_TOGETHER_LINES: usize = 15;
/// A table row of more estimated lines than this (a fifth of a page) may split between pages;
/// a shorter one moves whole to the next.
const SPLIT_ROW_LINES: f32 = 9.0;

const W_NS: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const R_NS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

/// Writes DOCX (Office Open XML word-processing) files, from a laid-out document or from rows.
#[derive(Debug, Clone, Default)]
pub struct DocxRenderer {
    row_meta: Option<DocumentMeta>,
}

impl DocxRenderer {
    /// The most rows `render_rows` writes: a Word table longer than this is unusable; CSV and
    /// XLSX are the formats for more.
    pub const ROW_LIMIT: u64 = 100_000;

    pub fn new() -> DocxRenderer {
        DocxRenderer::default()
    }

    /// A renderer whose `render_rows` also writes `meta`: the title as a heading above the table,
    /// the page size, the "Generated on" footer and the document properties. Without it a table
    /// of rows gets a Letter page, a page-number footer and no properties.
    pub fn with_row_meta(meta: DocumentMeta) -> DocxRenderer {
        DocxRenderer {
            row_meta: Some(meta),
        }
    }
}

impl Renderer for DocxRenderer {
    fn format(&self) -> ExportFormat {
        ExportFormat::Docx
    }

    fn render_document(
        &self,
        document: &Document,
        out: &mut dyn Output,
    ) -> Result<RenderOutcome, RenderError> {
        let page = Page {
            size: document.meta.page_size,
            landscape: false,
        };
        let mut package = Package::start(out, Some(&document.meta))?;
        let mut body = Body {
            xml: document_open(),
            ordered_lists: 0,
            page,
            charts: Vec::new(),
        };
        body.blocks(&document.blocks, false, false);
        body.xml.push_str(&section_properties(page));
        body.xml.push_str("</w:body></w:document>");
        package.start_part("word/document.xml")?;
        package.write(body.xml.as_bytes())?;
        package.finish(page, body.ordered_lists, &body.charts)?;
        Ok(RenderOutcome { rows: 0 })
    }

    fn render_rows(
        &self,
        rows: &mut dyn RowSource,
        out: &mut dyn Output,
    ) -> Result<RenderOutcome, RenderError> {
        if let Some(hint) = rows.row_count_hint()
            && hint > Self::ROW_LIMIT
        {
            return Err(too_many_rows(hint));
        }
        let meta = self.row_meta.as_ref();
        let columns = rows.columns().to_vec();
        let page = Page {
            size: meta.map_or(PageSize::default(), |meta| meta.page_size),
            // Wide tables read better across the page.
            landscape: columns.len() >= LANDSCAPE_FROM_COLUMNS,
        };
        let mut package = Package::start(out, meta)?;
        package.start_part("word/document.xml")?;

        // The document up to the first row; written once the first rows have been measured.
        let mut head = document_open();
        if let Some(meta) = meta {
            heading(&mut head, 1, &[Run::plain(meta.title.as_str())], false);
        }
        // Numbers further down may be longer than the ones measured.
        let mut measure = ColumnMeasure::new(columns.iter().map(|c| {
            let slack = match c.kind {
                ColumnKind::Integer | ColumnKind::Float => 1,
                _ => 0,
            };
            (c.name.as_str(), slack)
        }));
        let right: Vec<bool> = columns
            .iter()
            .map(|c| matches!(c.kind, ColumnKind::Integer | ColumnKind::Float))
            .collect();
        let mut xml = String::with_capacity(FLUSH_AT + 4096);
        let mut scratch = String::new();
        let mut head_written = false;
        let written = for_each_row(rows, |index, row| {
            if index >= Self::ROW_LIMIT {
                return Err(too_many_rows(index + 1));
            }
            if columns.is_empty() {
                // No table to hold them: rows without cells are counted, not written.
                return Ok(());
            }
            let measuring = index < MEASURED_ROWS;
            xml.push_str(ROW_OPEN);
            for (column, (cell, &right)) in row.cells().zip(&right).enumerate() {
                let text = canonical_text(cell, &mut scratch);
                if measuring {
                    measure.add(column, text);
                }
                xml.push_str(if right { CELL_OPEN_RIGHT } else { CELL_OPEN });
                push_run(&mut xml, text, RunFormat::default());
                xml.push_str(CELL_CLOSE);
            }
            xml.push_str("</w:tr>");
            if index + 1 == MEASURED_ROWS {
                rows_table_head(&mut head, &columns, &measure, page);
                package.write(head.as_bytes())?;
                head_written = true;
            }
            if head_written && xml.len() >= FLUSH_AT {
                package.write(xml.as_bytes())?;
                xml.clear();
            }
            Ok(())
        })?;
        if !head_written {
            rows_table_head(&mut head, &columns, &measure, page);
            package.write(head.as_bytes())?;
        }
        if !columns.is_empty() {
            xml.push_str("</w:tbl>");
        }
        // A table may not be the last thing in a body: Word wants a paragraph after it.
        xml.push_str("<w:p/>");
        xml.push_str(&section_properties(page));
        xml.push_str("</w:body></w:document>");
        package.write(xml.as_bytes())?;
        package.finish(page, 0, &[])?;
        Ok(RenderOutcome { rows: written })
    }
}

/// Rows measured for the column widths before the table starts: the rows after them stream.
const MEASURED_ROWS: u64 = 100;

/// A table of rows with this many columns or more is laid out on a landscape page.
const LANDSCAPE_FROM_COLUMNS: usize = 7;

/// Appends the table's start to `head`: its grid, sized from what `measure` saw, and the header row.
fn rows_table_head(head: &mut String, columns: &[Column], measure: &ColumnMeasure, page: Page) {
    if columns.is_empty() {
        return;
    }
    table_open(head, &measure.widths(page.text_width(), &[]));
    head.push_str(HEADER_ROW_OPEN);
    for column in columns {
        header_cell(head, &[Run::plain(column.name.as_str())]);
    }
    head.push_str("</w:tr>");
}

fn too_many_rows(rows: u64) -> RenderError {
    RenderError::TooManyRows {
        format: FORMAT,
        rows,
        limit: DocxRenderer::ROW_LIMIT,
    }
}

fn writer_error(error: zip::result::ZipError) -> RenderError {
    match error {
        zip::result::ZipError::Io(error) => RenderError::Io(error),
        // Zip errors name only our own part names, never document content.
        other => RenderError::Writer {
            format: FORMAT,
            reason: other.to_string(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The package: the zip archive and every part but the body.

struct Package<'m, W: Write + Seek> {
    zip: ZipWriter<W>,
    options: SimpleFileOptions,
    meta: Option<&'m DocumentMeta>,
}

impl<'m, W: Write + Seek> Package<'m, W> {
    /// Starts the archive and writes the parts that do not depend on the body.
    fn start(out: W, meta: Option<&'m DocumentMeta>) -> Result<Self, RenderError> {
        let mut options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(6));
        // Stamp the entries with the document's own time, so the same input gives the same bytes.
        if let Some(stamp) = meta.and_then(|meta| zip_time(meta.generated_at)) {
            options = options.last_modified_time(stamp);
        }
        let mut package = Package {
            zip: ZipWriter::new(out),
            options,
            meta,
        };
        package.part("_rels/.rels", PACKAGE_RELS)?;
        package.part("docProps/core.xml", &core_properties(meta))?;
        package.part("docProps/app.xml", APP_PROPERTIES)?;
        package.part("word/styles.xml", &styles())?;
        package.part("word/settings.xml", SETTINGS)?;
        Ok(package)
    }

    fn start_part(&mut self, name: &str) -> Result<(), RenderError> {
        self.zip
            .start_file(name, self.options)
            .map_err(writer_error)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), RenderError> {
        self.zip.write_all(bytes)?;
        Ok(())
    }

    fn part(&mut self, name: &str, content: &str) -> Result<(), RenderError> {
        self.start_part(name)?;
        self.write(content.as_bytes())
    }

    /// Writes the parts that depend on the body (content types, relationships, numbering,
    /// header, footer, charts) and closes the archive.
    fn finish(
        mut self,
        page: Page,
        ordered_lists: u32,
        charts: &[String],
    ) -> Result<(), RenderError> {
        let generated = self.meta.map(crate::document::footer_line);
        self.part("[Content_Types].xml", &content_types(charts.len()))?;
        self.part("word/_rels/document.xml.rels", &document_rels(charts.len()))?;
        for (index, part) in charts.iter().enumerate() {
            self.part(&format!("word/{}", chart::part_name(index + 1)), part)?;
        }
        self.part("word/numbering.xml", &numbering(ordered_lists))?;
        self.part("word/header1.xml", &header(page, self.meta))?;
        self.part("word/footer1.xml", &footer(page, generated.as_deref()))?;
        let mut out = self.zip.finish().map_err(writer_error)?;
        out.flush()?;
        Ok(())
    }
}

fn zip_time(at: DateTime<Utc>) -> Option<zip::DateTime> {
    zip::DateTime::from_date_and_time(
        u16::try_from(at.year()).ok()?,
        at.month() as u8,
        at.day() as u8,
        at.hour() as u8,
        at.minute() as u8,
        // Zip times have two-second resolution.
        (at.second() as u8).min(58),
    )
    .ok()
}

/// The content types, with an override for each of `charts` chart parts.
fn content_types(charts: usize) -> String {
    let mut xml = CONTENT_TYPES.replace("</Types>", "");
    for number in 1..=charts {
        xml.push_str(&format!(
            r#"<Override PartName="/word/{}" ContentType="{}"/>"#,
            chart::part_name(number),
            chart::CHART_TYPE
        ));
    }
    xml.push_str("</Types>");
    xml
}

/// The document's relationships, with one to each of `charts` chart parts.
fn document_rels(charts: usize) -> String {
    let mut xml = DOCUMENT_RELS.replace("</Relationships>", "");
    for number in 1..=charts {
        xml.push_str(&format!(
            r#"<Relationship Id="{}" Type="{}" Target="{}"/>"#,
            chart::rel_id(number),
            chart::CHART_REL,
            chart::part_name(number)
        ));
    }
    xml.push_str("</Relationships>");
    xml
}

const CONTENT_TYPES: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
    r#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">"#,
    r#"<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>"#,
    r#"<Default Extension="xml" ContentType="application/xml"/>"#,
    r#"<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>"#,
    r#"<Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>"#,
    r#"<Override PartName="/word/settings.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.settings+xml"/>"#,
    r#"<Override PartName="/word/numbering.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.numbering+xml"/>"#,
    r#"<Override PartName="/word/header1.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml"/>"#,
    r#"<Override PartName="/word/footer1.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.footer+xml"/>"#,
    r#"<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>"#,
    r#"<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>"#,
    r#"</Types>"#,
);

const PACKAGE_RELS: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
    r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
    r#"<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>"#,
    r#"<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>"#,
    r#"<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties" Target="docProps/app.xml"/>"#,
    r#"</Relationships>"#,
);

const DOCUMENT_RELS: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
    r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
    r#"<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>"#,
    r#"<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/settings" Target="settings.xml"/>"#,
    r#"<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/numbering" Target="numbering.xml"/>"#,
    r#"<Relationship Id="rId4" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/footer" Target="footer1.xml"/>"#,
    r#"<Relationship Id="rId5" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/header" Target="header1.xml"/>"#,
    r#"</Relationships>"#,
);

const APP_PROPERTIES: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
    r#"<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">"#,
    r#"<Application>export-render</Application>"#,
    r#"</Properties>"#,
);

const SETTINGS: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
    r#"<w:settings xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">"#,
    r#"<w:defaultTabStop w:val="720"/>"#,
    r#"<w:characterSpacingControl w:val="doNotCompress"/>"#,
    r#"<w:compat><w:compatSetting w:name="compatibilityMode" w:uri="http://schemas.microsoft.com/office/word" w:val="15"/></w:compat>"#,
    r#"</w:settings>"#,
);

fn core_properties(meta: Option<&DocumentMeta>) -> String {
    let mut xml = String::from(concat!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
        r#"<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" "#,
        r#"xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" "#,
        r#"xmlns:dcmitype="http://purl.org/dc/dcmitype/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
    ));
    if let Some(meta) = meta {
        let element = |xml: &mut String, name: &str, text: &str| {
            xml.push('<');
            xml.push_str(name);
            xml.push('>');
            push_escaped(xml, text);
            xml.push_str("</");
            xml.push_str(name);
            xml.push('>');
        };
        element(&mut xml, "dc:title", &meta.title);
        if let Some(subject) = &meta.subject {
            element(&mut xml, "dc:subject", subject);
        }
        element(&mut xml, "dc:creator", &meta.author);
        element(&mut xml, "cp:lastModifiedBy", &meta.author);
        // The language a screen reader reads the document in (the styles' w:lang says the same).
        element(&mut xml, "dc:language", "en-US");
        let when = meta.generated_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        xml.push_str(&format!(
            r#"<dcterms:created xsi:type="dcterms:W3CDTF">{when}</dcterms:created><dcterms:modified xsi:type="dcterms:W3CDTF">{when}</dcterms:modified>"#
        ));
    }
    xml.push_str("</cp:coreProperties>");
    xml
}

const MARGIN_TWIPS: u32 = 1440;

/// The paper and its orientation.
#[derive(Debug, Clone, Copy)]
struct Page {
    size: PageSize,
    landscape: bool,
}

impl Page {
    /// Width and height in twips (1/20 pt).
    fn twips(self) -> (u32, u32) {
        let (width, height) = match self.size {
            PageSize::Letter => (12240, 15840),
            PageSize::A4 => (11906, 16838),
        };
        if self.landscape {
            (height, width)
        } else {
            (width, height)
        }
    }

    /// Width of the text block between 1-inch margins, in twips.
    fn text_width(self) -> u32 {
        self.twips().0 - 2 * MARGIN_TWIPS
    }
}

fn section_properties(page: Page) -> String {
    let (width, height) = page.twips();
    let orient = if page.landscape {
        r#" w:orient="landscape""#
    } else {
        ""
    };
    format!(
        concat!(
            r#"<w:sectPr><w:headerReference w:type="default" r:id="rId5"/><w:footerReference w:type="default" r:id="rId4"/>"#,
            r#"<w:pgSz w:w="{width}" w:h="{height}"{orient}/>"#,
            r#"<w:pgMar w:top="{m}" w:right="{m}" w:bottom="{m}" w:left="{m}" w:header="720" w:footer="720" w:gutter="0"/>"#,
            r#"<w:cols w:space="720"/></w:sectPr>"#,
        ),
        width = width,
        height = height,
        orient = orient,
        m = MARGIN_TWIPS,
    )
}

fn document_open() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{W_NS}" xmlns:r="{R_NS}" xmlns:wp="{}"><w:body>"#,
        chart::WP_NS
    )
}

fn styles() -> String {
    let heading = |level: u8, size: u32, before: u32| {
        format!(
            concat!(
                r#"<w:style w:type="paragraph" w:styleId="Heading{level}"><w:name w:val="heading {level}"/>"#,
                r#"<w:basedOn w:val="Normal"/><w:next w:val="Normal"/><w:uiPriority w:val="9"/><w:qFormat/>"#,
                r#"<w:pPr><w:keepNext/><w:keepLines/><w:spacing w:before="{before}" w:after="120"/><w:outlineLvl w:val="{outline}"/></w:pPr>"#,
                r#"<w:rPr><w:b/><w:bCs/><w:color w:val="1F3864"/><w:sz w:val="{size}"/><w:szCs w:val="{size}"/></w:rPr></w:style>"#,
            ),
            level = level,
            before = before,
            outline = level - 1,
            size = size,
        )
    };
    let list = |id: &str, name: &str, num_id: u32| {
        format!(
            concat!(
                r#"<w:style w:type="paragraph" w:styleId="{id}"><w:name w:val="{name}"/><w:basedOn w:val="Normal"/><w:uiPriority w:val="99"/><w:unhideWhenUsed/>"#,
                r#"<w:pPr><w:numPr><w:numId w:val="{num_id}"/></w:numPr><w:spacing w:after="60"/><w:ind w:left="720" w:hanging="360"/><w:contextualSpacing/></w:pPr></w:style>"#,
            ),
            id = id,
            name = name,
            num_id = num_id,
        )
    };
    let mut xml = String::from(concat!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
        r#"<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">"#,
        r#"<w:docDefaults><w:rPrDefault><w:rPr>"#,
        r#"<w:rFonts w:ascii="Calibri" w:hAnsi="Calibri" w:eastAsia="Calibri" w:cs="Arial"/>"#,
        r#"<w:sz w:val="22"/><w:szCs w:val="22"/><w:lang w:val="en-US" w:eastAsia="en-US" w:bidi="he-IL"/>"#,
        r#"</w:rPr></w:rPrDefault><w:pPrDefault><w:pPr><w:spacing w:after="120" w:line="264" w:lineRule="auto"/></w:pPr></w:pPrDefault></w:docDefaults>"#,
        r#"<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/><w:qFormat/><w:pPr><w:widowControl/></w:pPr><w:rPr><w:sz w:val="22"/><w:szCs w:val="22"/></w:rPr></w:style>"#,
        r#"<w:style w:type="character" w:default="1" w:styleId="DefaultParagraphFont"><w:name w:val="Default Paragraph Font"/><w:uiPriority w:val="1"/><w:semiHidden/><w:unhideWhenUsed/></w:style>"#,
        r#"<w:style w:type="table" w:default="1" w:styleId="TableNormal"><w:name w:val="Normal Table"/><w:uiPriority w:val="99"/><w:semiHidden/><w:unhideWhenUsed/>"#,
        r#"<w:tblPr><w:tblInd w:w="0" w:type="dxa"/><w:tblCellMar><w:top w:w="0" w:type="dxa"/><w:left w:w="72" w:type="dxa"/><w:bottom w:w="0" w:type="dxa"/><w:right w:w="72" w:type="dxa"/></w:tblCellMar></w:tblPr></w:style>"#,
        r#"<w:style w:type="numbering" w:default="1" w:styleId="NoList"><w:name w:val="No List"/><w:uiPriority w:val="99"/><w:semiHidden/><w:unhideWhenUsed/></w:style>"#,
    ));
    xml.push_str(&heading(1, 32, 360));
    xml.push_str(&heading(2, 28, 240));
    xml.push_str(&heading(3, 24, 200));
    xml.push_str(&heading(4, 22, 160));
    xml.push_str(&list("ListBullet", "List Bullet", 1));
    xml.push_str(&list("ListNumber", "List Number", 2));
    xml.push_str(concat!(
        r#"<w:style w:type="paragraph" w:customStyle="1" w:styleId="TableText"><w:name w:val="Table Text"/><w:basedOn w:val="Normal"/><w:qFormat/>"#,
        r#"<w:pPr><w:spacing w:before="20" w:after="20" w:line="240" w:lineRule="auto"/></w:pPr><w:rPr><w:sz w:val="18"/><w:szCs w:val="18"/></w:rPr></w:style>"#,
        r#"<w:style w:type="paragraph" w:styleId="Footer"><w:name w:val="footer"/><w:basedOn w:val="Normal"/><w:uiPriority w:val="99"/><w:unhideWhenUsed/>"#,
        r#"<w:pPr><w:spacing w:after="0"/></w:pPr><w:rPr><w:color w:val="595959"/><w:sz w:val="18"/><w:szCs w:val="18"/></w:rPr></w:style>"#,
        r#"<w:style w:type="paragraph" w:styleId="Header"><w:name w:val="header"/><w:basedOn w:val="Normal"/><w:uiPriority w:val="99"/><w:unhideWhenUsed/>"#,
        r#"<w:pPr><w:spacing w:after="40"/></w:pPr><w:rPr><w:color w:val="595959"/><w:sz w:val="18"/><w:szCs w:val="18"/></w:rPr></w:style>"#,
        r#"<w:style w:type="paragraph" w:styleId="Caption"><w:name w:val="caption"/><w:basedOn w:val="Normal"/><w:next w:val="Normal"/><w:uiPriority w:val="35"/><w:qFormat/>"#,
        r#"<w:pPr><w:spacing w:before="60" w:after="200"/></w:pPr><w:rPr><w:i/><w:iCs/><w:color w:val="595959"/><w:sz w:val="18"/><w:szCs w:val="18"/></w:rPr></w:style>"#,
        r#"<w:style w:type="table" w:styleId="TableGrid"><w:name w:val="Table Grid"/><w:basedOn w:val="TableNormal"/><w:uiPriority w:val="39"/>"#,
        r#"<w:tblPr><w:tblBorders>"#,
        r#"<w:top w:val="single" w:sz="4" w:space="0" w:color="A6A6A6"/><w:left w:val="single" w:sz="4" w:space="0" w:color="A6A6A6"/>"#,
        r#"<w:bottom w:val="single" w:sz="4" w:space="0" w:color="A6A6A6"/><w:right w:val="single" w:sz="4" w:space="0" w:color="A6A6A6"/>"#,
        r#"<w:insideH w:val="single" w:sz="4" w:space="0" w:color="A6A6A6"/><w:insideV w:val="single" w:sz="4" w:space="0" w:color="A6A6A6"/>"#,
        r#"</w:tblBorders></w:tblPr></w:style>"#,
        r#"</w:styles>"#,
    ));
    xml
}

/// Numbering: one bullet list definition (numId 1) and one decimal definition (numId 2 for the
/// List Number style); each ordered list in the body gets its own numId from 3 on, restarting at 1.
fn numbering(ordered_lists: u32) -> String {
    let mut xml = String::from(concat!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
        r#"<w:numbering xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">"#,
        r#"<w:abstractNum w:abstractNumId="0"><w:multiLevelType w:val="singleLevel"/>"#,
        r#"<w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="bullet"/><w:lvlText w:val="&#8226;"/><w:lvlJc w:val="left"/>"#,
        r#"<w:pPr><w:ind w:left="720" w:hanging="360"/></w:pPr></w:lvl></w:abstractNum>"#,
        r#"<w:abstractNum w:abstractNumId="1"><w:multiLevelType w:val="singleLevel"/>"#,
        r#"<w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1."/><w:lvlJc w:val="left"/>"#,
        r#"<w:pPr><w:ind w:left="720" w:hanging="360"/></w:pPr></w:lvl></w:abstractNum>"#,
        r#"<w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num>"#,
        r#"<w:num w:numId="2"><w:abstractNumId w:val="1"/></w:num>"#,
    ));
    for list in 0..ordered_lists {
        xml.push_str(&format!(
            r#"<w:num w:numId="{}"><w:abstractNumId w:val="1"/><w:lvlOverride w:ilvl="0"><w:startOverride w:val="1"/></w:lvlOverride></w:num>"#,
            FIRST_ORDERED_NUM_ID + list
        ));
    }
    xml.push_str("</w:numbering>");
    xml
}

const BULLET_NUM_ID: u32 = 1;
const FIRST_ORDERED_NUM_ID: u32 = 3;

/// The running header: the confidentiality banner, then whose record it is at the left and the
/// title at the right (a right tab), with a rule under them.
fn header(page: Page, meta: Option<&DocumentMeta>) -> String {
    let mut xml = format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
            r#"<w:hdr xmlns:w="{}" xmlns:r="{}">"#,
            r#"<w:p><w:pPr><w:pStyle w:val="Header"/><w:jc w:val="center"/></w:pPr>"#,
        ),
        W_NS, R_NS,
    );
    let banner = RunFormat {
        bold: true,
        color: Some(Color::RED),
        ..RunFormat::default()
    };
    push_runs(
        &mut xml,
        &[Run::plain(crate::document::CONFIDENTIAL)],
        banner,
    );
    xml.push_str("</w:p>");
    if let Some(meta) = meta {
        xml.push_str(&format!(
            concat!(
                r#"<w:p><w:pPr><w:pStyle w:val="Header"/><w:pBdr><w:bottom w:val="single" w:sz="4" w:space="1" w:color="999999"/></w:pBdr>"#,
                r#"<w:tabs><w:tab w:val="right" w:pos="{}"/></w:tabs></w:pPr>"#,
            ),
            page.text_width(),
        ));
        let whose = RunFormat {
            bold: true,
            ..RunFormat::default()
        };
        push_runs(
            &mut xml,
            &[Run::plain(meta.patient.as_deref().unwrap_or(""))],
            whose,
        );
        xml.push_str("<w:r><w:tab/></w:r>");
        push_runs(
            &mut xml,
            &[Run::plain(meta.title.as_str())],
            RunFormat::default(),
        );
        xml.push_str("</w:p>");
    }
    xml.push_str("</w:hdr>");
    xml
}

fn footer(page: Page, generated: Option<&str>) -> String {
    let field = |xml: &mut String, instruction: &str| {
        xml.push_str(r#"<w:r><w:fldChar w:fldCharType="begin"/></w:r>"#);
        xml.push_str(r#"<w:r><w:instrText xml:space="preserve"> "#);
        xml.push_str(instruction);
        xml.push_str(r#" </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r>"#);
        xml.push_str(r#"<w:r><w:t>1</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r>"#);
    };
    let mut xml = format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
            r#"<w:ftr xmlns:w="{}" xmlns:r="{}"><w:p><w:pPr><w:pStyle w:val="Footer"/>"#,
            r#"<w:tabs><w:tab w:val="right" w:pos="{}"/></w:tabs></w:pPr>"#,
        ),
        W_NS,
        R_NS,
        page.text_width(),
    );
    if let Some(generated) = generated {
        push_runs(&mut xml, &[Run::plain(generated)], RunFormat::default());
    }
    xml.push_str(r#"<w:r><w:tab/><w:t xml:space="preserve">Page </w:t></w:r>"#);
    field(&mut xml, "PAGE");
    xml.push_str(r#"<w:r><w:t xml:space="preserve"> of </w:t></w:r>"#);
    field(&mut xml, "NUMPAGES");
    xml.push_str("</w:p></w:ftr>");
    xml
}

// ---------------------------------------------------------------------------------------------
// The body.

struct Body {
    xml: String,
    ordered_lists: u32,
    page: Page,
    /// The chart parts the body refers to, in order.
    charts: Vec<String>,
}

/// Paragraph properties a block asks for; written in the schema's order.
#[derive(Default, Clone, Copy)]
struct Para<'a> {
    style: Option<&'a str>,
    keep_next: bool,
    num_id: Option<u32>,
    bottom_border: bool,
    /// A frame on every side, in this colour (`RRGGBB`).
    frame: Option<&'a str>,
    shading: Option<&'a str>,
    center: bool,
    right: bool,
}

impl Para<'_> {
    fn open(self, xml: &mut String) {
        xml.push_str("<w:p>");
        if self.style.is_none()
            && !self.keep_next
            && self.num_id.is_none()
            && !self.bottom_border
            && self.frame.is_none()
            && self.shading.is_none()
            && !self.center
            && !self.right
        {
            return;
        }
        xml.push_str("<w:pPr>");
        if let Some(style) = self.style {
            xml.push_str(r#"<w:pStyle w:val=""#);
            xml.push_str(style);
            xml.push_str(r#""/>"#);
        }
        if self.keep_next {
            xml.push_str("<w:keepNext/>");
        }
        if let Some(num_id) = self.num_id {
            xml.push_str(&format!(
                r#"<w:numPr><w:ilvl w:val="0"/><w:numId w:val="{num_id}"/></w:numPr>"#
            ));
        }
        if self.bottom_border {
            xml.push_str(
                r#"<w:pBdr><w:bottom w:val="single" w:sz="6" w:space="1" w:color="A6A6A6"/></w:pBdr>"#,
            );
        }
        if let Some(colour) = self.frame {
            xml.push_str("<w:pBdr>");
            for side in ["top", "left", "bottom", "right"] {
                xml.push_str(&format!(
                    r#"<w:{side} w:val="single" w:sz="12" w:space="4" w:color="{colour}"/>"#
                ));
            }
            xml.push_str("</w:pBdr>");
        }
        if let Some(fill) = self.shading {
            xml.push_str(r#"<w:shd w:val="clear" w:color="auto" w:fill=""#);
            xml.push_str(fill);
            xml.push_str(r#""/>"#);
        }
        if self.center {
            xml.push_str(r#"<w:jc w:val="center"/>"#);
        } else if self.right {
            xml.push_str(r#"<w:jc w:val="right"/>"#);
        }
        xml.push_str("</w:pPr>");
    }
}

impl Body {
    /// Writes `list`; with `together` every block but the last keeps with the next, and the last
    /// keeps with what follows when `keep_last`.
    fn blocks(&mut self, list: &[Block], together: bool, keep_last: bool) {
        for (index, block) in list.iter().enumerate() {
            let last = index + 1 == list.len();
            let keep = if last { keep_last } else { together };
            self.block(block, keep, together);
        }
    }

    fn block(&mut self, block: &Block, keep: bool, together: bool) {
        let xml = &mut self.xml;
        match block {
            Block::Heading { level, runs } => heading(xml, *level, runs, keep),
            Block::Paragraph { runs } => {
                Para {
                    keep_next: keep,
                    ..Para::default()
                }
                .open(xml);
                push_runs(xml, runs, RunFormat::default());
                xml.push_str("</w:p>");
            }
            Block::Table { table } => table_block(xml, table, self.page, together, keep),
            Block::List { ordered, items } => {
                let (style, num_id) = if *ordered {
                    self.ordered_lists += 1;
                    ("ListNumber", FIRST_ORDERED_NUM_ID + self.ordered_lists - 1)
                } else {
                    ("ListBullet", BULLET_NUM_ID)
                };
                for (index, item) in items.iter().enumerate() {
                    let last = index + 1 == items.len();
                    Para {
                        style: Some(style),
                        keep_next: if last { keep } else { together },
                        num_id: Some(num_id),
                        ..Para::default()
                    }
                    .open(xml);
                    push_runs(xml, item, RunFormat::default());
                    xml.push_str("</w:p>");
                }
            }
            Block::Section { blocks, .. } => {
                let kept = estimated_lines(blocks) <= KEEP_TOGETHER_LINES;
                self.blocks(blocks, kept || together, keep);
            }
            // The header part carries the confidentiality banner on every page already.
            Block::Notice { notice } if notice.kind == NoticeKind::Confidential => {}
            Block::Notice { notice } => notice_block(xml, notice, keep),
            Block::Rule => {
                Para {
                    keep_next: keep,
                    bottom_border: true,
                    ..Para::default()
                }
                .open(xml);
                xml.push_str("</w:p>");
            }
            Block::Chart { chart: figure } => {
                let number = self.charts.len() + 1;
                chart::drawing(xml, figure, number, self.page.text_width());
                // The alternative text under the chart, for every reader.
                Para {
                    style: Some("Caption"),
                    keep_next: keep,
                    ..Para::default()
                }
                .open(xml);
                push_runs(
                    xml,
                    &[Run::plain(figure.alt.as_str())],
                    RunFormat::default(),
                );
                xml.push_str("</w:p>");
                self.charts.push(chart::part(figure));
            }
            Block::PageBreak => xml.push_str(r#"<w:p><w:r><w:br w:type="page"/></w:r></w:p>"#),
        }
    }
}

fn heading(xml: &mut String, level: u8, runs: &[Run], keep: bool) {
    const STYLES: [&str; 4] = ["Heading1", "Heading2", "Heading3", "Heading4"];
    let level = usize::from(level.clamp(1, 4));
    Para {
        style: Some(STYLES[level - 1]),
        // The style keeps every heading with the paragraph after it already.
        keep_next: keep,
        ..Para::default()
    }
    .open(xml);
    push_runs(xml, runs, RunFormat::default());
    xml.push_str("</w:p>");
}

fn notice_block(xml: &mut String, notice: &Notice, keep: bool) {
    let red_bold = RunFormat {
        bold: true,
        color: Some(Color::RED),
        ..RunFormat::default()
    };
    let (para, extra) = match notice.kind {
        NoticeKind::Confidential => (
            Para {
                center: true,
                ..Para::default()
            },
            red_bold,
        ),
        NoticeKind::Danger => (
            Para {
                frame: Some("C00000"),
                ..Para::default()
            },
            red_bold,
        ),
        NoticeKind::Warning => (
            Para {
                shading: Some("FFF2CC"),
                ..Para::default()
            },
            RunFormat {
                bold: true,
                color: Some(Color {
                    r: 0x9C,
                    g: 0x57,
                    b: 0x00,
                }),
                ..RunFormat::default()
            },
        ),
        NoticeKind::Info => (
            Para::default(),
            RunFormat {
                italic: true,
                color: Some(Color::GREY),
                ..RunFormat::default()
            },
        ),
    };
    Para {
        keep_next: keep,
        ..para
    }
    .open(xml);
    push_runs(xml, &[Run::plain(notice.text.as_str())], extra);
    xml.push_str("</w:p>");
}

/// A rough count of printed lines, to decide whether a section fits on a page.
fn estimated_lines(blocks: &[Block]) -> usize {
    fn text_lines(runs: &[Run]) -> usize {
        1 + runs.iter().map(|run| run.text.len()).sum::<usize>() / 90
    }
    blocks
        .iter()
        .map(|block| match block {
            Block::Heading { runs, .. } => 1 + text_lines(runs),
            Block::Paragraph { runs } => text_lines(runs),
            Block::Table { table } => 1 + table.rows.len(),
            Block::List { items, .. } => items.iter().map(|item| text_lines(item)).sum(),
            Block::Section { blocks, .. } => estimated_lines(blocks),
            Block::Notice { notice } => 1 + notice.text.len() / 90,
            Block::Rule => 1,
            Block::Chart { chart } => match chart.kind {
                crate::ChartKind::Line => 14,
                crate::ChartKind::Bars => 2 + chart.labels.len() * 2,
            },
            // Never keep a page break with anything.
            Block::PageBreak => KEEP_TOGETHER_LINES + 1,
        })
        .fold(0, usize::saturating_add)
}

// ---------------------------------------------------------------------------------------------
// Tables.

const HEADER_ROW_OPEN: &str = "<w:tr><w:trPr><w:cantSplit/><w:tblHeader/></w:trPr>";
const HEADER_FILL: &str = "D9E2F3";
const ROW_OPEN: &str = "<w:tr><w:trPr><w:cantSplit/></w:trPr>";
const SPLITTABLE_ROW_OPEN: &str = "<w:tr>";
const CELL_OPEN: &str = r#"<w:tc><w:p><w:pPr><w:pStyle w:val="TableText"/></w:pPr>"#;
const CELL_OPEN_RIGHT: &str =
    r#"<w:tc><w:p><w:pPr><w:pStyle w:val="TableText"/><w:jc w:val="right"/></w:pPr>"#;
const CELL_CLOSE: &str = "</w:p></w:tc>";

/// Twips one character of table text takes at 9 pt, erring wide for fonts wider than Calibri.
const CHAR_TWIPS: u64 = 105;
/// Left and right cell margins together, in twips (the Table Grid style's 0.05 in each side).
const CELL_MARGINS_TWIPS: u64 = 144;
/// Longest text a column asks room for, in characters; longer text wraps.
const WIDEST_COLUMN_CHARS: usize = 60;
/// Longest header word a column keeps whole; longer ones may break.
const HEADER_WORD_CHARS: usize = 8;

/// What a table's columns hold, in characters: the longest word, which wants a line of its own,
/// and the longest text, which would like one line.
#[derive(Debug)]
struct ColumnMeasure {
    longest_word: Vec<usize>,
    longest_text: Vec<usize>,
}

impl ColumnMeasure {
    /// Starts from the headers; `slack` characters more for each column whose later values may
    /// be longer than the measured ones (numbers in a streamed table).
    fn new<'a>(headers: impl Iterator<Item = (&'a str, usize)>) -> ColumnMeasure {
        let mut measure = ColumnMeasure {
            longest_word: Vec::new(),
            longest_text: Vec::new(),
        };
        for (header, slack) in headers {
            let word = longest_word(header).min(HEADER_WORD_CHARS);
            measure.longest_word.push(word + slack);
            measure.longest_text.push(word + slack);
        }
        measure
    }

    fn add(&mut self, column: usize, text: &str) {
        if let (Some(word), Some(longest)) = (
            self.longest_word.get_mut(column),
            self.longest_text.get_mut(column),
        ) {
            *word = (*word).max(longest_word(text).min(WIDEST_COLUMN_CHARS / 3));
            *longest = (*longest).max(text.chars().count().min(WIDEST_COLUMN_CHARS));
        }
    }

    /// Column widths in twips filling `total`, by the same rules as the PDF's
    /// ([`crate::widths::column_widths`]), in characters: each column's longest word and longest
    /// text, and the length of each body cell (`cells`, row by row; empty for streamed rows).
    fn widths(&self, total: u32, cells: &[Vec<f32>]) -> Vec<u32> {
        if self.longest_text.is_empty() {
            return Vec::new();
        }
        // One character of room each, so a word of n characters is not squeezed.
        let extents: Vec<(f32, f32)> = self
            .longest_word
            .iter()
            .zip(&self.longest_text)
            .map(|(&word, &text)| (word.max(2) as f32 + 1.0, text as f32 + 1.0))
            .collect();
        let char_twips = CHAR_TWIPS as f32;
        let chars = crate::widths::column_widths(
            &extents,
            cells,
            CELL_MARGINS_TWIPS as f32 / char_twips,
            total as f32 / char_twips,
        );
        let mut widths: Vec<u32> = chars.iter().map(|c| (c * char_twips) as u32).collect();
        // Rounding leaves a few twips over: give them to the last column.
        let used: u32 = widths.iter().sum();
        if let Some(last) = widths.last_mut() {
            *last += total.saturating_sub(used);
        }
        widths
    }
}

fn longest_word(text: &str) -> usize {
    text.split_whitespace()
        .map(|word| word.chars().count())
        .max()
        .unwrap_or(0)
}

fn table_open(xml: &mut String, widths: &[u32]) {
    xml.push_str(concat!(
        r#"<w:tbl><w:tblPr><w:tblStyle w:val="TableGrid"/><w:tblW w:w="5000" w:type="pct"/>"#,
        r#"<w:tblLayout w:type="fixed"/><w:tblLook w:val="04A0" w:firstRow="1" w:lastRow="0" w:firstColumn="0" w:lastColumn="0" w:noHBand="0" w:noVBand="1"/></w:tblPr><w:tblGrid>"#,
    ));
    for width in widths {
        xml.push_str(&format!(r#"<w:gridCol w:w="{width}"/>"#));
    }
    xml.push_str("</w:tblGrid>");
}

fn header_cell(xml: &mut String, runs: &[Run]) {
    xml.push_str(r#"<w:tc><w:tcPr><w:shd w:val="clear" w:color="auto" w:fill=""#);
    xml.push_str(HEADER_FILL);
    xml.push_str(r#""/></w:tcPr><w:p><w:pPr><w:pStyle w:val="TableText"/><w:keepNext/></w:pPr>"#);
    push_runs(
        xml,
        runs,
        RunFormat {
            bold: true,
            ..RunFormat::default()
        },
    );
    xml.push_str(CELL_CLOSE);
}

fn table_block(xml: &mut String, table: &Table, page: Page, together: bool, keep: bool) {
    let columns = table
        .rows
        .iter()
        .map(Vec::len)
        .chain([table.header.len()])
        .max()
        .unwrap_or(0);
    if columns == 0 {
        return;
    }
    let text = |runs: &[Run]| runs.iter().map(|run| run.text.as_str()).collect::<String>();
    let mut measure = ColumnMeasure::new((0..columns).map(|_| ("", 0)));
    for (index, cell) in table.header.iter().enumerate() {
        measure.add(index, &text(cell));
    }
    let mut cells = vec![vec![0.0f32; columns]; table.rows.len()];
    for (row, lengths) in table.rows.iter().zip(&mut cells) {
        for (index, cell) in row.iter().enumerate() {
            let text = text(cell);
            measure.add(index, &text);
            lengths[index] = text.chars().count() as f32;
        }
    }
    let widths = measure.widths(page.text_width(), &cells);
    table_open(xml, &widths);
    // Characters a line of each column holds.
    let per_line: Vec<f32> = widths
        .iter()
        .map(|w| (w.saturating_sub(CELL_MARGINS_TWIPS as u32) as f32 / CHAR_TWIPS as f32).max(1.0))
        .collect();
    if !table.header.is_empty() {
        xml.push_str(HEADER_ROW_OPEN);
        for index in 0..columns {
            header_cell(xml, table.header.get(index).map_or(&[], Vec::as_slice));
        }
        xml.push_str("</w:tr>");
    }
    for (index, (row, lengths)) in table.rows.iter().zip(&cells).enumerate() {
        let last = index + 1 == table.rows.len();
        let keep_next = if last { keep } else { together };
        let lines = lengths
            .iter()
            .zip(&per_line)
            .map(|(length, per_line)| (length / per_line).ceil())
            .fold(1.0, f32::max);
        xml.push_str(if lines > SPLIT_ROW_LINES {
            SPLITTABLE_ROW_OPEN
        } else {
            ROW_OPEN
        });
        for index in 0..columns {
            xml.push_str(if keep_next {
                r#"<w:tc><w:p><w:pPr><w:pStyle w:val="TableText"/><w:keepNext/></w:pPr>"#
            } else {
                CELL_OPEN
            });
            push_runs(
                xml,
                row.get(index).map_or(&[], Vec::as_slice),
                RunFormat::default(),
            );
            xml.push_str(CELL_CLOSE);
        }
        xml.push_str("</w:tr>");
    }
    xml.push_str("</w:tbl>");
    // Two tables in a row would merge; an empty paragraph keeps them apart and gives the body a
    // paragraph after a final table.
    xml.push_str(r#"<w:p><w:pPr><w:pStyle w:val="TableText"/></w:pPr></w:p>"#);
}

/// The canonical text of a cell: integers plain, floats as Rust's `{:?}` (`3.7`, `0.0`),
/// booleans `true`/`false`, dates `YYYY-MM-DD`, date-times RFC 3339 in UTC; written into
/// `scratch` unless the cell is text already.
fn canonical_text<'a>(cell: Cell<'a>, scratch: &'a mut String) -> &'a str {
    use std::fmt::Write as _;
    scratch.clear();
    // `write!` into a String cannot fail.
    let _ = match cell {
        Cell::Null => Ok(()),
        Cell::Text(text) => return text,
        Cell::Integer(value) => write!(scratch, "{value}"),
        Cell::Float(value) => write!(scratch, "{value:?}"),
        Cell::Bool(value) => write!(scratch, "{value}"),
        Cell::Date(date) => write!(
            scratch,
            "{:04}-{:02}-{:02}",
            date.year(),
            date.month(),
            date.day()
        ),
        Cell::DateTime(at) => write!(scratch, "{}", at.to_rfc3339_opts(SecondsFormat::Secs, true)),
    };
    scratch
}

// ---------------------------------------------------------------------------------------------
// Runs and text.

/// Formatting of a run, or what a block adds to its runs' own.
#[derive(Default, Clone, Copy)]
struct RunFormat {
    bold: bool,
    italic: bool,
    color: Option<Color>,
}

fn push_runs(xml: &mut String, runs: &[Run], extra: RunFormat) {
    for run in runs {
        let format = RunFormat {
            bold: run.bold || extra.bold,
            italic: run.italic || extra.italic,
            color: run.color.or(extra.color),
        };
        push_run(xml, &run.text, format);
    }
}

/// Writes `text` as one run, or as several when it mixes right-to-left and left-to-right script.
fn push_run(xml: &mut String, text: &str, format: RunFormat) {
    if text.is_ascii() || !text.chars().any(|c| direction(c) == Direction::Rtl) {
        push_run_segment(xml, text, format, false);
    } else {
        for (segment, rtl) in direction_segments(text) {
            push_run_segment(xml, segment, format, rtl);
        }
    }
}

fn push_run_segment(xml: &mut String, text: &str, format: RunFormat, rtl: bool) {
    xml.push_str("<w:r>");
    if format.bold || format.italic || format.color.is_some() || rtl {
        xml.push_str("<w:rPr>");
        if format.bold {
            xml.push_str("<w:b/><w:bCs/>");
        }
        if format.italic {
            xml.push_str("<w:i/><w:iCs/>");
        }
        if let Some(color) = format.color {
            xml.push_str(r#"<w:color w:val=""#);
            xml.push_str(&color.hex());
            xml.push_str(r#""/>"#);
        }
        if rtl {
            xml.push_str("<w:rtl/>");
        }
        xml.push_str("</w:rPr>");
    }
    push_text(xml, text);
    xml.push_str("</w:r>");
}

/// Writes the inside of a run: `w:t` elements, with tabs as `w:tab` and newlines as `w:br`.
fn push_text(xml: &mut String, text: &str) {
    let mut pieces = text.split(['\t', '\n']);
    let mut separators = text.matches(['\t', '\n']);
    if let Some(first) = pieces.next() {
        push_t(xml, first);
    }
    for piece in pieces {
        match separators.next() {
            Some("\t") => xml.push_str("<w:tab/>"),
            _ => xml.push_str("<w:br/>"),
        }
        push_t(xml, piece);
    }
}

fn push_t(xml: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        xml.push_str(r#"<w:t xml:space="preserve">"#);
    } else {
        xml.push_str("<w:t>");
    }
    push_escaped(xml, text);
    xml.push_str("</w:t>");
}

/// Appends `text` escaped for XML content or attributes, dropping characters XML 1.0 cannot
/// hold (C0 control characters other than tab and newline, U+FFFE and U+FFFF) and, with them,
/// DEL and the C1 controls, which XML allows but no reader shows.
pub(crate) fn push_escaped(xml: &mut String, text: &str) {
    let plain = text
        .bytes()
        // 0xC2 starts the C1 controls and 0xEF U+FFFE/U+FFFF in UTF-8: look closer at those.
        .all(|b| b >= 0x20 && !matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | 0x7F | 0xC2 | 0xEF));
    if plain {
        xml.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '"' => xml.push_str("&quot;"),
            '\'' => xml.push_str("&apos;"),
            '\t' | '\n' => xml.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => xml.push(c),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ltr,
    Rtl,
    Neutral,
}

fn direction(c: char) -> Direction {
    match c {
        // Hebrew, Arabic, Syriac, Thaana, NKo and their presentation forms.
        '\u{0590}'..='\u{08FF}' | '\u{FB1D}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}' => {
            Direction::Rtl
        }
        c if c.is_alphanumeric() => Direction::Ltr,
        _ => Direction::Neutral,
    }
}

/// Splits `text` into stretches of one direction, flagging the right-to-left ones. Spaces and
/// punctuation between two right-to-left letters stay with them; at a change of direction they
/// go to the left-to-right side, as the bidi algorithm resolves them in a left-to-right paragraph.
fn direction_segments(text: &str) -> Vec<(&str, bool)> {
    if !text.chars().any(|c| direction(c) == Direction::Rtl) {
        return vec![(text, false)];
    }
    let mut segments = Vec::new();
    let mut start = 0;
    let mut current = Direction::Neutral;
    // Where the neutrals after the last strong character began.
    let mut neutral_from: Option<usize> = None;
    for (at, c) in text.char_indices() {
        match direction(c) {
            Direction::Neutral => {
                neutral_from.get_or_insert(at);
            }
            strong if current == Direction::Neutral || strong == current => {
                current = strong;
                neutral_from = None;
            }
            strong => {
                // A change of direction: trailing neutrals of a right-to-left stretch move on.
                let cut = match (current, neutral_from) {
                    (Direction::Rtl, Some(from)) => from,
                    _ => at,
                };
                segments.push((&text[start..cut], current == Direction::Rtl));
                start = cut;
                current = strong;
                neutral_from = None;
            }
        }
    }
    match (current, neutral_from) {
        (Direction::Rtl, Some(from)) => {
            segments.push((&text[start..from], true));
            segments.push((&text[from..], false));
        }
        _ => segments.push((&text[start..], current == Direction::Rtl)),
    }
    segments.retain(|(segment, _)| !segment.is_empty());
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        push_escaped(&mut out, text);
        out
    }

    #[test]
    fn escapes_markup_and_drops_invalid_characters() {
        assert_eq!(
            escaped(r#"a & b < c > d " e ' f"#),
            "a &amp; b &lt; c &gt; d &quot; e &apos; f"
        );
        assert_eq!(escaped("bell\u{7}\u{0}\rok\t\n\u{FFFF}"), "bellok\t\n");
        assert_eq!(
            escaped("del\u{7F} nel\u{85} nbsp\u{A0}©"),
            "del nel nbsp\u{A0}©"
        );
        assert_eq!(escaped("Zoë 美玲 נועה"), "Zoë 美玲 נועה");
    }

    #[test]
    fn splits_hebrew_from_latin() {
        assert_eq!(direction_segments("Noa"), vec![("Noa", false)]);
        assert_eq!(direction_segments("נועה כהן"), vec![("נועה כהן", true)]);
        assert_eq!(
            direction_segments("Patient: נועה כהן, age 34"),
            vec![
                ("Patient: ", false),
                ("נועה כהן", true),
                (", age 34", false)
            ]
        );
        assert_eq!(
            direction_segments("נועה (34)"),
            vec![("נועה", true), (" (34)", false)]
        );
    }

    #[test]
    fn formats_the_generated_line() {
        let at = DateTime::parse_from_rfc3339("2025-01-15T14:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let meta = DocumentMeta {
            title: "Progress Report".into(),
            author: String::new(),
            subject: None,
            generated_at: at,
            page_size: PageSize::Letter,
            patient: None,
            practice: Some("Riverside Counselling, 12 Mill Lane".into()),
        };
        assert_eq!(
            crate::document::footer_line(&meta),
            "Riverside Counselling, 12 Mill Lane \u{b7} Generated on January 15, 2025 at 02:30 PM UTC"
        );
    }

    #[test]
    fn text_with_tabs_and_newlines_becomes_tab_and_break_elements() {
        let mut xml = String::new();
        push_text(&mut xml, " a\tb\nc ");
        assert_eq!(
            xml,
            r#"<w:t xml:space="preserve"> a</w:t><w:tab/><w:t>b</w:t><w:br/><w:t xml:space="preserve">c </w:t>"#
        );
    }
}
