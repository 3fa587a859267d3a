//! Document layout of the PDF renderer: headings, paragraphs, lists, tables, notices, rules and
//! page breaks of a `Document` flowed onto pages, sections kept together when they fit a page.

use std::ops::Range;

use super::canvas::{Canvas, Decor, Info};
use super::flow::Flow;
use super::fonts::{FontBook, FontSet, Style};
use super::table::{self, Geometry, MIN_LINES, RowLayout, Span, TableFlow};
use super::text::{self, BLACK, Glyph};
use super::{FOOTER_SIZE, points};
use crate::{Block, Chart, ChartKind, Document, NoticeKind, Run, Table};

const MARGIN: f32 = 72.0;
const BODY_SIZE: f32 = 11.0;
const TABLE_SIZE: f32 = 9.5;
const CELL_PAD: f32 = 3.0;
const LIST_INDENT: f32 = 18.0;
const LINE_FACTOR: f32 = 1.3;
/// A section is kept on one page only when it takes at most this share of a page: keeping a
/// longer one together would leave too much of a page blank.
const KEEP_SHARE: f32 = 1.0 / 3.0;
const RED: [u8; 3] = [0xC0, 0x00, 0x00];
const AMBER: [u8; 3] = [0x9C, 0x57, 0x00];
const GREY: [u8; 3] = [0x59, 0x59, 0x59];

/// How a paragraph-like block is set.
#[derive(Debug, Clone, Copy)]
struct Setting {
    size: f32,
    before: f32,
    after: f32,
    indent: f32,
    centred: bool,
    /// Keep with the first lines of what follows (headings).
    keep_next: bool,
}

impl Setting {
    const BODY: Setting = Setting {
        size: BODY_SIZE,
        before: 0.0,
        after: 6.0,
        indent: 0.0,
        centred: false,
        keep_next: false,
    };

    fn heading(level: u8) -> Setting {
        let (size, before, after) = match level {
            0 | 1 => (20.0, 6.0, 10.0),
            2 => (14.0, 12.0, 6.0),
            3 => (12.0, 8.0, 4.0),
            _ => (11.0, 6.0, 3.0),
        };
        Setting {
            size,
            before,
            after,
            keep_next: true,
            ..Setting::BODY
        }
    }

    fn line_height(&self) -> f32 {
        self.size * LINE_FACTOR
    }
}

/// Lays `document` out and returns the PDF file.
pub(crate) fn render(fonts: &FontSet, document: &Document) -> Result<Vec<u8>, crate::RenderError> {
    let book = FontBook::new(fonts)?;
    let (width, height) = document.meta.page_size.size_mm();
    let canvas = Canvas::new(book, points(width), points(height));
    let mut layout = Layout {
        flow: Flow::new(canvas, MARGIN, MARGIN, MARGIN),
        glyphs: Vec::new(),
        lines: Vec::new(),
    };
    layout.blocks(&document.blocks, None);
    let meta = &document.meta;
    let footer = crate::document::generated_line(meta);
    let info = Info {
        title: Some(&meta.title),
        author: Some(&meta.author),
        subject: meta.subject.as_deref(),
        created: Some(meta.generated_at),
    };
    let height = layout.flow.canvas.height;
    // The running header sits in the top margin: the banner, then whose record and the title.
    let decor = Decor {
        margin: MARGIN,
        size: FOOTER_SIZE,
        banner: Some(crate::document::CONFIDENTIAL),
        banner_y: height - MARGIN / 2.0 + 2.0,
        header: Some((meta.patient.as_deref().unwrap_or(""), meta.title.as_str())),
        header_y: height - MARGIN / 2.0 - 12.0,
        // The practice (its name and address, however long) on a line of its own above.
        practice: meta.practice.as_deref(),
        footer: Some(&footer),
        footer_y: MARGIN / 2.0,
    };
    layout.flow.canvas.finish(&decor, &info)
}

struct Layout<'f> {
    flow: Flow<'f>,
    glyphs: Vec<Glyph>,
    lines: Vec<Range<usize>>,
}

fn rgb(run: &Run, fallback: [u8; 3]) -> [u8; 3] {
    run.color.map_or(fallback, |c| [c.r, c.g, c.b])
}

fn spans_of(runs: &[Run], bold: bool) -> impl Iterator<Item = Span<'_>> {
    runs.iter().map(move |run| Span {
        text: &run.text,
        style: Style::of(run.bold || bold, run.italic),
        rgb: rgb(run, BLACK),
    })
}

impl<'f> Layout<'f> {
    fn book(&mut self) -> &mut FontBook<'f> {
        &mut self.flow.canvas.book
    }

    /// Lays `blocks` out; `after` is what follows them (for a heading that ends a section).
    fn blocks(&mut self, blocks: &[Block], after: Option<&Block>) {
        let mut index = 0;
        while index < blocks.len() {
            // Two line charts in a row stand side by side, as small multiples.
            if let (Block::Chart { chart: first }, Some(Block::Chart { chart: second })) =
                (&blocks[index], blocks.get(index + 1))
                && first.kind == ChartKind::Line
                && second.kind == ChartKind::Line
            {
                self.chart_pair([first, second]);
                index += 2;
                continue;
            }
            self.block(&blocks[index], &blocks[index + 1..], after);
            index += 1;
        }
    }

    /// Lays `block` out; `rest` follows it in its list, then `after`.
    fn block(&mut self, block: &Block, rest: &[Block], after: Option<&Block>) {
        let next = rest.first().or(after);
        match block {
            Block::Heading { level, runs } => {
                // A heading goes to the next page rather than end one without what it heads.
                let keep = self.lead(rest, after);
                self.paragraph(spans_of(runs, true), None, Setting::heading(*level), keep);
            }
            Block::Paragraph { runs } => {
                self.paragraph(spans_of(runs, false), None, Setting::BODY, 0.0);
            }
            Block::List { ordered, items } => {
                for (number, item) in items.iter().enumerate() {
                    let marker = list_marker(*ordered, number);
                    let setting = Setting {
                        indent: LIST_INDENT,
                        after: 2.0,
                        ..Setting::BODY
                    };
                    self.paragraph(spans_of(item, false), Some(&marker), setting, 0.0);
                }
                self.flow.skip(4.0);
            }
            Block::Table { table } => self.table(table),
            Block::Section { blocks, .. } => {
                let height = self.measure_blocks(blocks);
                if height <= KEEP_SHARE * self.flow.body_height() {
                    self.flow.make_room(height);
                }
                self.blocks(blocks, next);
            }
            Block::Notice { notice } => match notice.kind {
                // Every page's running header carries the confidentiality banner already.
                NoticeKind::Confidential => {}
                NoticeKind::Danger => self.danger(notice),
                NoticeKind::Warning | NoticeKind::Info => {
                    let (span, setting) = notice_line(notice);
                    self.paragraph(std::iter::once(span), None, setting, 0.0);
                }
            },
            Block::Chart { chart } => self.chart(chart),
            Block::Rule => {
                self.flow.skip(6.0);
                self.flow.make_room(1.0);
                let (left, right, y) = (self.flow.left, self.flow.right, self.flow.y);
                self.flow.canvas.hline(left, right, y, 0.75, 0.5);
                self.flow.fresh = false;
                self.flow.skip(6.0);
            }
            Block::PageBreak => {
                if !self.flow.fresh {
                    self.flow.new_page();
                }
            }
        }
    }

    /// A chart: its scene drawn piece by piece (a bar chart may break between bars), then its
    /// alternative text as a caption, kept with the chart's end.
    fn chart(&mut self, chart: &crate::Chart) {
        let scene = crate::chart::scene(chart, self.flow.width());
        let caption = self.caption_height(chart);
        self.flow.skip(6.0);
        let pieces = scene.pieces();
        // A piece with the caption if it is the last, otherwise with the next piece's start.
        for (index, &(start, end)) in pieces.iter().enumerate() {
            let keep = match pieces.get(index + 1) {
                Some(&(next_start, next_end)) => (next_end - next_start).min(40.0),
                None => caption,
            };
            self.flow
                .make_room(end - start + keep.min(self.flow.body_height() / 4.0));
            let (left, top) = (self.flow.left, self.flow.y);
            super::figure::draw_piece(&mut self.flow.canvas, &scene, index, start, left, top);
            self.flow.y -= end - start;
            self.flow.fresh = false;
        }
        self.flow.skip(4.0);
        self.caption(chart);
    }

    /// A chart's caption: a line chart's alternative text (its summary); a bar chart prints its
    /// labels and values as text already, so only the space after it.
    fn caption(&mut self, chart: &Chart) {
        match chart.kind {
            ChartKind::Line => {
                self.paragraph(std::iter::once(caption_span(chart)), None, CAPTION, 0.0)
            }
            ChartKind::Bars => self.flow.skip(CAPTION.after),
        }
    }

    /// The height [`caption`](Self::caption) takes at the current width.
    fn caption_height(&mut self, chart: &Chart) -> f32 {
        match chart.kind {
            ChartKind::Line => {
                self.measure_paragraph(std::iter::once(caption_span(chart)), CAPTION)
            }
            ChartKind::Bars => CAPTION.after,
        }
    }

    /// Two line charts side by side, each with its caption under it, kept on one page.
    fn chart_pair(&mut self, charts: [&Chart; 2]) {
        const GAP: f32 = 18.0;
        let (left, right) = (self.flow.left, self.flow.right);
        let half = (self.flow.width() - GAP) / 2.0;
        let scenes = charts.map(|chart| crate::chart::scene(chart, half));
        self.flow.right = left + half;
        let captions = charts.map(|chart| self.caption_height(chart));
        self.flow.right = right;
        let drawn = scenes.iter().map(|s| s.height).fold(0.0, f32::max);
        let caption = captions.into_iter().fold(0.0, f32::max);
        self.flow.skip(6.0);
        self.flow.make_room(drawn + 4.0 + caption);
        let top = self.flow.y;
        let mut bottom = top;
        for (index, (chart, scene)) in charts.iter().zip(&scenes).enumerate() {
            let x = left + index as f32 * (half + GAP);
            super::figure::draw_piece(&mut self.flow.canvas, scene, 0, 0.0, x, top);
            self.flow.left = x;
            self.flow.right = x + half;
            self.flow.y = top - drawn - 4.0;
            self.flow.fresh = false;
            self.caption(chart);
            bottom = f32::min(bottom, self.flow.y);
        }
        self.flow.left = left;
        self.flow.right = right;
        self.flow.y = bottom;
    }

    /// The height of a chart with its caption.
    fn chart_height(&mut self, chart: &crate::Chart) -> f32 {
        let scene = crate::chart::scene(chart, self.flow.width());
        6.0 + scene.height + 4.0 + self.caption_height(chart)
    }

    /// The height of a danger callout, its frame included.
    fn danger_height(&mut self, notice: &crate::Notice) -> f32 {
        let width = self.flow.width() - 2.0 * INSET;
        self.set_lines(std::iter::once(danger_span(notice)), BODY_SIZE, width);
        self.lines.len() as f32 * Setting::BODY.line_height() + 2.0 * INSET
    }

    /// A danger callout: bold red text inside a red frame, kept on one page.
    fn danger(&mut self, notice: &crate::Notice) {
        let span = danger_span(notice);
        let height = self.danger_height(notice);
        self.flow.skip(4.0);
        self.flow.make_room(height);
        let top = self.flow.y;
        let setting = Setting {
            after: 0.0,
            ..Setting::BODY
        };
        self.flow.y -= INSET;
        self.flow.left += INSET;
        self.flow.right -= INSET;
        self.paragraph(std::iter::once(span), None, setting, 0.0);
        self.flow.left -= INSET;
        self.flow.right += INSET;
        self.flow.y -= INSET;
        let (left, width) = (self.flow.left, self.flow.width());
        self.flow
            .canvas
            .frame((left, self.flow.y, width, top - self.flow.y), 1.5, RED);
        self.flow.skip(10.0);
    }

    /// Shapes spans into `self.glyphs` and breaks them into `self.lines` at `width`.
    fn set_lines<'s>(&mut self, spans: impl IntoIterator<Item = Span<'s>>, size: f32, width: f32) {
        let mut glyphs = std::mem::take(&mut self.glyphs);
        glyphs.clear();
        for span in spans {
            text::shape(self.book(), span.text, span.style, span.rgb, &mut glyphs);
        }
        self.lines.clear();
        text::break_lines(&glyphs, size, width.max(1.0), &mut self.lines);
        self.glyphs = glyphs;
    }

    /// Sets a paragraph-like block, `keep` points of what follows kept on its page (a heading's
    /// next lines), with at least `MIN_LINES` lines on each side of a page break.
    fn paragraph<'s>(
        &mut self,
        spans: impl IntoIterator<Item = Span<'s>>,
        marker: Option<&str>,
        setting: Setting,
        keep: f32,
    ) {
        let width = self.flow.width() - setting.indent;
        self.set_lines(spans, setting.size, width);
        let line_height = setting.line_height();
        self.flow.skip(setting.before);
        if setting.keep_next {
            let own = self.lines.len().min(3) as f32 * line_height;
            self.flow.make_room(own + setting.after + keep);
        }
        let count = self.lines.len();
        // Where the page breaks inside the paragraph: never after its first line alone (an
        // orphan) nor before its last alone (a widow).
        let fit = ((self.flow.y - self.flow.bottom + 0.01) / line_height)
            .floor()
            .max(0.0) as usize;
        let mut break_before = None;
        if fit < count && !self.flow.fresh {
            if fit < MIN_LINES.min(count) {
                self.flow.new_page();
            } else if count - fit < MIN_LINES && fit > MIN_LINES {
                break_before = Some(count - MIN_LINES);
            }
        }
        let mut marker_glyphs = Vec::new();
        if let Some(marker) = marker {
            text::shape(
                self.book(),
                marker,
                Style::Regular,
                BLACK,
                &mut marker_glyphs,
            );
        }
        let glyphs = std::mem::take(&mut self.glyphs);
        let lines = std::mem::take(&mut self.lines);
        let baseline_drop = setting.size * 0.93 + (line_height - setting.size * 1.16) / 2.0;
        for (index, range) in lines.iter().enumerate() {
            if break_before == Some(index) {
                self.flow.new_page();
            }
            self.flow.make_room(line_height);
            let line = &glyphs[range.clone()];
            let baseline = self.flow.y - baseline_drop;
            let left = self.flow.left + setting.indent;
            let x = if setting.centred {
                left + (width - text::width(line, setting.size)) / 2.0
            } else {
                left
            };
            if index == 0 && !marker_glyphs.is_empty() {
                let marker_x = left - 4.0 - text::width(&marker_glyphs, setting.size);
                self.flow
                    .canvas
                    .text(marker_x, baseline, setting.size, &marker_glyphs);
            }
            self.flow.canvas.text(x, baseline, setting.size, line);
            self.flow.y -= line_height;
            self.flow.fresh = false;
        }
        self.glyphs = glyphs;
        self.lines = lines;
        self.flow.skip(setting.after);
    }

    /// The table's columns and header; `None` for a table with no cells at all.
    fn table_flow(&mut self, table: &Table) -> Option<TableFlow> {
        let columns = table
            .rows
            .iter()
            .map(Vec::len)
            .chain(std::iter::once(table.header.len()))
            .max()
            .unwrap_or(0);
        if columns == 0 {
            return None;
        }
        let mut extents = vec![(0.0f32, 0.0f32); columns];
        // The natural width of every body cell, row by row.
        let mut naturals = vec![vec![0.0f32; columns]; table.rows.len()];
        let mut glyphs = Vec::new();
        // Extents column by column: header cells bold, body cells as styled.
        for (column, extent) in extents.iter_mut().enumerate() {
            let cells = table
                .header
                .get(column)
                .map(|cell| (None, cell, true))
                .into_iter()
                .chain(table.rows.iter().enumerate().filter_map(|(index, row)| {
                    row.get(column).map(|cell| (Some(index), cell, false))
                }));
            for (row, cell, bold) in cells {
                let (word, natural) =
                    table::extent(self.book(), spans_of(cell, bold), TABLE_SIZE, &mut glyphs);
                extent.0 = extent.0.max(word);
                extent.1 = extent.1.max(natural);
                if let Some(row) = row {
                    naturals[row][column] = natural;
                }
            }
        }
        let mut geometry = Geometry::fit(
            self.flow.left,
            self.flow.width(),
            TABLE_SIZE,
            CELL_PAD,
            &extents,
            &naturals,
            vec![false; columns],
        );
        // Tables in documents set a little tighter than tables of rows: more of a report per page.
        geometry.leading = 1.2;
        let mut header = RowLayout::default();
        if !table.header.is_empty() {
            for column in 0..columns {
                let cell = table.header.get(column).map_or(&[][..], Vec::as_slice);
                header.push_cell(self.book(), &geometry, spans_of(cell, true));
            }
        }
        Some(TableFlow {
            geometry,
            header,
            has_header: !table.header.is_empty(),
        })
    }

    fn layout_row(&mut self, flow: &TableFlow, cells: &[Vec<Run>], row: &mut RowLayout) {
        row.clear();
        for column in 0..flow.geometry.widths.len() {
            let cell = cells.get(column).map_or(&[][..], Vec::as_slice);
            row.push_cell(self.book(), &flow.geometry, spans_of(cell, false));
        }
    }

    fn table(&mut self, table: &Table) {
        let Some(table_flow) = self.table_flow(table) else {
            return;
        };
        let mut row = RowLayout::default();
        self.flow.skip(2.0);
        // The header starts a page only with the first row beside it.
        let Some((first, rest)) = table.rows.split_first() else {
            table_flow.start(&mut self.flow, None);
            self.flow.skip(10.0);
            return;
        };
        self.layout_row(&table_flow, first, &mut row);
        table_flow.start(&mut self.flow, Some(&row));
        table_flow.row(&mut self.flow, &row);
        for cells in rest {
            self.layout_row(&table_flow, cells, &mut row);
            table_flow.row(&mut self.flow, &row);
        }
        self.flow.skip(10.0);
    }

    /// The height of the start of what follows a heading (`rest`, then `after`) that must share
    /// its page: two lines of a paragraph or list, a table's header with its first row (or two
    /// lines of a row tall enough to split), the start of a section's first block; a heading
    /// under it brings its own start along.
    fn lead(&mut self, rest: &[Block], after: Option<&Block>) -> f32 {
        let Some((block, tail)) = rest.split_first() else {
            return after.map_or(0.0, |block| self.lead(std::slice::from_ref(block), None));
        };
        let lines = |count: usize, setting: Setting| {
            setting.before + count.min(MIN_LINES) as f32 * setting.line_height()
        };
        match block {
            Block::Heading { level, runs } => {
                let setting = Setting::heading(*level);
                // A heading under a heading: both go with what the second heads.
                self.set_lines(spans_of(runs, true), setting.size, self.flow.width());
                let own = lines(self.lines.len(), setting) + setting.after;
                own + self.lead(tail, after)
            }
            Block::Paragraph { runs } => {
                self.set_lines(spans_of(runs, false), BODY_SIZE, self.flow.width());
                lines(self.lines.len(), Setting::BODY)
            }
            Block::List { items, .. } => {
                let width = self.flow.width() - LIST_INDENT;
                let first = items.first().map_or(&[][..], Vec::as_slice);
                self.set_lines(spans_of(first, false), BODY_SIZE, width);
                lines(self.lines.len(), Setting::BODY)
            }
            Block::Table { table } => {
                let Some(table_flow) = self.table_flow(table) else {
                    return 0.0;
                };
                let mut row = RowLayout::default();
                if let Some(first) = table.rows.first() {
                    self.layout_row(&table_flow, first, &mut row);
                    2.0 + table_flow.start_height(Some(&row), &self.flow)
                } else {
                    2.0 + table_flow.header_height()
                }
            }
            Block::Section { blocks, .. } => self.lead(blocks, tail.first().or(after)),
            Block::Notice { .. } | Block::Rule => self.measure(block),
            Block::Chart { chart } => {
                let scene = crate::chart::scene(chart, self.flow.width());
                6.0 + scene
                    .pieces()
                    .first()
                    .map_or(0.0, |&(start, end)| end - start)
            }
            Block::PageBreak => 0.0,
        }
    }

    /// The height `blocks` take when laid out without page breaks.
    fn measure_blocks(&mut self, blocks: &[Block]) -> f32 {
        blocks.iter().map(|block| self.measure(block)).sum()
    }

    fn measure_paragraph<'s>(
        &mut self,
        spans: impl IntoIterator<Item = Span<'s>>,
        setting: Setting,
    ) -> f32 {
        let width = self.flow.width() - setting.indent;
        self.set_lines(spans, setting.size, width);
        setting.before + self.lines.len() as f32 * setting.line_height() + setting.after
    }

    fn measure(&mut self, block: &Block) -> f32 {
        match block {
            Block::Heading { level, runs } => {
                self.measure_paragraph(spans_of(runs, true), Setting::heading(*level))
            }
            Block::Paragraph { runs } => {
                self.measure_paragraph(spans_of(runs, false), Setting::BODY)
            }
            Block::List { items, .. } => {
                let setting = Setting {
                    indent: LIST_INDENT,
                    after: 2.0,
                    ..Setting::BODY
                };
                items
                    .iter()
                    .map(|item| self.measure_paragraph(spans_of(item, false), setting))
                    .sum::<f32>()
                    + 4.0
            }
            Block::Table { table } => {
                let Some(table_flow) = self.table_flow(table) else {
                    return 0.0;
                };
                let mut row = RowLayout::default();
                let mut height = 12.0 + table_flow.header_height();
                for cells in &table.rows {
                    self.layout_row(&table_flow, cells, &mut row);
                    height += row.height(&table_flow.geometry);
                }
                height
            }
            Block::Section { blocks, .. } => self.measure_blocks(blocks),
            Block::Notice { notice } => match notice.kind {
                NoticeKind::Confidential => 0.0,
                NoticeKind::Danger => self.danger_height(notice) + 14.0,
                NoticeKind::Warning | NoticeKind::Info => {
                    let (span, setting) = notice_line(notice);
                    self.measure_paragraph(std::iter::once(span), setting)
                }
            },
            Block::Chart { chart } => self.chart_height(chart),
            Block::Rule => 12.0,
            Block::PageBreak => 0.0,
        }
    }
}

/// How a chart's caption (its alternative text) is set: small, italic, grey.
const CAPTION: Setting = Setting {
    size: 9.0,
    before: 0.0,
    after: 10.0,
    indent: 0.0,
    centred: false,
    keep_next: false,
};

fn caption_span(chart: &crate::Chart) -> Span<'_> {
    Span {
        text: &chart.alt,
        style: Style::Italic,
        rgb: GREY,
    }
}

/// The inset of a danger callout's text from its frame.
const INSET: f32 = 6.0;

fn danger_span(notice: &crate::Notice) -> Span<'_> {
    Span {
        text: &notice.text,
        style: Style::Bold,
        rgb: RED,
    }
}

/// How a warning or a remark is set: one paragraph, amber and bold or grey and italic.
fn notice_line(notice: &crate::Notice) -> (Span<'_>, Setting) {
    let (style, rgb) = match notice.kind {
        NoticeKind::Warning => (Style::Bold, AMBER),
        _ => (Style::Italic, GREY),
    };
    let setting = Setting {
        before: 4.0,
        after: 10.0,
        ..Setting::BODY
    };
    (
        Span {
            text: &notice.text,
            style,
            rgb,
        },
        setting,
    )
}

fn list_marker(ordered: bool, index: usize) -> String {
    if ordered {
        format!("{}.", index + 1)
    } else {
        "\u{2022}".to_owned()
    }
}
